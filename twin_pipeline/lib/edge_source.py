"""Where the pipeline reads the edge tables from: the edges' own Delta tables, or the landed raw zone.

Why two: on the twin (and on an edge box running its own Dagster) the collector's tables are on this
disk, and bronze reads them directly. A Dagster deployment in the cloud cannot reach an edge box: it
reads what was landed (`raw_zone.py`), one Parquet object per table, shift and edge. Both give the same
rows, so bronze, the checks and the ground truth do not know which one they read.

Several edges. A plant may run more than one collector: on different lines, or on the same line
during a handover. Rows of every edge are read together, each with its `edge_id`; bronze removes the
copies two edges hold of the same sample (its key, `transforms/bronze.KEY`). An outage is an edge's
(its `gaps` rows): a line is in an outage only where *every* edge that delivers the line (has it in its
subscriptions manifest or its gap records) is in one, so a handover with overlapping collectors shows
no gap. An edge that never recorded anything for a stretch (it did not exist yet) does not count as
covering it: silences in the data itself (`quality/silences.py`) still flag such a stretch.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl

from edge_collector.schemas import TABLES, day_of, edge_table_path
from twin_pipeline.lib import read_cache
from twin_pipeline.lib.by_shift import by_window
from twin_pipeline.lib.calendar.shift_calendar import ShiftCalendar, ShiftWindow
from twin_pipeline.lib.lake_io import table_version
from twin_pipeline.lib.location import Location, polars_options
from twin_pipeline.lib.raw_zone import GAP_KEY, PREFIX

#: A far-future stand-in for an outage that has not ended (intervals are compared, never shown).
OPEN_END = datetime(9999, 1, 1, tzinfo=UTC)


def empty(table: str) -> pl.DataFrame:
    """An edge table with no rows, with its contract schema and `edge_id`."""
    return pl.DataFrame(TABLES[table].empty_table()).with_columns(pl.lit(None, pl.String).alias("edge_id"))


def days_between(start: datetime, end: datetime) -> list[str]:
    """UTC `day` partition values overlapping [start, end)."""
    days, day = [], start
    while day < end + timedelta(days=1):
        days.append(day_of(day))
        day += timedelta(days=1)
    return sorted({d for d in days if d <= day_of(end - timedelta(microseconds=1))})


class EdgeSource(ABC):
    """The edge tables of one or more edges, read by event time."""

    @abstractmethod
    def scan(self, table: str, time_column: str, start: datetime, end: datetime) -> pl.LazyFrame:
        """Rows of `table` with `time_column` in [start, end), every edge's, with `edge_id`."""

    @abstractmethod
    def _version(self, table: str, start: datetime, end: datetime) -> Hashable | None:
        """A value that changes whenever the rows `scan` would give change (for the run's read cache)."""

    @abstractmethod
    def _gap_rows(self, start: datetime, end: datetime) -> pl.DataFrame:
        """Every edge's `gaps` rows that may overlap [start, end) in PLC time, with `edge_id`."""

    @abstractmethod
    def manifest(self, until: datetime) -> pl.DataFrame:
        """Every edge's subscriptions manifest as known for a shift ending at `until`, every row (the rule
        for which one is in force is `edge_collector.manifest.expected_tags`'), with `edge_id`."""

    @abstractmethod
    def describe(self) -> str:
        """Where the rows come from, for the assets' metadata."""

    def read(self, table: str, time_column: str, start: datetime, end: datetime) -> pl.DataFrame:
        """`scan(...).collect()`, remembered for the run: later reads of a window inside it come from memory."""
        return self.read_by_window(table, time_column, [_Window(start, end)])["_"]

    def read_by_window(
        self, table: str, time_column: str, windows: Sequence[ShiftWindow | _Window]
    ) -> dict[str, pl.DataFrame]:
        """The rows of each window (sorted, contiguous), read once for all of them and cut in memory;
        remembered for the run per window, so that the checks' reads of a shift cost nothing."""
        start, end = windows[0].start, windows[-1].end
        cache, key = read_cache.active(), self._cache_key(table)
        version = self._version(table, start, end) if cache is not None else None
        if cache is not None and version is not None:
            hit = cache.span(key, version, time_column, start, end)
            if hit is not None:
                return by_window(hit, time_column, windows)
        parts = by_window(self.scan(table, time_column, start, end).collect(), time_column, windows)
        if cache is not None and version is not None:
            cache.put_span(key, version, time_column, [(w.start, w.end, parts[w.shift_id]) for w in windows])
        return parts

    def _cache_key(self, table: str) -> Path:
        return Path(f"edge-source:{self.describe()}:{table}")

    def gaps(self, start: datetime, end: datetime) -> pl.DataFrame:
        """The lines' outages in PLC time that may overlap [start, end): (line_id, source_ts_before,
        source_ts_after), after the several-edges rule of the module docstring (`plc_gaps` reads them)."""
        rows = self._gap_rows(start, end).unique(subset=GAP_KEY, keep="last", maintain_order=True)
        if not rows.height:
            return rows
        delivering = self.manifest(end).select("line_id", "edge_id").unique()
        delivering = pl.concat([delivering, rows.select("line_id", "edge_id")]).unique()
        if delivering.group_by("line_id").len()["len"].max() == 1:  # one edge per line: its outages as they are
            return rows
        out = []
        for (line_id,), mine in rows.group_by(["line_id"], maintain_order=True):
            edges = sorted(delivering.filter(pl.col("line_id") == line_id)["edge_id"].to_list())
            spans = [_union(mine.filter(pl.col("edge_id") == e)) for e in edges]
            for s, e in _intersect_all(spans):
                out.append({"line_id": line_id, "source_ts_before": s, "source_ts_after": None if e == OPEN_END else e})
        return pl.DataFrame(out, schema=rows.select("line_id", "source_ts_before", "source_ts_after").schema)


@dataclass(frozen=True)
class _Window:
    start: datetime
    end: datetime
    shift_id: str = "_"


def _union(rows: pl.DataFrame) -> list[tuple[datetime, datetime]]:
    spans = sorted((r[0], r[1] or OPEN_END) for r in rows.select("source_ts_before", "source_ts_after").iter_rows())
    merged: list[tuple[datetime, datetime]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _intersect_all(spans: list[list[tuple[datetime, datetime]]]) -> list[tuple[datetime, datetime]]:
    result = spans[0]
    for other in spans[1:]:
        result = [(max(a, c), min(b, d)) for a, b in result for c, d in other if max(a, c) < min(b, d)]
    return result


def plc_gaps(gaps: pl.DataFrame, window: ShiftWindow) -> list[tuple[str, datetime, datetime]]:
    """The outages of `gaps` (`EdgeSource.gaps`) overlapping the window, in PLC time: (line, start, end)."""
    out = []
    for line_id, before, after in gaps.select("line_id", "source_ts_before", "source_ts_after").iter_rows():
        start, end = before, after or window.end
        if start < window.end and end > window.start:
            out.append((line_id, max(start, window.start), min(end, window.end)))
    return out


@dataclass(frozen=True)
class LocalEdges(EdgeSource):
    """The edges' own Delta tables on this machine: {edge id: the collector's lake root}."""

    lakes: Mapping[str, Path]

    def describe(self) -> str:
        return ", ".join(f"{e}={p}" for e, p in self.lakes.items())

    def _path(self, edge_id: str, table: str) -> Path:
        return edge_table_path(self.lakes[edge_id], table)

    def _version(self, table: str, start: datetime, end: datetime) -> Hashable | None:
        versions = tuple(table_version(self._path(e, table)) for e in self.lakes)
        return None if all(v is None for v in versions) else versions

    def scan(self, table: str, time_column: str, start: datetime, end: datetime) -> pl.LazyFrame:
        frames = []
        for edge_id in self.lakes:
            path = self._path(edge_id, table)
            if not (path / "_delta_log").exists():
                continue
            frames.append(
                pl.scan_delta(str(path))
                .filter(pl.col("day").is_in(days_between(start, end)))
                .filter((pl.col(time_column) >= start) & (pl.col(time_column) < end))
                .with_columns(pl.lit(edge_id).alias("edge_id"))
            )
        if not frames:
            return empty(table).lazy()
        return pl.concat(frames, how="vertical") if len(frames) > 1 else frames[0]

    def _whole(self, table: str) -> pl.DataFrame:
        frames = [
            pl.read_delta(str(path)).with_columns(pl.lit(edge_id).alias("edge_id"))
            for edge_id in self.lakes
            if ((path := self._path(edge_id, table)) / "_delta_log").exists()
        ]
        return pl.concat(frames) if frames else empty(table)

    def _gap_rows(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._whole("gaps").filter(pl.col("source_ts_before").is_not_null())

    def manifest(self, until: datetime) -> pl.DataFrame:
        return self._whole("subscriptions")


#: Lists the objects under a prefix of the raw zone's container: (name relative to the root, size, etag).
Lister = Callable[[str], list[tuple[str, int, str]]]


def local_lister(root: Path) -> Lister:
    """A `Lister` over a raw zone in a local folder (tests, an edge box's own staging)."""

    def listing(prefix: str) -> list[tuple[str, int, str]]:
        base = root / prefix
        if not base.exists():
            return []
        out = []
        for path in sorted(base.rglob("*.parquet")):
            stat = path.stat()
            out.append((str(path.relative_to(root)), stat.st_size, f"{stat.st_mtime_ns}"))
        return out

    return listing


@dataclass
class RawZone(EdgeSource):
    """The landed raw zone under `root` (`raw/<table>/shift_id=/edge_id=/part-0.parquet`); the shifts a
    time range touches come from the calendar, the objects from `lister`."""

    root: Location
    calendar: ShiftCalendar
    lister: Lister
    _listed: dict[str, list[tuple[str, int, str]]] = field(default_factory=dict)

    def describe(self) -> str:
        return f"{self.root}/{PREFIX}"

    def _objects(self, table: str, start: datetime, end: datetime) -> list[tuple[str, int, str]]:
        out = []
        for window in self.calendar.windows(start, end):
            prefix = f"{PREFIX}/{table}/shift_id={window.shift_id}/"
            if prefix not in self._listed:
                self._listed[prefix] = self.lister(prefix)
            out += self._listed[prefix]
        return out

    def _version(self, table: str, start: datetime, end: datetime) -> Hashable | None:
        objects = self._objects(table, start, end)
        return hashlib.sha256(repr(objects).encode()).hexdigest() if objects else None

    def _scan_objects(self, table: str, objects: list[tuple[str, int, str]]) -> pl.LazyFrame:
        if not objects:
            return empty(table).lazy()
        schema = empty(table).drop("edge_id").schema
        return pl.scan_parquet(
            [str(self.root / name) for name, _, _ in objects],
            schema=schema,
            hive_partitioning=True,
            hive_schema={"shift_id": pl.String, "edge_id": pl.String},
            **polars_options(self.root),
        ).select([*schema.names(), "edge_id"])

    def scan(self, table: str, time_column: str, start: datetime, end: datetime) -> pl.LazyFrame:
        scan = self._scan_objects(table, self._objects(table, start, end))
        return scan.filter((pl.col(time_column) >= start) & (pl.col(time_column) < end))

    def _gap_rows(self, start: datetime, end: datetime) -> pl.DataFrame:
        return self._scan_objects("gaps", self._objects("gaps", start, end)).collect()

    def manifest(self, until: datetime) -> pl.DataFrame:
        """Each edge's manifest as landed with the shift ending at `until` (the whole manifest at landing)."""
        last = self.calendar.shift_at(until - timedelta(microseconds=1))
        objects = self._objects("subscriptions", last.start, last.end)
        return self._scan_objects("subscriptions", objects).collect()
