"""Fixtures shared by the dashboard's tests: the seeded lake and the environment a dashboard server reads it
with (no Dagster, no edge but the lake's own, nothing from the developer's $TWIN_HOME)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.support import dashboard_lake as seeded
from tests.support.built_once import built_once


@pytest.fixture(scope="session")
def dashboard_lake(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """tests/support/dashboard_lake.py's lake (one plant day, L1+L2, every gold table), built once per run:
    {"lake": path, "shifts": [...], "lines": [...]}. Read-only: copy it before writing."""
    return dict(built_once(tmp_path_factory, "dashboard_lake", seeded.build))


@pytest.fixture(scope="module")
def dashboard_env(dashboard_lake: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a dashboard over the seeded lake. Dagster's URL is a loopback port nobody listens
    on, so the pages that ask Dagster show their "unreachable" state, whatever a `make run` serves on 3000."""
    home: Path = tmp_path_factory.mktemp("twin_home")
    return {
        "TWIN_LAKE": dashboard_lake["lake"],
        "TWIN_HOME": str(home),
        "TWIN_EDGES": "",
        "TWIN_DAGSTER_URL": f"http://127.0.0.1:{free_port()}",
    }
