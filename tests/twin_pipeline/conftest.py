"""Edge tables produced by the real simulator and collector (step clock: fast, deterministic)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from edge_collector.collector import Collector
from plc.plant_config import load_lines
from plc.server import PlcServer, ServerOptions
from plc.sim_clock import SimClock
from tests.conftest import T0, free_port
from tests.edge_collector.conftest import LAB_ENV, clock_seen, lab_config, running
from tests.support.built_once import built_once


async def produce_edge(tmp: Path, minutes: float, step_s: float = 10.0) -> Path:
    """Run L1 and L2 from T0 (a shift start) for `minutes` simulated minutes through the collector."""
    options = ServerOptions(port=free_port(), insecure=True, pki_dir=tmp / "pki")
    async with PlcServer(load_lines(["L1", "L2"]), SimClock(start=T0, step_mode=True), 5, options) as plc:
        config = lab_config(plc, tmp)
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            for _ in range(int(minutes * 60 / step_s)):
                await plc.step(step_s)
                await asyncio.sleep(0.005)
            await clock_seen(collector, plc)
            await collector.datalogger.flush()
    return config.lake()


@pytest.fixture(scope="session")
def edge_lake(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 simulated minutes of the early shift of 2026-11-24 (06:00 Berlin = 05:00 UTC). Read-only: copy it."""
    return Path(built_once(tmp_path_factory, "edge", lambda tmp: str(asyncio.run(produce_edge(tmp, minutes=40)))))


async def engine_caught_up(collector: Collector, now: datetime, limit: float = 60.0) -> None:
    """Until the variability engine has acted on PLC time `now`: the collector saw the clock reach it and
    nothing of the engine is due at or before it (its writes are acknowledged before it moves a due time
    on). Stepping on earlier would land the engine's writes a step late, whatever the machine's load."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    engine = collector.engine
    while not (
        collector.sim_now is not None
        and collector.sim_now >= now
        and engine is not None
        and engine.started_at is not None
        and (engine.next_due() is None or engine.next_due() > now)
    ):
        assert loop.time() < deadline, f"the variability engine did not catch up with {now} within {limit} s"
        await asyncio.sleep(0.002)


async def produce_full_shift(
    tmp: Path, start: datetime = T0, hours: int = 8, fault_minute: int | None = 120, variability: dict | None = None
) -> tuple[Path, dict[str, dict[str, float]]]:
    """A whole early shift (8 h) of two slow lines through the real PLC and collector, with one fault
    planted on L1 at 2 h (cleared, reset and restarted over the next 12 minutes). Returns the lake and
    the PLC's own figures at the shift end: Execute time, parts, rejects."""
    from asyncua import ua

    from plc.tagmap import PackMLCommand as Cmd
    from plc.tagmap import PackMLState as S
    from tests.conftest import insecure_client

    lines = load_lines(["L1", "L2"], design_speed_ppm=6.0, accumulator_period_s=60.0)
    options = ServerOptions(port=free_port(), insecure=True, pki_dir=tmp / "pki")
    truth: dict[str, dict[str, float]] = {}
    async with PlcServer(lines, SimClock(start=start, step_mode=True), 5, options) as plc:
        config = lab_config(plc, tmp, **({"variability": variability} if variability else {}))
        from edge_collector.variability.engine_setup import engine_factory_for

        collector_obj = Collector(config, environ=LAB_ENV, engine_factory=engine_factory_for(config))
        async with running(collector_obj) as collector, insecure_client(plc) as client:
            ns = await client.get_namespace_index("CODESYSSPV3/3S/IecVarAccess")

            def node(path: str):
                return client.get_node(ua.NodeId(f"|var|CODESYS Control for Linux SL.Application.L1.{path}", ns))

            async def command(cmd: int) -> None:
                await node("Command.CntrlCmd").write_value(ua.Variant(int(cmd), ua.VariantType.Int32))
                await node("Command.CmdChangeRequest").write_value(True)

            # a little quality error so some parts are rejected
            await node("Sim.QualityErrorMm").write_value(ua.Variant(0.045, ua.VariantType.Double))
            recovery = (
                {}
                if fault_minute is None
                else {fault_minute + 10: Cmd.Clear, fault_minute + 11: Cmd.Reset, fault_minute + 12: Cmd.Start}
            )
            for minute in range(1, hours * 60 + 1):
                if minute == fault_minute:
                    await node("Sim.FaultCode").write_value(ua.Variant(42, ua.VariantType.Int32))
                    await node("Sim.FaultRequest").write_value(True)
                elif minute in recovery:
                    await command(recovery[minute])
                await plc.step(60.0)
                if variability:
                    await engine_caught_up(collector, datetime.fromtimestamp(plc.clock.now(), UTC))
                else:
                    await asyncio.sleep(0.002)
            for line_id in ("L1", "L2"):
                line = plc.line(line_id)
                truth[line_id] = {
                    "execute_s": line.state_time(S.Execute),
                    "produced": line.processed,
                    "rejects": line.defective,
                    "fault_s": line.state_time(S.Aborting) + line.state_time(S.Aborted) + line.state_time(S.Clearing),
                }
            await plc.step(60.0)  # a minute of the next shift
            await clock_seen(collector, plc)
            await collector.datalogger.flush()
    return config.lake(), truth


def _shift_once(
    tmp_path_factory: pytest.TempPathFactory, name: str, **kwargs: Any
) -> tuple[Path, dict[str, dict[str, float]]]:
    """produce_full_shift(**kwargs) once per test run (tests/support/built_once.py): the lake (read-only:
    copy it) and the PLC's figures."""

    def build(tmp: Path) -> tuple[str, dict[str, dict[str, float]]]:
        lake, truth = asyncio.run(produce_full_shift(tmp, **kwargs))
        return str(lake), truth

    lake, truth = built_once(tmp_path_factory, name, build)
    return Path(lake), truth


@pytest.fixture(scope="session")
def full_shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    return _shift_once(tmp_path_factory, "shift")


@pytest.fixture(scope="session")
def dst_night(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    """The night shift of 2026-03-28 22:00 (Berlin), which lasts 7 h: clocks go forward at 02:00."""
    start = datetime(2026, 3, 28, 21, 0, tzinfo=UTC)
    return _shift_once(tmp_path_factory, "dst", start=start, hours=7, fault_minute=None)


@pytest.fixture(scope="session")
def engine_shift(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, dict[str, float]]]:
    """A whole early shift with the variability engine injecting L1's faults (constant draws, so the
    ground truth is easy to read): a fault every 90 min of Execute, repaired in 10 min."""
    variability = {
        "enabled": True,
        "seed": 3,
        "state_poll_s": 1.0,
        "lines": {
            "L1": {
                "faults": {
                    "time_to_failure": {"kind": "constant", "value": 5400.0},
                    "repair_time": {"kind": "constant", "value": 600.0},
                    "fault_code": {"kind": "categorical", "weights": {"42": 1.0}},
                }
            },
        },
    }
    return _shift_once(tmp_path_factory, "engine", fault_minute=None, variability=variability)
