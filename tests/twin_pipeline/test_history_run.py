"""`twin up`'s run of the seeded shifts (twin_pipeline/launcher/history_run.py) against a recording
GraphQL stand-in and a real gold Delta table: what it launches (one run tagged with the range, then the
dimensions), when it launches nothing (gold already there, nothing seeded), and the banner's lines.
The real webserver path runs in tests/twin_pipeline/test_twin_up.py."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

from twin_pipeline.launcher.history_run import HistoryRun
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT

SHIFTS = ["2026-11-24-0600", "2026-11-24-1400", "2026-11-24-2200"]


class FakeUI:
    url = "http://127.0.0.1:3999"

    def __init__(self, statuses: list[str]) -> None:
        self.launched: list[dict[str, Any]] = []
        self.statuses = statuses

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        variables = dict(variables or {})
        if "launchRun" in query:
            self.launched.append(variables["params"])
            return {"launchRun": {"__typename": "LaunchRunSuccess", "run": {"runId": f"run-{len(self.launched)}"}}}
        return {"runOrError": {"__typename": "Run", "status": self.statuses.pop(0)}}


def write_gold(lake: Path, shifts: list[str]) -> None:
    t = datetime(2026, 11, 24, 5, tzinfo=UTC)
    rows = [
        {
            **dict.fromkeys(FACT_OEE_SHIFT),
            "shift_id": s,
            "line_id": line,
            "shift_start": t,
            "shift_end": t,
            "planned_busy_time_s": 25200.0,
            "actual_production_time_s": apt,
            "ideal_cycle_time_s": 0.5,
            "produced": produced,
            "good": produced - 1000,
            "provisional": False,
        }
        for s in shifts
        for line, apt, produced in (("L1", 21000.0, 40000), ("L2", 25200.0, 36000))
    ]
    pl.DataFrame(rows, schema=FACT_OEE_SHIFT).write_delta(str(lake / "gold" / "fact_oee_shift"))


def tags(params: dict[str, Any]) -> dict[str, str]:
    return {t["key"]: t["value"] for t in params["executionMetadata"]["tags"]}


def test_it_launches_one_run_over_the_seeded_range_then_the_dimensions(tmp_path: Path) -> None:
    ui = FakeUI(["STARTED", "SUCCESS"])
    history = HistoryRun(ui, tmp_path, SHIFTS)
    line = history.launch()
    assert line == (
        "2026-11-24-0600 .. 2026-11-24-2200 (3 seeded shifts): materializing bronze -> silver -> gold now, "
        "run http://127.0.0.1:3999/runs/run-1"
    )
    (run,) = ui.launched
    assert run["selector"]["jobName"] == "shift_oee" and "assetSelection" not in run["selector"]
    assert tags(run)["dagster/asset_partition_range_start"] == SHIFTS[0]
    assert tags(run)["dagster/asset_partition_range_end"] == SHIFTS[-1]
    assert int(tags(run)["dagster/priority"]) > 0  # ahead of the sensors' runs in the queue

    assert history.poll(every_s=0) is None  # STARTED
    write_gold(tmp_path, SHIFTS)  # what the run wrote
    done = history.poll(every_s=0)
    # L1: A x P = 0.5 s x 40000 / 25200 s, Q = 39000/40000 -> 77.4 %; L2: 0.5 x 36000 / 25200 x 35000/36000 -> 69.4 %;
    # the shift, rolled up (lib/transforms/oee.py roll_up): 0.5 x 76000 / 50400 x 74000/76000 -> 73.4 %
    assert done is not None and done.startswith("history: gold ready for 3 shifts ")
    assert done.endswith("; 2026-11-24-2200: OEE 73.4 % (L1 77.4 %, L2 69.4 %) (Assets > gold > fact_oee_shift)")
    dims = ui.launched[1]["selector"]
    assert dims["jobName"] == "__ASSET_JOB"
    assert [a["path"] for a in dims["assetSelection"]] == [
        ["gold", "dim_shift"],
        ["gold", "dim_line"],
        ["gold", "dim_date"],
    ]
    assert history.poll(every_s=0) is None and len(ui.launched) == 2  # reported once


def test_a_failed_run_is_reported_with_its_link(tmp_path: Path) -> None:
    ui = FakeUI(["FAILURE"])
    history = HistoryRun(ui, tmp_path, SHIFTS)
    history.launch()
    done = history.poll(every_s=0)
    assert done is not None and "ended FAILURE" in done and done.endswith("http://127.0.0.1:3999/runs/run-1")
    assert len(ui.launched) == 1  # no dimensions after a failure


def test_nothing_is_launched_when_gold_has_every_seeded_shift_or_nothing_was_seeded(tmp_path: Path) -> None:
    write_gold(tmp_path, SHIFTS)
    ui = FakeUI([])
    line = HistoryRun(ui, tmp_path, SHIFTS).launch()
    assert line.endswith(": gold done earlier, OEE 73.4 % (L1 77.4 %, L2 69.4 %) in 2026-11-24-2200")
    assert HistoryRun(ui, tmp_path, []).launch() == "none seeded"
    assert ui.launched == []
    # one seeded shift missing from gold: launched again, over the whole range
    assert "materializing" in HistoryRun(ui, tmp_path, [*SHIFTS, "2026-11-25-0600"]).launch()
    assert len(ui.launched) == 1
