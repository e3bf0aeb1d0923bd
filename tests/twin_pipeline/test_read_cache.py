"""The run's read cache (twin_pipeline/lib/read_cache.py) over real Delta tables: what a run wrote is read
back from memory, equal to the disk; a newer Delta version is never served from it; shift slices of a
range cut in one pass equal one filter per shift."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from twin_pipeline.lib import read_cache
from twin_pipeline.lib.by_shift import by_window
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.lake_io import read_shifts, replace_shifts


@pytest.fixture
def cache() -> Iterator[read_cache.ReadCache]:
    yield read_cache.activate()
    read_cache.deactivate()


def _rows(shift_ids: list[str], value: float) -> pl.DataFrame:
    return pl.DataFrame(
        {"shift_id": [s for s in shift_ids for _ in range(3)], "line_id": ["L1", "L2", "L3"] * len(shift_ids)}
    ).with_columns(pl.lit(value).alias("value"))


def test_what_a_run_wrote_is_read_back_from_memory_and_a_newer_version_from_disk(
    tmp_path: Path, cache: read_cache.ReadCache
) -> None:
    path = tmp_path / "t"
    shifts = ["2026-11-24-0600", "2026-11-24-1400"]
    replace_shifts(path, _rows(shifts, 1.0), shifts)
    hits = cache.hits
    mine = read_shifts(path, shifts[1:], ["line_id", "value"], pl.col("line_id") != "L3")
    assert cache.hits == hits + 1  # from memory ...
    read_cache.deactivate()
    assert mine.sort("line_id").equals(
        read_shifts(path, shifts[1:], ["line_id", "value"], pl.col("line_id") != "L3").sort("line_id")
    )  # ... equal to the disk
    read_cache.activate(cache)
    _rows(shifts[:1], 2.0).write_delta(
        str(path), mode="overwrite", delta_write_options={"predicate": f"shift_id = '{shifts[0]}'"}
    )  # someone else's write: a new version
    assert read_shifts(path, shifts)["value"].sort().to_list() == [1.0] * 3 + [2.0] * 3


def test_a_range_cut_per_shift_in_one_pass_equals_a_filter_per_shift() -> None:
    calendar = load_calendar()
    start = datetime(2026, 3, 28, 5, tzinfo=UTC)  # across the spring DST night (7 h)
    windows = calendar.windows(start, start + timedelta(days=2))
    times = [start - timedelta(hours=1) + timedelta(seconds=37 * i) for i in range(6000)]
    frame = pl.DataFrame({"ts": times, "n": range(len(times))}).sample(fraction=1.0, shuffle=True, seed=1)
    parts = by_window(frame, "ts", windows)
    for w in windows:
        assert parts[w.shift_id].equals(frame.filter((pl.col("ts") >= w.start) & (pl.col("ts") < w.end)))
    assert sum(p.height for p in parts.values()) < frame.height  # rows before the first shift are in none
