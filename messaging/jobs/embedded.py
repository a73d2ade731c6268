"""The worker inside a daphne process, for the embedded defaults (one process, no Redis).

Started once per process, on a thread of its own, when daphne loads the application
(messaging/apps.py): never in management commands or tests, which run their own.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from messaging.jobs.runner import Runner
from messaging.singletons import per_process


def under_daphne(argv: list[str] | None = None) -> bool:
    """Tell whether this process is daphne (`daphne ...` or `python -m daphne ...`)."""
    argv = sys.argv if argv is None else argv
    if not argv:
        return False
    program = Path(argv[0])
    return program.name == "daphne" or program.parts[-2:] == ("daphne", "__main__.py")


def _started_worker() -> Runner:
    worker = Runner(embedded=True)
    threading.Thread(target=worker.run, name="chat-jobs", daemon=True).start()
    return worker


# This process's worker thread, started on the first call; return its worker.
start_embedded_worker = per_process(_started_worker, on_reset=Runner.stop)
