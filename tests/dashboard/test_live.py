"""The live line: its figures are what the shift's gold will say, and the page shows them.

One seeded plant day (tests/support/dashboard_lake.py, built once per run); the live module is evaluated
at each shift's end against gold `fact_oee_shift`, and mid-shift against the pipeline's transforms over
the window cut there.
"""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from deltalake import DeltaTable
from streamlit.testing.v1 import AppTest

from dashboard.live_feed import LiveFeed
from edge_collector.schemas import edge_table_path
from tests.support import dashboard_lake
from tests.support.built_once import built_once
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.edge_source import LocalEdges, plc_gaps
from twin_pipeline.lib.lake_io import read_shifts
from twin_pipeline.lib.live import LIVE_TAGS, live_shift, so_far
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.quality.silences import SILENCE_TAGS, line_silences
from twin_pipeline.lib.transforms.bronze import bronze_samples
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DESIGN_SPEED_TAG, part_counts
from twin_pipeline.lib.transforms.oee import SPEED_COLUMNS, oee_rows
from twin_pipeline.lib.transforms.states import REASON_TAG, STATE_TAG, state_intervals

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
FIGURES = ("availability", "performance", "quality", "oee", "produced", "reject")


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return built_once(tmp_path_factory, "dashboard_lake", dashboard_lake.build)  # type: ignore[no-any-return]  # JSON


def _feed(lake: Path) -> LiveFeed:
    return LiveFeed({"edge": lake}, Location.of(lake), CALENDAR)


def _close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return abs(float(a) - float(b)) <= 1e-9


def test_live_at_the_shift_end_is_the_shift_gold(seeded: dict[str, Any]) -> None:
    lake = Path(seeded["lake"])
    gold = read_shifts(table_path(Location.of(lake), Table.OEE_SHIFT), seeded["shifts"])
    feed, edges = _feed(lake), LocalEdges({"edge": lake})
    compared = 0
    for shift_id in seeded["shifts"]:
        window = CALENDAR.window(shift_id)
        raw = edges.read("raw_samples", "source_ts", window.start, window.end)
        live = live_shift(raw, feed.before(window), feed.gaps(window), so_far(window, window.end))
        assert live.window == window  # cut at the end: the whole shift, breaks and all
        expected = gold.filter(pl.col("shift_id") == shift_id).sort("line_id")
        assert [c.line_id for c in live.lines] == expected["line_id"].to_list() == seeded["lines"]
        for card, row in zip(live.lines, expected.iter_rows(named=True), strict=True):
            for name in FIGURES:
                assert _close(card.oee[name], row[name]), (shift_id, card.line_id, name, card.oee[name], row[name])
            compared += 1
    assert compared == len(seeded["shifts"]) * len(seeded["lines"])


def test_live_mid_shift_is_the_pipeline_over_the_cut_window(seeded: dict[str, Any]) -> None:
    lake = Path(seeded["lake"])
    feed, edges = _feed(lake), LocalEdges({"edge": lake})
    whole = CALENDAR.window(seeded["shifts"][1])
    now = whole.start + timedelta(hours=3, minutes=17, seconds=5)
    window = so_far(whole, now)
    assert window.planned_busy_time_s < whole.planned_busy_time_s
    raw = edges.read("raw_samples", "source_ts", window.start, window.end)
    before = feed.before(window)
    live = live_shift(raw, before, feed.gaps(window), window)
    # the pipeline's steps (defs/bronze, defs/silver, defs/gold/oee.py) over the cut window, all tags
    bronze, _ = bronze_samples(raw, window, before)
    states = bronze.filter(pl.col("tag").is_in([STATE_TAG, REASON_TAG, *SILENCE_TAGS]))
    lines = sorted(states["line_id"].unique().to_list())
    silences = [(g.line_id, g.start, g.end) for g in line_silences(states, window)]
    intervals = state_intervals(states, window, lines, plc_gaps(feed.gaps(window), window) + silences)
    counts = part_counts(bronze.filter(pl.col("tag").is_in([*COUNT_TAGS.values(), DESIGN_SPEED_TAG])), window)
    speed = bronze.filter(pl.col("tag") == DESIGN_SPEED_TAG).select(SPEED_COLUMNS)
    expected = oee_rows(intervals, counts, speed, window)
    assert expected.height == len(seeded["lines"])
    assert live.oee.drop("shift_end", "shift_length_s").equals(expected.drop("shift_end", "shift_length_s"))
    assert live.oee["planned_busy_time_s"][0] == pytest.approx(window.planned_busy_time_s)
    assert (
        0
        < live.oee["produced"].sum()
        < read_shifts(table_path(Location.of(lake), Table.OEE_SHIFT), [whole.shift_id])["produced"].sum()
    )
    for card in live.lines:
        assert card.state is not None and card.state_since is not None and card.state_since < now
        assert card.design_speed and card.design_speed > 0
        assert all(s["stop_start"] < now and s["duration_s"] > 0 for s in card.last_stops)
    assert any(card.last_stops and card.last_stops[0]["reason"] for card in live.lines)


def test_the_feed_reads_only_new_files_and_agrees_with_a_full_read(seeded: dict[str, Any]) -> None:
    lake = Path(seeded["lake"])
    feed = _feed(lake)
    live = feed.shift()
    assert live is not None
    read = feed.tails[0].files_read
    assert feed.shift() is not None and feed.tails[0].files_read == read  # no new commit: nothing read
    window = live.window
    raw = LocalEdges({"edge": lake}).read("raw_samples", "source_ts", window.start, window.end)
    full = live_shift(raw.filter(pl.col("tag").is_in(list(LIVE_TAGS))), feed.before(window), feed.gaps(window), window)
    assert live.oee.equals(full.oee)


def _app(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AppTest:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("TWIN_EDGES", raising=False)
    app = AppTest.from_file(str(APP), default_timeout=30)
    app.run()
    app.switch_page("views/live.py").run()
    assert not app.exception, app.exception
    return app


def test_the_page_shows_each_line(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app({"TWIN_LAKE": seeded["lake"]}, monkeypatch)
    labels = [m.label for m in app.metric]
    for line in seeded["lines"]:
        assert f"OEE {line}" in labels
    feed = _feed(Path(seeded["lake"])).shift()
    assert feed is not None
    shown = {m.label: m.value for m in app.metric}
    for card in feed.lines:
        assert shown[f"Produced {card.line_id}"] == str(card.oee["produced"])


def test_the_page_says_what_to_run_on_an_empty_lake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app({"TWIN_LAKE": str(tmp_path / "lake")}, monkeypatch)
    assert any("make run" in i.value for i in app.info), [i.value for i in app.info]
    assert not app.metric


def test_the_feed_follows_new_commits_and_compactions(seeded: dict[str, Any], tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    raw_path = edge_table_path(lake, "raw_samples")
    shutil.copytree(edge_table_path(Path(seeded["lake"]), "raw_samples"), raw_path)
    mid = CALENDAR.window(seeded["shifts"][-1]).start + timedelta(hours=3)
    DeltaTable(str(raw_path)).delete(f"source_ts >= '{mid.isoformat()}'")  # the plant is 3 h into a shift
    feed = _feed(lake)
    first = feed.shift()
    assert first is not None and first.window.shift_id == seeded["shifts"][-1]
    assert first.oee["produced"].min() > 0
    read = feed.tails[0].files_read
    newest = pl.read_delta(str(raw_path)).sort("source_ts").tail(40)  # a second later, as the collector commits
    later = newest.with_columns(pl.col("source_ts") + timedelta(seconds=1), pl.col("seq") + 1_000_000)
    later.write_delta(str(raw_path), mode="append")
    second = feed.shift()
    assert second is not None and second.now == first.now + timedelta(seconds=1)
    assert feed.tails[0].files_read == read + 1  # only the new commit's file
    DeltaTable(str(raw_path)).optimize.compact()  # what the collector does every 200 commits
    third = feed.shift()
    assert third is not None and feed.tails[0].files_read > read + 1
    window = third.window
    full = LocalEdges({"edge": lake}).read("raw_samples", "source_ts", window.start, window.end)
    expected = live_shift(full, feed.before(window), feed.gaps(window), window)
    assert third.oee.equals(expected.oee) and third.oee.equals(second.oee)
