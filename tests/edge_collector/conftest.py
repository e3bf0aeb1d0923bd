"""Fixtures for collector tests: a real PLC server and a collector running on the same loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from edge_collector.config import CollectorConfig
from edge_collector.schemas import edge_table_path
from plc.server import PlcServer

LAB_ENV = {"TWIN_ENV": "dev"}


def lab_config(plc: PlcServer, tmp_path: Path, **sections: dict[str, Any]) -> CollectorConfig:
    """Security None (lab mode) config pointing at an insecure test server."""
    raw: dict[str, Any] = {
        "collector": {
            "id": "test-edge",
            "lake": str(tmp_path / "lake"),
            "spool": str(tmp_path / "spool"),
            "lab_mode": True,
        },
        "opcua": {"endpoint": plc.options.endpoint, "security_policy": "None", "reconnect_max_delay_s": 1.0},
        "subscription": {"lines": [p.line_id for p in plc.params], "publishing_interval_ms": 20},
        "datalogger": {"flush_interval_s": 0.2},
        "metrics": {"port": 0},
    }
    for name, values in sections.items():
        raw.setdefault(name, {}).update(values)
    return CollectorConfig.model_validate(raw)


@asynccontextmanager
async def running(collector: Collector, timeout: float = 30.0) -> AsyncIterator[Collector]:
    """Run `collector` until the block ends; then stop it (flush) and re-raise its errors."""
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(collector.run(stop, ready=ready.set))
    done, _ = await asyncio.wait(
        [task, asyncio.create_task(ready.wait())], timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    if task in done:
        task.result()
        raise AssertionError("collector stopped before it was ready")
    if not ready.is_set():
        stop.set()
        await task
        raise AssertionError(f"collector not ready within {timeout} s")
    try:
        yield collector
    finally:
        stop.set()
        assert await asyncio.wait_for(task, timeout=60) == 0


def read_table(lake: Path, table: str) -> pl.DataFrame:
    path = edge_table_path(lake, table)
    if not (path / "_delta_log").exists():
        return pl.DataFrame()
    return pl.read_delta(str(path))


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


async def clock_seen(collector: Collector, plc: PlcServer, still: float = 1.5, limit: float = 60.0) -> None:
    """Until the collector has what the PLC published, so a flush now holds everything.

    With the variability engine on, the collector follows the PLC clock (`sim_now`): a scan writes its
    changes before Clock.Now (plc.server's `_flush`) and the collector handles a publish response in
    one synchronous pass, so seeing the last step's clock is exact. Without it (no clock subscribed),
    nothing new has arrived for `still` seconds (asyncua publishes every 20 ms here)."""
    now = datetime.fromtimestamp(plc.clock.now(), UTC)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    if collector.engine is not None:
        while collector.sim_now is None or collector.sim_now < now:
            assert loop.time() < deadline, f"the collector did not see the PLC clock reach {now} within {limit} s"
            await asyncio.sleep(0.01)
        return
    last, since = collector.received, loop.time()
    while loop.time() - since < still:
        assert loop.time() < deadline, f"notifications still arriving after {limit} s"
        await asyncio.sleep(0.05)
        if collector.received != last:
            last, since = collector.received, loop.time()


async def settle(seconds: float = 0.5) -> None:
    await asyncio.sleep(seconds)


Step = Callable[[float], Any]
