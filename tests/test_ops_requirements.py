"""Production installs the chat's own packages, pinned with hashes, and no test tools."""

from __future__ import annotations

import ast
import re
import sys
from importlib import metadata
from pathlib import Path

from tests.live import ROOT

PRODUCTION = ROOT / "requirements.txt"
DEVELOPMENT = ROOT / "requirements-dev.txt"
LOCK = ROOT / "requirements.lock"
# Tools that a server never runs: they belong in requirements-dev.txt.
TOOLS = {
    "pytest",
    "pytest-django",
    "pytest-asyncio",
    "pytest-timeout",
    "pytest-rerunfailures",
    "pytest-xdist",
    "factory-boy",
    "hypothesis",
    "selenium",
    "ruff",
    "websockets",
    "django-migration-linter",
    "pip-tools",
}
# Standalone: the Python protocol client needs only websockets and is not part of a server.
NOT_SERVED = set((ROOT / "messaging" / "client").rglob("*.py"))


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """Return the name -> version pins of a requirements file (extras dropped)."""
    found = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            found[canonical(match[1])] = match[3]
    return found


def test_production_requirements_hold_no_test_or_development_tool():
    assert not set(pins(PRODUCTION)) & TOOLS, "move these to requirements-dev.txt"
    dev = DEVELOPMENT.read_text().splitlines()
    assert "-r requirements.txt" in dev
    assert TOOLS <= set(pins(DEVELOPMENT))


def test_every_line_of_either_file_is_pinned():
    for path in (PRODUCTION, DEVELOPMENT):
        for line in path.read_text().splitlines():
            if line.strip() and not line.startswith(("#", "-r ")):
                assert "==" in line, f"{path.name}: pin {line!r} to one version"


def test_the_lock_pins_requirements_txt_as_written_with_hashes():
    locked, wanted = pins(LOCK), pins(PRODUCTION)
    stale = {name: version for name, version in wanted.items() if locked.get(name) != version}
    assert not stale, (
        f"requirements.lock does not pin {stale} as requirements.txt does: run "
        "scripts/lock-requirements and commit requirements.lock"
    )
    hashed: dict[str, bool] = {}
    entry = ""
    for line in LOCK.read_text().splitlines():
        if re.match(r"[A-Za-z0-9]", line):
            entry = line.split()[0]
            hashed[entry] = False
        elif entry and "--hash=sha256:" in line:
            hashed[entry] = True
    assert hashed and all(hashed.values()), [name for name, ok in hashed.items() if not ok]


def test_the_tests_run_on_the_locked_versions():
    drifted = {}
    for name, version in pins(LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            drifted[name] = (version, None)
            continue
        if installed != version:
            drifted[name] = (version, installed)
    assert not drifted, (
        f"installed packages differ from requirements.lock (locked, installed): {drifted}; "
        "run scripts/bootstrap"
    )


def imported_top_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_served_code_imports_only_what_the_lock_installs():
    sources = [
        path
        for folder in ("chatsite", "messaging")
        for path in (ROOT / folder).rglob("*.py")
        if path not in NOT_SERVED
    ]
    modules = set().union(*(imported_top_modules(path) for path in sources))
    modules -= set(sys.stdlib_module_names) | {"chatsite", "messaging", "__future__"}
    by_module = metadata.packages_distributions()
    locked = set(pins(LOCK))
    missing = {
        module: sorted(canonical(d) for d in by_module.get(module, [module]))
        for module in modules
        if not {canonical(d) for d in by_module.get(module, [module])} & locked
    }
    assert not missing, f"imported by the chat but not in requirements.txt: {missing}"
