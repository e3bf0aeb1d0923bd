"""The variability engine against a real SoftPLC in step mode, over a real asyncua client: the line's
OBSERVED behaviour (its own state changes and tag values, seen through a subscription) follows the
injected distributions, and the injected_events rows are a complete, one-row-per-injection ground
truth. Plus the engine's contract with an in-memory PLC (stream independence, catch-up, retries,
abandoned faults) and its configuration."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import UaStatusCodeError
from pydantic import ValidationError
from scipy import stats

from edge_collector.variability.engine import VariabilityConfig, VariabilityEngine, signal_rng
from edge_collector.variability.plc_port import AsyncuaPlcPort, LineState
from plc.line_model import LineParams
from plc.server import PlcServer
from plc.tagmap import TAGS
from plc.tagmap import PackMLCommand as Cmd
from plc.tagmap import PackMLState as S
from tests.conftest import T0, insecure_client

RT = TAGS.default_runtime
WEIBULL = {"kind": "weibull", "shape": 1.5, "scale": 1800.0}
LOGNORMAL = {"kind": "lognormal", "median": 120.0, "sigma": 0.4}
CODES = {101: 5.0, 205: 3.0, 317: 2.0}
FEED = {"kind": "uniform", "low": 1.0, "high": 3.0}
QUALITY = {"kind": "normal", "mean": 0.0, "sd": 0.005, "drift_per_hour": 0.0001}
EPS = timedelta(microseconds=5)  # the PLC stamps changes in whole microseconds (+1 us per repeat)


def config(
    ttf: dict[str, Any] = WEIBULL,
    interval_s: float = 1800.0,
    poll_s: float = 7.0,
    no_faults_on: tuple[str, ...] = ("L2",),
) -> VariabilityConfig:
    return VariabilityConfig.model_validate(
        {
            "state_poll_s": poll_s,
            "default": {
                "faults": {
                    "time_to_failure": ttf,
                    "repair_time": LOGNORMAL,
                    "fault_code": {"kind": "categorical", "weights": CODES},
                },
                "quality_error": {"interval_s": interval_s, "distribution": QUALITY},
                "feed_rate": {"interval_s": interval_s, "distribution": FEED},
            },
            "lines": {line: {"faults": {"enabled": False}} for line in no_faults_on},
        }
    )


def slow_lines() -> list[LineParams]:
    """Two lines at 2 parts/min with hourly accumulators: hundreds of simulated hours cost the PLC
    few value changes, so the test spends its wall time on the engine and the OPC UA round trips."""
    return [LineParams(line, design_speed_ppm=2.0, accumulator_period_s=3600.0) for line in ("L1", "L2")]


def ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


async def drive(
    plc: PlcServer,
    engine: VariabilityEngine,
    until: Callable[[], bool],
    seed: int,
    align: bool = True,
    max_hours: float = 400.0,
) -> datetime:
    """Step the PLC by 10-30 s (shortened to land on the engine's next due time when `align`) and
    hand every new PLC time to the engine, as the collector does with Clock.Now notifications."""
    rng = np.random.default_rng(seed)
    now = T0
    while not until():
        dt = float(rng.uniform(10.0, 30.0))
        due = engine.next_due()
        if align and due is not None:
            dt = min(dt, max(0.0, (due - now).total_seconds()) + 1e-6)
        now = ts(await plc.step(dt))
        await engine.on_clock(now)
        assert now - T0 < timedelta(hours=max_hours), "the engine stopped injecting faults"
    return now


class Recorder:
    """Subscription handler: every data change with its PLC source timestamp, per (line, tag)."""

    def __init__(self, keys: dict[ua.NodeId, tuple[str, str]]) -> None:
        self.keys = keys
        self.changes: dict[tuple[str, str], list[tuple[datetime, Any]]] = {k: [] for k in keys.values()}
        self.count = 0

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.changes[self.keys[node.nodeid]].append((data.monitored_item.Value.SourceTimestamp, val))
        self.count += 1

    async def drain(self, client: Client, limit: float = 60.0) -> None:
        """Wait until the server has published everything: for every tag, the change it holds now has
        arrived (a condition; a quiet spell of a fixed length would end early on a loaded machine)."""
        latest = {
            key: (await client.get_node(nodeid).read_data_value()).SourceTimestamp for nodeid, key in self.keys.items()
        }
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not all(self.changes[key] and max(t for t, _ in self.changes[key]) >= ts for key, ts in latest.items()):
            assert loop.time() < deadline, f"notifications still missing after {limit} s"
            await asyncio.sleep(0.05)

    def sorted(self, line: str, tag: str) -> list[tuple[datetime, Any]]:
        return sorted(self.changes[(line, tag)], key=lambda c: c[0])


async def record(client: Client, keys: list[tuple[str, str]]) -> Recorder:
    ns = await client.get_namespace_index(TAGS.namespace_uri)
    ids = {ua.NodeId(f"|var|{RT}.Application.{line}.{tag}", ns): (line, tag) for line, tag in keys}
    recorder = Recorder(ids)
    sub = await client.create_subscription(50, recorder)
    await sub.subscribe_data_change([client.get_node(n) for n in ids], queuesize=0)
    await asyncio.sleep(0.2)
    return recorder


def entries(changes: list[tuple[datetime, Any]], state: int) -> list[datetime]:
    return [t for t, v in changes if v == state]


def as_of(changes: list[tuple[datetime, Any]], at: datetime) -> Any:
    """Value of a tag at `at` (the last change at or before it): how the pipeline joins stop reasons."""
    value = None
    for t, v in changes:
        if t > at + EPS:
            break
        value = v
    return value


def of(rows: list[dict[str, Any]], line: str, kind: str) -> list[dict[str, Any]]:
    return [r for r in rows if r["line_id"] == line and r["kind"] == kind]


# ---------------------------------------------------------------------------------------- real PLC


async def test_observed_failures_repairs_codes_and_setpoints_follow_the_injected_distributions(start_plc: Any) -> None:
    n_faults = 300
    async with start_plc(lines=slow_lines()) as plc, insecure_client(plc) as client:
        rec = await record(
            client,
            [
                ("L1", "Status.StateCurrent"),
                ("L2", "Status.StateCurrent"),
                ("L1", "Admin.StopReason.ID"),
                ("L1", "Sim.FeedRate"),
                ("L1", "Sim.QualityErrorMm"),
            ],
        )
        rows: list[dict[str, Any]] = []
        engine = VariabilityEngine(config(), ["L1", "L2"], 42, AsyncuaPlcPort(client), rows.append, "session-a")
        await engine.start(T0)
        end = await drive(plc, engine, lambda: len(of(rows, "L1", "fault_end")) >= n_faults, seed=1)
        end = await drive(plc, engine, lambda: ts(plc.clock.now()) >= end + timedelta(seconds=60), seed=2)
        await rec.drain(client)
        ns = await client.get_namespace_index(TAGS.namespace_uri)
        feed_now = await client.get_node(ua.NodeId(f"|var|{RT}.Application.L1.Sim.FeedRate", ns)).read_value()
        quality_now = await client.get_node(ua.NodeId(f"|var|{RT}.Application.L1.Sim.QualityErrorMm", ns)).read_value()

    starts, ends = of(rows, "L1", "fault_start"), of(rows, "L1", "fault_end")
    states = rec.sorted("L1", "Status.StateCurrent")
    aborting, clearing = entries(states, S.Aborting), entries(states, S.Clearing)
    executing = entries(states, S.Execute)

    # Every fault the PLC went through is one fault_start row at the same instant, every Clear one fault_end row.
    assert len(aborting) == len(starts) and len(clearing) == len(ends) >= n_faults
    assert all(abs(r["event_ts"] - t) <= EPS for r, t in zip(starts, aborting))
    assert all(abs(r["event_ts"] - t) <= EPS for r, t in zip(ends, clearing))

    # OBSERVED time between failures: Execute entry (end of the previous repair) -> Aborting, from the PLC's timestamps.
    observed_ttf = np.array([(a - max(e for e in executing if e < a)).total_seconds() for a in aborting])
    assert np.allclose(observed_ttf, [r["value"] for r in starts], atol=1e-3)  # the ground truth is the truth
    for r, t in zip(starts, aborting):
        assert json.loads(r["params"])["context"]["uptime_start_ts"] == max(e for e in executing if e < t).isoformat()
    ks = stats.kstest(observed_ttf, stats.weibull_min(c=1.5, scale=1800.0).cdf)
    wrong = stats.kstest(observed_ttf, stats.weibull_min(c=1.5, scale=1800.0 * 1.3).cdf)
    assert ks.pvalue > 0.01, f"observed TTF vs Weibull(1.5, 1800): p={ks.pvalue:.3g}"
    assert wrong.pvalue < 0.01, f"a 30 % wrong scale is not detected: p={wrong.pvalue:.3g}"

    # OBSERVED repair: Aborting -> Clearing (the engine's Clear), against the configured lognormal.
    observed_repair = np.array([(c - a).total_seconds() for a, c in zip(aborting, clearing)])
    assert np.allclose(observed_repair, [r["value"] for r in ends], atol=1e-3)
    assert stats.kstest(observed_repair, stats.lognorm(s=0.4, scale=120.0).cdf).pvalue > 0.01
    assert stats.kstest(observed_repair, stats.lognorm(s=0.4, scale=150.0).cdf).pvalue < 0.01

    # OBSERVED fault codes: the PLC's Admin.StopReason.ID at each Aborting entry, against the weights.
    reasons = rec.sorted("L1", "Admin.StopReason.ID")
    codes = [as_of(reasons, t) for t in aborting]
    assert codes == [r["fault_code"] for r in starts] == [r["fault_code"] for r in ends]
    counts = [codes.count(c) for c in CODES]
    assert sum(counts) == len(codes)
    total = sum(CODES.values())
    assert stats.chisquare(counts, [len(codes) * w / total for w in CODES.values()]).pvalue > 0.01
    assert stats.chisquare(counts, [len(codes) / 3] * 3).pvalue < 0.01

    # Feed rate and quality error: every draw reached its Sim tag (subscription, same instant, same value).
    for tag, kind in (("Sim.FeedRate", "feed_rate"), ("Sim.QualityErrorMm", "quality_shift")):
        seen = rec.sorted("L1", tag)
        injected = of(rows, "L1", kind)
        assert len(seen) == len(injected) + 1  # + the value before the engine started
        assert [v for _, v in seen[1:]] == [r["value"] for r in injected]
        assert all(abs(t - r["event_ts"]) <= EPS for (t, _), r in zip(seen[1:], injected))
    assert feed_now == of(rows, "L1", "feed_rate")[-1]["value"]
    assert quality_now == of(rows, "L1", "quality_shift")[-1]["value"]
    feed_seen = np.array([v for _, v in rec.sorted("L1", "Sim.FeedRate")[1:]])
    assert len(feed_seen) >= 250 and stats.kstest(feed_seen, stats.uniform(1.0, 2.0).cdf).pvalue > 0.01
    # quality: standardised by the drifting mean at the write's simulated hour
    q_seen = rec.sorted("L1", "Sim.QualityErrorMm")[1:]
    hours = np.array([(t - T0).total_seconds() / 3600 for t, _ in q_seen])
    values = np.array([v for _, v in q_seen])
    assert stats.kstest((values - 0.0001 * hours) / 0.005, "norm").pvalue > 0.01
    assert stats.kstest(values / 0.005, "norm").pvalue < 0.01  # the drift is really there

    # L2 has faults disabled: it never aborted but got its feed rate and quality draws.
    assert S.Aborting not in [v for _, v in rec.sorted("L2", "Status.StateCurrent")]
    assert {r["kind"] for r in rows if r["line_id"] == "L2"} == {"feed_rate", "quality_shift"}

    # Rows: one per injection, complete and well formed.
    assert engine.injections == len(rows)
    for line in ("L1", "L2"):
        seqs = [r["seq"] for r in rows if r["line_id"] == line]
        assert seqs == list(range(1, len(seqs) + 1))
    kinds = [r["kind"] for r in rows if r["line_id"] == "L1" and r["kind"].startswith("fault")]
    assert kinds == ["fault_start", "fault_end"] * len(starts)
    for r in rows:
        assert r["session_id"] == "session-a" and r["seed"] == 42 and r["day"] == r["event_ts"].strftime("%Y-%m-%d")
        assert T0 <= r["event_ts"] <= end and r["event_ts"].tzinfo is not None
        params = json.loads(r["params"])
        assert params["distribution"] == r["distribution"]
    first = json.loads(starts[0]["params"])
    assert (first["shape"], first["scale"], first["unit"]) == (1.5, 1800.0, "s")
    assert first["context"]["fault_code_distribution"]["weights"] == {"101": 5.0, "205": 3.0, "317": 2.0}
    assert json.loads(ends[0]["params"])["context"]["time_to_failure_s"] == starts[0]["value"]
    assert len({r["day"] for r in rows}) >= 6  # ~150 simulated hours cross day partitions


async def test_same_seed_gives_the_same_injections_even_with_unaligned_steps(start_plc: Any) -> None:
    runs: list[list[dict[str, Any]]] = []
    for _ in range(2):
        async with start_plc(lines=slow_lines()) as plc, insecure_client(plc) as client:
            rows: list[dict[str, Any]] = []
            engine = VariabilityEngine(
                config(ttf={"kind": "weibull", "shape": 1.5, "scale": 600.0}, interval_s=900.0),
                ["L1", "L2"],
                7,
                AsyncuaPlcPort(client),
                rows.append,
                f"session-{len(runs)}",
            )
            await engine.start(T0)
            await drive(plc, engine, lambda: len(of(rows, "L1", "fault_end")) >= 12, seed=3, align=False)  # noqa: B023 - awaited within the iteration
            runs.append(rows)
    strip = [[{k: v for k, v in r.items() if k != "session_id"} for r in rows] for rows in runs]
    assert strip[0] == strip[1]
    # Clock ticks that do not land on due times make faults late by less than one tick, never early,
    # and the row says both when the fault was due and when it was written.
    for r in of(runs[0], "L1", "fault_start"):
        context = json.loads(r["params"])["context"]
        due = datetime.fromisoformat(context["due_ts"])
        assert due == datetime.fromisoformat(context["uptime_start_ts"]) + timedelta(seconds=r["value"])
        assert timedelta(0) <= r["event_ts"] - due < timedelta(seconds=30)


async def test_asyncua_port_sends_the_tag_map_types_and_reads_state_with_its_entry_time(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        port = AsyncuaPlcPort(client)
        state = await port.state("L1")
        assert state.state == S.Resetting and state.since is not None and abs(state.since - T0) <= EPS
        await plc.step(20)
        state = await port.state("L1")  # entered at +9 s (Resetting 4 s, Starting 5 s), read at +20 s
        assert (
            state.state == S.Execute
            and state.since is not None
            and abs(state.since - (T0 + timedelta(seconds=9))) <= EPS
        )
        await port.write("L1", "Sim.FeedRate", 50)  # an int for a Double tag: sent as Double
        await port.write("L1", "Sim.FaultCode", 42.0)  # an integral float for an Int32 tag: sent as Int32
        await plc.step(1)
        assert plc.line("L1").feed_ppm == 50.0 and plc.line("L1").fault_code == 42
        with pytest.raises(ValueError, match=r"Admin\.ProdProcessedCount is read-only"):
            await port.write("L1", "Admin.ProdProcessedCount", 1)
        with pytest.raises(TypeError, match=r"Sim.FaultCode \(Int32\) needs an integer"):
            await port.write("L1", "Sim.FaultCode", 4.5)
        with pytest.raises(TypeError, match="needs a bool"):
            await port.write("L1", "Sim.FaultRequest", "yes")
        with pytest.raises(UaStatusCodeError):  # the PLC's own range check still applies
            await port.write("L1", "Sim.FaultCode", 1000)
        await port.command("L1", Cmd.Hold)
        await plc.step(5)
        state = await port.state("L1")  # Hold at +21 s, Holding takes 2 s
        assert (
            state.state == S.Held and state.since is not None and abs(state.since - (T0 + timedelta(seconds=23))) <= EPS
        )


# ------------------------------------------------------------------------------------ in-memory PLC


class FakePlc:
    """A PlcPort whose PackML reacts at once: enough to test the engine's bookkeeping without a server."""

    def __init__(self, lines: list[str], fail_writes: int = 0) -> None:
        self.now = T0
        self.states = {line: LineState(S.Execute, T0) for line in lines}
        self.writes: list[tuple[datetime, str, str, Any]] = []
        self.fail_writes = fail_writes

    def set(self, line: str, state: int) -> None:
        self.states[line] = LineState(state, self.now)

    async def write(self, line: str, path: str, value: Any) -> None:
        if self.fail_writes:
            self.fail_writes -= 1
            raise ConnectionError("link down")
        self.writes.append((self.now, line, path, value))
        if path == "Sim.FaultRequest" and value and self.states[line].state not in (S.Aborting, S.Aborted):
            self.set(line, S.Aborted)

    async def command(self, line: str, cmd: int) -> None:
        await self.write(line, "Command.CntrlCmd", cmd)
        step = {(S.Aborted, Cmd.Clear): S.Stopped, (S.Stopped, Cmd.Reset): S.Idle, (S.Idle, Cmd.Start): S.Execute}
        target = step.get((self.states[line].state, cmd))
        if target is not None:
            self.set(line, target)

    async def state(self, line: str) -> LineState:
        return self.states[line]


async def run_fake(
    cfg: VariabilityConfig, lines: list[str], seed: int, hours: float, tick_s: float = 30.0, fake: FakePlc | None = None
) -> tuple[list[dict[str, Any]], FakePlc]:
    fake = fake or FakePlc(lines)
    rows: list[dict[str, Any]] = []
    engine = VariabilityEngine(cfg, lines, seed, fake, rows.append, "s")
    await engine.start(T0)
    while fake.now < T0 + timedelta(hours=hours):
        fake.now += timedelta(seconds=tick_s)
        await engine.on_clock(fake.now)
    return rows, fake


def draws_of(rows: list[dict[str, Any]], line: str, kinds: tuple[str, ...]) -> list[tuple[str, float, Any]]:
    return [(r["kind"], r["value"], r["fault_code"]) for r in rows if r["line_id"] == line and r["kind"] in kinds]


async def test_adding_a_line_or_disabling_a_signal_does_not_change_the_other_draws() -> None:
    cfg = config(no_faults_on=())
    one, _ = await run_fake(cfg, ["L1"], 5, hours=24)
    two, _ = await run_fake(cfg, ["L1", "L3"], 5, hours=24)
    assert one == [r for r in two if r["line_id"] == "L1"]
    no_quality = cfg.model_copy(update={"default": cfg.default.model_copy(update={"quality_error": None})})
    fewer, _ = await run_fake(no_quality, ["L1"], 5, hours=24)
    faults = ("fault_start", "fault_end", "feed_rate")
    assert draws_of(fewer, "L1", faults) == draws_of(one, "L1", faults) != []
    other_seed, _ = await run_fake(cfg, ["L1"], 6, hours=24)
    assert draws_of(other_seed, "L1", faults) != draws_of(one, "L1", faults)
    # streams are keyed by (seed, line, signal)
    assert signal_rng(5, "L1", "feed_rate").random() != signal_rng(5, "L1", "quality_error").random()
    assert signal_rng(5, "L1", "feed_rate").random() == signal_rng(5, "L1", "feed_rate").random()


async def test_a_late_clock_performs_every_due_action_in_time_order() -> None:
    cfg = config(interval_s=600.0, no_faults_on=())
    fine, _ = await run_fake(cfg, ["L1"], 9, hours=2, tick_s=1.0)
    coarse, fake = await run_fake(cfg, ["L1"], 9, hours=2, tick_s=7200.0)
    feed = [(r["value"], json.loads(r["params"])["context"]["due_ts"]) for r in of(fine, "L1", "feed_rate")]
    assert feed == [(r["value"], json.loads(r["params"])["context"]["due_ts"]) for r in of(coarse, "L1", "feed_rate")]
    late = of(coarse, "L1", "feed_rate")[1:]
    assert {r["event_ts"] for r in late} == {T0 + timedelta(hours=2)}  # written when the clock said so
    written = [v for t, _, p, v in fake.writes if p == "Sim.FeedRate"]
    assert written == [r["value"] for r in of(coarse, "L1", "feed_rate")]  # in due order: the last draw stays


async def test_a_failed_write_is_retried_with_the_same_draw_and_one_row() -> None:
    fake = FakePlc(["L1"], fail_writes=1)
    rows: list[dict[str, Any]] = []
    cfg = VariabilityConfig.model_validate({"default": {"feed_rate": {"interval_s": 60, "distribution": FEED}}})
    engine = VariabilityEngine(cfg, ["L1"], 3, fake, rows.append, "s")
    with pytest.raises(ConnectionError):
        await engine.start(T0)
    assert rows == [] and engine.injections == 0
    fake.now = T0 + timedelta(seconds=1)
    await engine.on_clock(fake.now)
    assert len(rows) == 1 and fake.writes[0][3] == rows[0]["value"] == signal_rng(3, "L1", "feed_rate").uniform(1, 3)
    with pytest.raises(RuntimeError, match="already called"):
        await engine.start(T0)


async def test_a_fault_due_while_the_operator_has_stopped_the_line_is_abandoned() -> None:
    cfg = config(ttf={"kind": "constant", "value": 600.0}, no_faults_on=())
    fake = FakePlc(["L1"])
    rows: list[dict[str, Any]] = []
    engine = VariabilityEngine(cfg, ["L1"], 1, fake, rows.append, "s")
    await engine.start(T0)
    fake.now = T0 + timedelta(seconds=300)
    fake.set("L1", S.Stopped)  # operator stop
    fake.now = T0 + timedelta(seconds=900)
    await engine.on_clock(fake.now)
    assert of(rows, "L1", "fault_start") == [] and engine.abandoned_faults == 1
    fake.set("L1", S.Execute)  # operator restart at +900 s: a new time to failure counts from here
    for minutes in range(16, 40):
        fake.now = T0 + timedelta(minutes=minutes)
        await engine.on_clock(fake.now)
    (start,) = of(rows, "L1", "fault_start")[:1]
    assert start["event_ts"] == T0 + timedelta(seconds=1500)
    assert json.loads(start["params"])["context"]["uptime_start_ts"] == (T0 + timedelta(seconds=900)).isoformat()


async def test_an_operator_clearing_the_fault_first_ends_it_and_the_engine_finishes_the_restart() -> None:
    cfg = VariabilityConfig.model_validate(
        {
            "state_poll_s": 5.0,
            "default": {
                "faults": {
                    "time_to_failure": {"kind": "constant", "value": 600.0},
                    "repair_time": {"kind": "constant", "value": 300.0},
                }
            },
        }
    )
    fake = FakePlc(["L1"])
    rows: list[dict[str, Any]] = []
    engine = VariabilityEngine(cfg, ["L1"], 1, fake, rows.append, "s")
    await engine.start(T0)
    fake.now = T0 + timedelta(seconds=600)
    await engine.on_clock(fake.now)
    assert fake.states["L1"].state == S.Aborted and [r["fault_code"] for r in rows] == [999]  # no codes: unspecified
    fake.now = T0 + timedelta(seconds=700)
    fake.set("L1", S.Stopped)  # the operator cleared it before the repair was over
    for seconds in range(900, 1000, 5):
        fake.now = T0 + timedelta(seconds=seconds)
        await engine.on_clock(fake.now)
    assert [r["kind"] for r in rows] == ["fault_start", "fault_end"]
    assert json.loads(rows[1]["params"])["context"]["cleared_by"] == "external"
    assert [v for _, _, p, v in fake.writes if p == "Command.CntrlCmd"] == [Cmd.Reset, Cmd.Start]
    assert fake.states["L1"] == LineState(S.Execute, T0 + timedelta(seconds=905))
    assert engine.next_due() == T0 + timedelta(seconds=905 + 600)  # the next TTF counts from the restart


async def test_on_clock_before_start_is_an_error() -> None:
    engine = VariabilityEngine(config(), ["L1", "L2"], 1, FakePlc(["L1", "L2"]), lambda r: None, "s")
    with pytest.raises(RuntimeError, match="start"):
        await engine.on_clock(T0)
    assert engine.next_due() is None


# ------------------------------------------------------------------------------------------- config

EXAMPLE = """
[variability]
enabled = true
seed = 42
state_poll_s = 1.0

[variability.default.faults]
time_to_failure = { kind = "weibull", shape = 1.5, scale = 14400.0 }
repair_time = { kind = "lognormal", median = 600.0, sigma = 0.5 }
fault_code = { kind = "categorical", weights = { 101 = 5.0, 205 = 3.0, 317 = 2.0 } }

[variability.default.quality_error]
mode = "per_interval"
interval_s = 900.0
distribution = { kind = "normal", mean = 0.0, sd = 0.01, drift_per_hour = 0.0005 }

[variability.default.feed_rate]
interval_s = 600.0
distribution = { kind = "uniform", low = 95.0, high = 115.0 }

[variability.lines.L2.faults]
enabled = false

[variability.lines.L3.feed_rate]
distribution = { kind = "triangular", left = 60.0, mode = 80.0, right = 85.0 }
"""


def test_toml_config_with_per_line_sections() -> None:
    raw = tomllib.loads(EXAMPLE)["variability"]
    raw.pop("enabled"), raw.pop("seed")  # taken by the collector (engine_setup)
    cfg = VariabilityConfig.model_validate(raw)
    l1, l2, l3 = (cfg.for_line(line) for line in ("L1", "L2", "L3"))
    assert l1 == cfg.default
    assert l1.faults is not None and l1.faults.fault_code is not None
    assert l1.faults.fault_code.probabilities() == {101: 0.5, 205: 0.3, 317: 0.2}
    assert l2.faults is not None and not l2.faults.enabled and l2.feed_rate == l1.feed_rate
    assert l3.faults == l1.faults and l3.feed_rate is not None and l3.feed_rate.distribution is not None
    assert l3.feed_rate.distribution.kind == "triangular" and l3.feed_rate.interval_s == 600.0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"default": {"faults": {"time_to_failure": WEIBULL}}}, "faults needs repair_time"),
        (
            {
                "default": {
                    "faults": {"time_to_failure": {"kind": "normal", "mean": 60, "sd": 10}, "repair_time": LOGNORMAL}
                }
            },
            "can draw negative durations",
        ),
        (
            {
                "default": {
                    "faults": {
                        "time_to_failure": WEIBULL,
                        "repair_time": LOGNORMAL,
                        "fault_code": {"weights": {1000: 1.0}},
                    }
                }
            },
            "codes must be 1..999",
        ),
        (
            {
                "default": {
                    "faults": {
                        "time_to_failure": WEIBULL,
                        "repair_time": LOGNORMAL,
                        "fault_code": {"kind": "constant", "value": 5},
                    }
                }
            },
            "categorical",
        ),
        ({"default": {"feed_rate": {"distribution": {"kind": "normal", "mean": 100, "sd": 5}}}}, "accepts 0..1e+06"),
        ({"default": {"feed_rate": {"interval_s": 0, "distribution": FEED}}}, "greater than 0"),
        ({"default": {"quality_error": {"interval_s": 60}}}, "distribution is required"),
        ({"default": {"quality_error": {"mode": "per_part", "distribution": QUALITY}}}, "per_interval"),
        ({"default": {"feed_rate": {"distribution": {"kind": "uniform", "low": 3, "high": 1}}}}, "low < high"),
        ({"defaults": {}}, "Extra inputs are not permitted"),
    ],
)
def test_config_errors_say_what_to_fix(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        VariabilityConfig.model_validate(raw)
    assert message in str(excinfo.value)


def test_engine_refuses_unknown_lines_and_bad_seeds() -> None:
    cfg = config()
    with pytest.raises(ValueError, match=r"\['L2'\], which are not among the collected lines \['L1'\]"):
        VariabilityEngine(cfg, ["L1"], 1, FakePlc(["L1"]), lambda r: None, "s")
    with pytest.raises(ValueError, match=r"seed must be in 0\.\.2"):
        VariabilityEngine(cfg, ["L1", "L2"], -1, FakePlc(["L1", "L2"]), lambda r: None, "s")
