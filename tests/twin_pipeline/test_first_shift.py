"""Issue 14, the first five minutes: the shift partitions begin at the first shift with data (they began
at the calendar's 2026-01-01, 1,021 shifts before a fresh twin's seeded days: "0% filled")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from twin_pipeline.defs.partitions import shift_partitions
from twin_pipeline.lib.calendar.first_shift import first_shift_start
from twin_pipeline.lib.calendar.shift_calendar import load_calendar

CAL = load_calendar()
ROOT = Path(__file__).resolve().parents[2]


def shift_id(start: datetime) -> str:
    return CAL.shift_at(start).shift_id


def test_the_setting_names_a_shift_or_a_day() -> None:
    assert shift_id(first_shift_start(CAL, {"TWIN_FIRST_SHIFT": "2026-12-04-1400"})) == "2026-12-04-1400"
    assert shift_id(first_shift_start(CAL, {"TWIN_FIRST_SHIFT": "2026-12-04"})) == "2026-12-04-0600"
    with pytest.raises(ValueError, match="not the start of a shift"):
        first_shift_start(CAL, {"TWIN_FIRST_SHIFT": "2026-12-04-0700"})
    with pytest.raises(ValueError, match="neither a shift id"):
        first_shift_start(CAL, {"TWIN_FIRST_SHIFT": "yesterday"})


def test_the_default_is_the_first_shift_twin_up_seeded_else_the_first_day_of_the_edge_lake(tmp_path: Path) -> None:
    env = {"TWIN_HOME": str(tmp_path)}
    assert shift_id(first_shift_start(CAL, env)) == "2026-01-01-0600"  # nothing there: the calendar's start
    (tmp_path / "lake" / "edge" / "raw_samples" / "day=2026-12-03").mkdir(parents=True)
    (tmp_path / "lake" / "edge" / "raw_samples" / "day=2026-12-05").mkdir(parents=True)
    assert shift_id(first_shift_start(CAL, env)) == "2026-12-02-2200"  # holds 2026-12-03 00:00 UTC
    seeded = {"start": "2026-12-04T18:31:07+00:00", "end": "2026-12-07T18:31:07+00:00", "done": True}
    (tmp_path / "history.json").write_text(json.dumps(seeded))
    # 19:31 in Berlin: the late shift is partly seeded, the night shift is the first seeded whole (twin up backfills it)
    assert shift_id(first_shift_start(CAL, env)) == "2026-12-04-2200"
    assert shift_id(first_shift_start(CAL, {**env, "TWIN_FIRST_SHIFT": "2026-12-01"})) == "2026-12-01-0600"
    assert shift_id(first_shift_start(CAL, {})) == "2026-01-01-0600"  # TWIN_HOME unset: the calendar's start


def test_partition_keys_stay_shift_ids_whatever_the_start() -> None:
    end = datetime(2026, 12, 6, 5, tzinfo=UTC)
    late = shift_partitions(CAL, end=end, start=first_shift_start(CAL, {"TWIN_FIRST_SHIFT": "2026-12-04-2200"}))
    full = shift_partitions(CAL, end=end)
    keys = late.get_partition_keys()
    assert keys[:3] == ["2026-12-04-2200", "2026-12-05-0600", "2026-12-05-1400"]
    assert full.get_partition_keys()[-len(keys) :] == keys  # the same keys and windows as from the calendar's start
    assert all(late.time_window_for_partition_key(k) == full.time_window_for_partition_key(k) for k in keys)


def test_the_code_location_begins_its_partitions_at_the_seeded_history(tmp_path: Path) -> None:
    seeded = {"start": "2026-12-04T18:31:07+00:00", "end": "2026-12-07T18:31:07+00:00", "done": True}
    (tmp_path / "history.json").write_text(json.dumps(seeded))
    env = {k: v for k, v in os.environ.items() if k != "TWIN_FIRST_SHIFT"} | {"TWIN_HOME": str(tmp_path)}
    code = (
        "from twin_pipeline.definitions import defs\n"
        "graph = defs().resolve_asset_graph()\n"
        "starts = {str(graph.get(k).partitions_def.get_first_partition_key()) for k in graph.get_all_asset_keys()\n"
        "          if graph.get(k).partitions_def is not None}\n"
        "print(sorted(starts))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "['2026-12-04-2200']"
