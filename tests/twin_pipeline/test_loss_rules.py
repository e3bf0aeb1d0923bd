"""The six-big-loss rules on a hand-made hour: small stops are the zero-speed runs in Execute that resumed
(a stop's lead-in is small-stop time but no small stop), start-up rejects are the rejects after a restart
before its first good part, and the losses add up to the OEE figures, computed by hand."""

from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import polars as pl
import pytest

from plc.tagmap import PackMLState as S
from tests.conftest import T0
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, FACT_OEE_SHIFT, SILVER_STATE_INTERVALS
from twin_pipeline.lib.transforms.losses import loss_rows, loss_totals_problems, small_stops, startup_rejects
from twin_pipeline.lib.transforms.oee import TIME_ELEMENT

WINDOW = ShiftWindow("2026-11-24-0600", "early", T0, T0 + timedelta(hours=1))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


#: Execute 0-1000 s, fault 1000-1400 (Aborting/Aborted/Clearing), setup 1400-1420 (Stopped..Starting),
#: Execute 1420-3600.
STATES = [(0, S.Execute), (1000, S.Aborted), (1400, S.Stopped), (1410, S.Starting), (1420, S.Execute)]
#: 60 parts/min design, ideal cycle 1 s. Speed: 60, jam 100-104 (resumed), 0 from 995 (the fault's lead-in),
#: 30 from 1420 (reduced), jam 2000-2010.
SPEEDS = [(0, 60.0), (100, 0.0), (104, 60.0), (995, 0.0), (1420, 30.0), (2000, 0.0), (2010, 30.0)]


def samples(parts: list[tuple[float, bool]]) -> pl.DataFrame:
    rows = [("Status.StateCurrent", t, float(v)) for t, v in STATES] + [
        ("Status.CurMachSpeed", t, v) for t, v in SPEEDS
    ]
    made = rejected = 0
    for t, bad in parts:
        made += 1
        rows.append(("Admin.ProdProcessedCount", t, float(made)))
        if bad:
            rejected += 1
            rows.append(("Admin.ProdDefectiveCount", t, float(rejected)))
    frame = pl.DataFrame(
        {
            "shift_id": WINDOW.shift_id,
            "line_id": "L1",
            "tag": [r[0] for r in rows],
            "source_ts": [at(r[1]) for r in rows],
            "value": [r[2] for r in rows],
            "is_good": True,
            "carried_in": False,
        }
    )
    return frame.with_columns(
        *(pl.lit(None, dtype).alias(name) for name, dtype in BRONZE_SAMPLES.items() if name not in frame.columns)
    ).select(list(BRONZE_SAMPLES))


def intervals() -> pl.DataFrame:
    bounds = [*STATES, (3600, None)]
    rows = [
        {
            "shift_id": WINDOW.shift_id,
            "line_id": "L1",
            "state": int(s),
            "state_name": S(s).name,
            "time_element": TIME_ELEMENT[int(s)],
            "start": at(a),
            "end": at(b),
            "duration_s": float(b - a),
            "stop_reason": None if s == S.Execute else 101,
            "in_gap": False,
            "planned_break": False,
        }
        for (a, s), (b, _) in itertools.pairwise(bounds)
    ]
    return pl.DataFrame(rows, schema=SILVER_STATE_INTERVALS)


def test_a_jam_that_resumed_is_a_small_stop_and_a_stops_lead_in_is_only_time() -> None:
    seconds, count, runs = small_stops(samples([]), intervals(), "L1")
    assert runs == [(at(100), at(104)), (at(2000), at(2010))]
    assert count == 2 and seconds == pytest.approx(4 + 5 + 10)  # 995-1000 counts as time


def test_startup_rejects_end_at_the_first_good_part() -> None:
    parts = [(10, True), (1425, True), (1427, True), (1429, False), (1431, True)]
    assert startup_rejects(samples(parts), WINDOW, "L1") == (2, 1)  # 10 s is no restart; 1431 is production


def test_the_six_losses_add_up_to_the_oee_figures() -> None:
    # 2800 parts, 3 rejects (2 after the restart): APT 1000 + 2180 = 3180 s, PBT 3600 s, ideal cycle 1 s
    parts = [(1425, True), (1427, True), (1429, False), (1431, True)] + [(2100 + i * 0.5, False) for i in range(2796)]
    oee = pl.DataFrame(
        [
            {
                **dict.fromkeys(FACT_OEE_SHIFT.names()),
                "shift_id": WINDOW.shift_id,
                "line_id": "L1",
                "planned_busy_time_s": 3600.0,
                "actual_production_time_s": 3180.0,
                "ideal_cycle_time_s": 1.0,
                "produced": 2800,
                "good": 2797,
                "reject": 3,
            }
        ],
        schema=FACT_OEE_SHIFT,
    )
    losses = loss_rows(oee, intervals(), samples(parts), WINDOW)
    by = {(r["loss"], r["cause"]): r for r in losses.iter_rows(named=True)}
    assert by[("breakdowns", "fault")]["seconds"] == 400 and by[("breakdowns", "fault")]["count"] == 1
    assert by[("breakdowns", "fault")]["time_element"] == "ADET"
    assert by[("setup_adjustment", "fault")]["seconds"] == 20 and by[("setup_adjustment", "fault")]["count"] == 1
    assert by[("small_stops", "speed 0 in Execute")]["seconds"] == pytest.approx(19)
    assert by[("reduced_speed", None)]["seconds"] == pytest.approx(3180 - 2800 - 19)  # APT - ICT x produced - small
    assert by[("startup_rejects", None)]["parts"] == 2 and by[("production_rejects", None)]["parts"] == 1
    assert loss_totals_problems(losses, oee) == []
    # PBT - every loss = ICT x good
    assert 3600 - losses["seconds"].sum() == pytest.approx(2797)
    wrong = losses.with_columns(
        pl.when(pl.col("loss") == "small_stops")
        .then(pl.col("seconds") + 5)
        .otherwise(pl.col("seconds"))
        .alias("seconds")
    )
    assert len(loss_totals_problems(wrong, oee)) == 2  # performance loss and the fully productive time
