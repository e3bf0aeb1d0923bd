"""`dagster dev` for the end-to-end tests: twin_pipeline/launcher/dagster_dev.py on a free loopback port,
retried on another one if it was taken meanwhile, its backfill daemon looping every 2 s instead of 30
(tests/support/fast_backfill_loop/sitecustomize.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from twin_pipeline.launcher.dagster_dev import DagsterDev as _DagsterDev
from twin_pipeline.launcher.dagster_dev import DagsterDevError, PortInUse, session_members, write_dagster_home

__all__ = ["DagsterDev", "DagsterDevError", "PortInUse", "session_members", "write_dagster_home"]

FAST_BACKFILL_LOOP = Path(__file__).parent / "fast_backfill_loop"
BACKFILL_LOOP_S = 2.0


def fast_backfill_env() -> dict[str, str]:
    """The environment that makes a Dagster process's backfill loop pause BACKFILL_LOOP_S seconds."""
    path = os.pathsep.join(p for p in (str(FAST_BACKFILL_LOOP), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path, "TWIN_TEST_BACKFILL_LOOP_S": str(BACKFILL_LOOP_S)}


class DagsterDev(_DagsterDev):
    def __init__(self, *args: Any, port: int | None = None, env: dict[str, str] | None = None, **kwargs: Any) -> None:
        env = {**fast_backfill_env(), **(env or {})}
        super().__init__(*args, port=port or free_port(), next_port=free_port, env=env, **kwargs)
