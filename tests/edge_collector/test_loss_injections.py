"""The six-big-loss injections live: the variability engine over a real asyncua client writes
starvation, blocking, micro-stops, reduced speed and start-up rejects into plc-sim (step mode), and the
line's OBSERVED PackTags show each one at the instant its injected_events row says."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from edge_collector.variability.engine import VariabilityConfig, VariabilityEngine
from edge_collector.variability.plc_port import AsyncuaPlcPort
from plc.line_model import LineParams
from plc.tagmap import PackMLState as S
from plc.tagmap import StopReason
from tests.conftest import T0, insecure_client
from tests.edge_collector.test_variability import EPS, as_of, drive, of, record, ts

EPISODES = {
    "starvation": {
        "interval": {"kind": "exponential", "mtbf": 900.0},
        "duration": {"kind": "uniform", "low": 30.0, "high": 90.0},
    },
    "blocking": {
        "interval": {"kind": "exponential", "mtbf": 900.0},
        "duration": {"kind": "uniform", "low": 20.0, "high": 60.0},
    },
    "micro_stops": {
        "interval": {"kind": "exponential", "mtbf": 120.0},
        "duration": {"kind": "uniform", "low": 2.0, "high": 6.0},
    },
    "reduced_speed": {
        "interval": {"kind": "exponential", "mtbf": 900.0},
        "duration": {"kind": "uniform", "low": 120.0, "high": 300.0},
        "speed_limit": {"kind": "uniform", "low": 3.0, "high": 5.0},
    },
    "startup_rejects": {"count": {"kind": "constant", "value": 3.0}},
}
CONFIG = VariabilityConfig.model_validate(
    {
        "state_poll_s": 2.0,
        "default": {
            "faults": {
                "time_to_failure": {"kind": "exponential", "mtbf": 1200.0},
                "repair_time": {"kind": "uniform", "low": 60.0, "high": 120.0},
            },
            **EPISODES,
        },
    }
)
TAGS_SEEN = [
    "Status.StateCurrent",
    "Status.CurMachSpeed",
    "Admin.StopReason.ID",
    "Admin.ProdProcessedCount",
    "Admin.ProdDefectiveCount",
]


async def test_each_injection_shows_in_the_line_at_its_instant(start_plc: Any) -> None:
    line = LineParams("L1", design_speed_ppm=6.0, feed_rate_ppm=6.0, tolerance_mm=1.0, accumulator_period_s=3600.0)
    async with start_plc(lines=[line]) as plc, insecure_client(plc) as client:
        rec = await record(client, [("L1", tag) for tag in TAGS_SEEN])
        rows: list[dict[str, Any]] = []
        engine = VariabilityEngine(CONFIG, ["L1"], 3, AsyncuaPlcPort(client), rows.append, "live")
        await engine.start(T0)
        await drive(plc, engine, lambda: ts(plc.clock.now()) >= T0 + timedelta(hours=3), seed=4)
        await rec.drain(client)

    kinds = {r["kind"] for r in rows}
    assert kinds >= {
        f"{k}_{p}" for k in ("starvation", "blocking", "micro_stop", "reduced_speed") for p in ("start", "end")
    }
    assert {"fault_start", "fault_end", "startup_rejects"} <= kinds
    state, speed = rec.sorted("L1", "Status.StateCurrent"), rec.sorted("L1", "Status.CurMachSpeed")
    reason = rec.sorted("L1", "Admin.StopReason.ID")
    made, rejected = rec.sorted("L1", "Admin.ProdProcessedCount"), rec.sorted("L1", "Admin.ProdDefectiveCount")

    for r in of(rows, "L1", "blocking_start"):  # blocked: Suspending at once, reason Blocked
        assert as_of(state, r["event_ts"]) == S.Suspending and as_of(reason, r["event_ts"]) == StopReason.Blocked
    for r in of(rows, "L1", "starvation_start"):  # starved: speed 0 at once, Suspending after the 5 s timeout
        assert as_of(speed, r["event_ts"]) == 0.0 and as_of(state, r["event_ts"]) == S.Execute
        later = r["event_ts"] + timedelta(seconds=5)
        assert as_of(state, later) == S.Suspending and as_of(reason, later) == StopReason.Starved
    micro = of(rows, "L1", "micro_stop_start")
    assert len(micro) > 20
    for start, end in zip(micro, of(rows, "L1", "micro_stop_end"), strict=False):  # Execute at speed 0, then resumes
        assert as_of(state, start["event_ts"]) == S.Execute and as_of(speed, start["event_ts"]) == 0.0
        assert as_of(state, end["event_ts"] - EPS) == S.Execute and as_of(speed, end["event_ts"]) > 0
    for r in of(rows, "L1", "reduced_speed_start"):  # below design speed while it lasts, when running
        if as_of(state, r["event_ts"]) == S.Execute and as_of(speed, r["event_ts"]) > 0:
            assert as_of(speed, r["event_ts"]) == pytest.approx(r["value"])
    restarts = [t for t, v in state if v == S.Execute]
    checked = 0
    for r in of(rows, "L1", "startup_rejects"):  # the first 3 parts after the restart are rejects
        entry = min(t for t in restarts if t > r["event_ts"])
        parts = [t for t, _ in made if t > entry][:4]
        if len(parts) < 4 or any(as_of(state, t) != S.Execute for t in parts):
            continue
        bad = {t for t, _ in rejected}
        assert [any(abs(t - b) <= EPS for b in bad) for t in parts] == [True, True, True, False]
        checked += 1
    assert checked >= 1


@pytest.mark.parametrize(
    ("section", "raw", "message"),
    [
        ("starvation", {"interval": {"kind": "exponential", "mtbf": 60.0}}, "duration is required"),
        (
            "micro_stops",
            {"interval": {"kind": "normal", "mean": 60.0, "sd": 5.0}, "duration": {"kind": "constant", "value": 2.0}},
            "negative seconds",
        ),
        (
            "reduced_speed",
            {"interval": {"kind": "constant", "value": 60.0}, "duration": {"kind": "constant", "value": 60.0}},
            "speed_limit is required",
        ),
        ("startup_rejects", {"count": {"kind": "uniform", "low": -1.0, "high": 3.0}}, "0..1000000 parts"),
    ],
)
def test_loss_config_errors_say_what_to_fix(section: str, raw: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        VariabilityConfig.model_validate({"default": {section: raw}})


async def test_stopping_episodes_never_overlap_and_a_fault_waits_for_the_one_running() -> None:
    """One cause per stop: a fault due during a blocking episode is injected after its end, and the
    three stopping kinds never run at once (reduced speed may overlap them)."""
    from tests.edge_collector.test_variability import run_fake

    faults = {
        "time_to_failure": {"kind": "constant", "value": 500.0},
        "repair_time": {"kind": "constant", "value": 60.0},
    }
    block = {"interval": {"kind": "constant", "value": 400.0}, "duration": {"kind": "constant", "value": 300.0}}
    cfg = VariabilityConfig.model_validate({"default": {"faults": faults, "blocking": block}})
    rows, _ = await run_fake(cfg, ["L1"], 2, hours=0.5, tick_s=1.0)
    assert of(rows, "L1", "blocking_start")[0]["event_ts"] == T0 + timedelta(seconds=400)
    # due at 500 s, inside the block 400..700 s: injected once it ended (and the engine polled the state)
    assert of(rows, "L1", "fault_start")[0]["event_ts"] == T0 + timedelta(seconds=701)

    rows, _ = await run_fake(CONFIG, ["L1"], 2, hours=2, tick_s=1.0)
    spans = []
    for kind in ("starvation", "blocking", "micro_stop"):
        spans += [
            (s["event_ts"], e["event_ts"])
            for s, e in zip(of(rows, "L1", f"{kind}_start"), of(rows, "L1", f"{kind}_end"), strict=False)
        ]
    spans.sort()
    assert len(spans) > 10 and all(a[1] <= b[0] for a, b in itertools.pairwise(spans))
