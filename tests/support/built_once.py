"""A session fixture's data built once per test run, not once per pytest-xdist worker.

The seeded lakes (tests/twin_pipeline/conftest.py) take 5-12 s each to simulate, and both workers of
`make test` use them; every test copies them before writing, so one read-only build serves both. The
first worker to ask builds it under a lock in the run's shared temporary folder; the other waits for it
and reads the result. Without xdist it is an ordinary session fixture's build.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from typing import Any

import pytest


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Any], Any]) -> Any:
    """`build(folder)` once per run; its result must survive JSON (paths as strings)."""
    if "PYTEST_XDIST_WORKER" not in os.environ:
        return build(tmp_path_factory.mktemp(name))
    shared = tmp_path_factory.getbasetemp().parent  # the run's folder, above each worker's own
    result = shared / f"{name}.json"
    with (shared / f"{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when `build` raises
        if not result.exists():
            folder = shared / name
            shutil.rmtree(folder, ignore_errors=True)  # what a build that failed left
            folder.mkdir()
            result.write_text(json.dumps(build(folder)))
        return json.loads(result.read_text())
