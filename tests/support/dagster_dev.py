"""`dagster dev` for the end-to-end tests: twin_pipeline/launcher/dagster_dev.py on a free loopback port,
retried on another one if it was taken meanwhile."""

from __future__ import annotations

from typing import Any

from tests.conftest import free_port
from twin_pipeline.launcher.dagster_dev import DagsterDev as _DagsterDev
from twin_pipeline.launcher.dagster_dev import DagsterDevError, PortInUse, session_members, write_dagster_home

__all__ = ["DagsterDev", "DagsterDevError", "PortInUse", "session_members", "write_dagster_home"]


class DagsterDev(_DagsterDev):
    def __init__(self, *args: Any, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, port=port or free_port(), next_port=free_port, **kwargs)
