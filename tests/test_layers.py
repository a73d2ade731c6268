"""The layers of messaging/ import only downward, and no modules import each other in a loop."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "messaging"

# From the bottom up (docs/architecture.md); a module may import its own layer and below.
LAYERS = ["ground", "domain", "jobs", "delivery", "sending", "realtime", "web", "ops", "top"]
PLACES = {
    "domain": "domain",
    "jobs": "jobs",
    "delivery": "delivery",
    "sending": "sending",
    "realtime": "realtime",
    "web": "web",
    "ops": "ops",
}
TOP = {"admin", "apps", "management"}


def layer_of(module: str) -> str:
    parts = module.split(".")[1:]
    if not parts:
        return "ground"
    if parts[0] in PLACES:
        return PLACES[parts[0]]
    return "top" if parts[0] in TOP else "ground"


def imports_of(path: Path) -> set[str]:
    """Return the messaging modules a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "messaging":
                found |= {f"messaging.{alias.name}" for alias in node.names}
            elif node.module.startswith("messaging."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("messaging.")}
    return found


def modules() -> dict[str, set[str]]:
    graph = {}
    for path in PACKAGE.rglob("*.py"):
        if "migrations" in path.parts:
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        graph[name.removesuffix(".__init__")] = imports_of(path)
    return graph


def test_no_module_imports_a_layer_above_its_own():
    upward = [
        f"{module} ({layer_of(module)}) imports {imported} ({layer_of(imported)})"
        for module, imported_modules in modules().items()
        for imported in imported_modules
        if LAYERS.index(layer_of(imported)) > LAYERS.index(layer_of(module))
    ]
    assert not upward, "\n".join(upward)


def test_no_modules_import_each_other_in_a_loop():
    graph = modules()
    known = set(graph)

    def edges(module):
        for imported in graph[module]:
            # "from messaging.domain import events" names a module; a name inside one
            # ("from messaging.domain.events import Event") names its module too.
            target = imported if imported in known else imported.rsplit(".", 1)[0]
            if target in known and target != module:
                yield target

    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module):
        state[module] = 1
        stack.append(module)
        for target in edges(module):
            if state.get(target) == 1:
                loop = [*stack[stack.index(target) :], target]
                pytest.fail("import circle: " + " -> ".join(loop))
            if target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
