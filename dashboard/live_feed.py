"""The live page's reads of the edge tables, kept between ticks (no Streamlit: the bench uses it too).

Why not re-read the shift every tick: the collector commits about once a second, and a shift of raw
samples re-read (and its Delta log replayed) every second grows too slow as the shift gets old. A
`EdgeTail` keeps the rows of each data file it has read (only the live tags, only the newest days),
updates its Delta table incrementally, and on a new version reads only the files that were added; files
the collector's compaction removed are dropped with their rows (the compacted file brings them back).
What does not change within a shift (the values it starts with) is read once per shift; the small
`gaps` and `subscriptions` tables once per version.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from edge_collector.schemas import day_of, edge_table_path
from twin_pipeline.lib.calendar.shift_calendar import ShiftCalendar, ShiftWindow, previous_shift
from twin_pipeline.lib.carry_in import rows_before
from twin_pipeline.lib.edge_source import LocalEdges, empty
from twin_pipeline.lib.lake_io import table_version
from twin_pipeline.lib.live import LIVE_TAGS, LiveShift, current_window, live_shift, plant_now
from twin_pipeline.lib.location import Location

#: The raw columns kept (the partition column `day` is in the file path, not in the files).
COLUMNS = [c for c in empty("raw_samples").columns if c not in ("day", "edge_id")]
#: How many UTC days back from the newest one are kept: a shift is shorter than a day, so the one the
#: plant is in started at most a day before the newest sample's day.
DAYS_KEPT = 1


class EdgeTail:
    """The newest days of one edge's `raw_samples`, of the live tags, kept up to date by file."""

    def __init__(self, lake: Path, edge_id: str) -> None:
        self.path = edge_table_path(lake, "raw_samples")
        self.edge_id = edge_id
        self._table: DeltaTable | None = None
        self.version: int | None = None  # the Delta version the kept rows are of
        self._files: dict[str, pl.DataFrame] = {}
        self._rows: pl.DataFrame = self._empty()
        self.files_read = 0  # for the bench and the tests: files read since the start

    def _empty(self) -> pl.DataFrame:
        return empty("raw_samples").select([*COLUMNS, "edge_id"])

    def rows(self) -> pl.DataFrame:
        """The kept rows, as of the table's newest version."""
        version = table_version(self.path)
        if version is None or version == self.version:
            return self._rows
        if self._table is None:
            self._table = DeltaTable(str(self.path))
        else:
            self._table.update_incremental()
        adds = pl.DataFrame(self._table.get_add_actions(flatten=True))  # an Arrow table (arro3)
        actions = adds.select("path", pl.col("partition.day").alias("day"))
        newest = str(actions["day"].max()) if actions.height else None
        if newest is not None:
            first = day_of(datetime.fromisoformat(f"{newest}T00:00:00+00:00") - timedelta(days=DAYS_KEPT))
            actions = actions.filter(pl.col("day") >= first)
        wanted = set(actions["path"].to_list())
        changed = False
        for name in [n for n in self._files if n not in wanted]:
            del self._files[name]
            changed = True
        for name in sorted(wanted - self._files.keys()):
            frame = pl.read_parquet(self.path / name, columns=COLUMNS).filter(pl.col("tag").is_in(list(LIVE_TAGS)))
            self._files[name] = frame.with_columns(pl.lit(self.edge_id).alias("edge_id"))
            self.files_read += 1
            changed = True
        if changed:
            frames = [f for f in self._files.values() if f.height]
            self._rows = pl.concat(frames, how="vertical_relaxed") if frames else self._empty()
        self.version = self._table.version()
        return self._rows


class LiveFeed:
    """The live shift of every edge on this machine, recomputed per call from what it keeps."""

    def __init__(self, lakes: Mapping[str, Path], lake: Location | None, calendar: ShiftCalendar) -> None:
        self.edges = LocalEdges(dict(lakes))
        self.tails = [EdgeTail(path, edge_id) for edge_id, path in lakes.items()]
        self.lake = lake  # the pipeline's lake: the previous shift's bronze, when it was built
        self.calendar = calendar
        self._before: dict[str, pl.DataFrame] = {}
        self._gaps: tuple[Hashable, pl.DataFrame] | None = None
        self._last: tuple[Hashable, LiveShift | None] | None = None

    def raw(self) -> pl.DataFrame:
        frames = [t.rows() for t in self.tails]
        return pl.concat(frames, how="vertical_relaxed") if frames else empty("raw_samples")

    def before(self, window: ShiftWindow) -> pl.DataFrame:
        """The rows the shift starts with, as bronze finds them: the previous shift's bronze when the
        pipeline built it, else the edge rows of `CARRY_LOOKBACK` before the shift (read once per shift)."""
        if window.shift_id not in self._before:
            previous = previous_shift(self.calendar, window).shift_id
            self._before = {window.shift_id: rows_before(self.lake, self.edges, window, previous, LIVE_TAGS)}
        return self._before[window.shift_id]

    def gaps(self, window: ShiftWindow) -> pl.DataFrame:
        """The edges' outages (their tables are small: read again only when one changes)."""
        key = tuple(
            table_version(edge_table_path(p, t)) for p in self.edges.lakes.values() for t in ("gaps", "subscriptions")
        )
        if self._gaps is None or self._gaps[0] != key:
            self._gaps = (key, self.edges.gaps(window.start, window.end))
        return self._gaps[1]

    def shift(self, now: datetime | None = None) -> LiveShift | None:
        """The shift so far at `now` (default: the newest sample); None when the edges have no samples.
        Computed again only when an edge committed since the last call (every session's tick shares it)."""
        raw = self.raw()
        key = (now, tuple(t.version for t in self.tails))
        if self._last is None or self._last[0] != key:
            self._last = (key, self._compute(raw, now))
        return self._last[1]

    def _compute(self, raw: pl.DataFrame, now: datetime | None) -> LiveShift | None:
        now = now or plant_now(raw)
        if now is None:
            return None
        window = current_window(self.calendar, now)
        mine = raw.filter((pl.col("source_ts") >= window.start) & (pl.col("source_ts") < window.end))
        return live_shift(mine, self.before(window), self.gaps(window), window)
