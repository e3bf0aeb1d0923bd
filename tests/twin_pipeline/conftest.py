"""Edge tables produced by the real simulator and collector (step clock: fast, deterministic)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from edge_collector.collector import Collector
from plc.plant_config import load_lines
from plc.server import PlcServer, ServerOptions
from plc.sim_clock import SimClock
from tests.conftest import T0, free_port
from tests.edge_collector.conftest import LAB_ENV, lab_config, running


async def produce_edge(tmp: Path, minutes: float, step_s: float = 10.0) -> Path:
    """Run L1 and L2 from T0 (a shift start) for `minutes` simulated minutes through the collector."""
    options = ServerOptions(port=free_port(), insecure=True, pki_dir=tmp / "pki")
    async with PlcServer(load_lines(["L1", "L2"]), SimClock(start=T0, step_mode=True), 5, options) as plc:
        config = lab_config(plc, tmp)
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            for _ in range(int(minutes * 60 / step_s)):
                await plc.step(step_s)
                await asyncio.sleep(0.005)
            await asyncio.sleep(1.0)
            await collector.datalogger.flush()
    return config.lake()


@pytest.fixture(scope="session")
def edge_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 simulated minutes of the early shift of 2026-11-24 (06:00 Berlin = 05:00 UTC)."""
    return asyncio.run(produce_edge(tmp_path_factory.mktemp("edge"), minutes=40))
