"""Reading and replacing shift slices of Delta tables: the one place that knows how.

Re-running a shift replaces exactly that shift: a predicate overwrite on the `shift_id`
partition column, in one Delta commit (no Delta IO manager: they are broken for sub-daily
partitions, see shared/notes/dagster.md §7). Every CHECKPOINT_EVERY commits the writer checkpoints the
table, so that opening it (every read and every write) replays few JSON commits.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from edge_collector.lake import last_checkpoint_version
from edge_collector.schemas import TABLES, day_of, edge_table_path
from twin_pipeline.lib import read_cache
from twin_pipeline.lib.by_shift import split_by_shift, split_runs
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, Table, schema_of, table_path
from twin_pipeline.lib.delta_files import overwrite_shifts, plain_table

log = logging.getLogger(__name__)

#: Commits between checkpoints of the tables written here (the Delta/Spark default; delta-rs's own is 100).
#: Opening a table replays every JSON commit since its last checkpoint, about 0.4 ms each on this machine:
#: a gold table re-run shift by shift for a month (~100 commits) took 40 ms to open, 3 ms once checkpointed;
#: a checkpoint of it costs about 8 ms, so one per 10 commits costs under 1 ms a commit.
CHECKPOINT_EVERY = 10


def days_between(start: datetime, end: datetime) -> list[str]:
    """UTC `day` partition values overlapping [start, end)."""
    days, day = [], start
    while day < end + timedelta(days=1):
        days.append(day_of(day))
        day += timedelta(days=1)
    return sorted({d for d in days if d <= day_of(end - timedelta(microseconds=1))})


def scan_edge(path: Path, table: str, time_column: str, start: datetime, end: datetime) -> pl.LazyFrame:
    """Rows of an edge table with `time_column` in [start, end), pruned to the day partitions (from the
    run's read cache when a read of this run covers the window)."""
    if not (path / "_delta_log").exists():
        return pl.LazyFrame(schema=pl.DataFrame(TABLES[table].empty_table()).schema)
    cache = read_cache.active()
    if cache is not None:
        version = table_version(path)
        hit = cache.span(path, version, time_column, start, end) if version is not None else None
        if hit is not None:
            return hit.lazy()
    return (
        pl.scan_delta(str(path))
        .filter(pl.col("day").is_in(days_between(start, end)))
        .filter((pl.col(time_column) >= start) & (pl.col(time_column) < end))
    )


def read_edge(path: Path, table: str, time_column: str, start: datetime, end: datetime) -> pl.DataFrame:
    """`scan_edge(...).collect()`, remembered for the run: later reads of a window inside it come from memory."""
    cache = read_cache.active()
    version = table_version(path) if cache is not None else None
    frame = scan_edge(path, table, time_column, start, end).collect()
    if cache is not None and version is not None:
        cache.put_span(path, version, time_column, [(start, end, frame)])
    return frame


def read_edge_by_window(
    path: Path, table: str, time_column: str, windows: Sequence[ShiftWindow]
) -> dict[str, pl.DataFrame]:
    """The edge rows of each window (sorted, contiguous shifts), read once for all of them and cut in
    memory; remembered for the run per window, so that the checks' reads of a shift cost nothing."""
    cache = read_cache.active()
    version = table_version(path) if cache is not None else None
    parts = by_window(
        scan_edge(path, table, time_column, windows[0].start, windows[-1].end).collect(), time_column, windows
    )
    if cache is not None and version is not None:
        cache.put_span(path, version, time_column, [(w.start, w.end, parts[w.shift_id]) for w in windows])
    return parts


def by_window(frame: pl.DataFrame, column: str, windows: Sequence[ShiftWindow]) -> dict[str, pl.DataFrame]:
    """`frame`'s rows per shift, by `column` in [start, end) of each window (sorted, not overlapping): a
    range read once, cut in memory in one pass (each row's window found by binary search, then sliced by
    `split_runs`), not one filter of the whole range per shift."""
    if not windows:
        return {}
    if not frame.height:
        return {w.shift_id: frame for w in windows}
    bounds = pl.Series([w.start for w in windows] + [windows[-1].end], dtype=frame.schema[column])
    index = bounds.search_sorted(frame[column], side="right").cast(pl.Int64) - 1
    inside = (index >= 0) & (index < len(windows))
    ends = pl.Series([w.end for w in windows], dtype=frame.schema[column])
    inside = inside & (frame[column] < ends.gather(index.clip(0, len(windows) - 1)))
    keys = pl.select(pl.when(pl.lit(inside)).then(pl.lit(index)).otherwise(-1)).to_series()  # -1: in none
    parts = split_runs(frame, keys)
    empty = frame.clear()
    return {w.shift_id: parts.get(i, empty) for i, w in enumerate(windows)}


def scan_shifts(path: Path, shift_ids: Sequence[str], table: DeltaTable | None = None) -> pl.LazyFrame:
    """Rows of these shifts of an existing table partitioned by `shift_id`, columns in the table's order.

    The Delta log picks the shifts' Parquet files and only those are scanned: `pl.scan_delta` hands every
    file of the table, with every file's statistics, to the scan and prunes there, which costs more than
    the read itself for one shift. Tables that need a full Delta reader (deletion vectors, column
    mapping) go through `scan_delta`."""
    table = table if table is not None else DeltaTable(str(path))
    ids = list(shift_ids)
    if table.protocol().min_reader_version > 1:
        return pl.scan_delta(table).filter(pl.col("shift_id").is_in(ids))
    schema = pl.Schema(table.schema())
    files = table.file_uris(file_pruning_predicate=[("shift_id", "in", ids)])
    if not files:
        return pl.LazyFrame(schema=schema)
    return pl.scan_parquet(
        files,
        hive_partitioning=True,
        hive_schema={"shift_id": schema["shift_id"]},
        missing_columns="insert",
        extra_columns="ignore",
    ).select(schema.names())


def replace_shifts(path: Path, frame: pl.DataFrame, shift_ids: Sequence[str]) -> int:
    """Replace the given shifts' rows with `frame` in one commit; returns the new Delta version."""
    if not shift_ids:
        raise ValueError("no shift ids to replace")
    unknown = set(frame["shift_id"].unique().to_list()) - set(shift_ids)
    if unknown:
        raise ValueError(f"rows for shifts {sorted(unknown)} outside the replaced set {list(shift_ids)}")
    if not (path / "_delta_log").exists():  # created empty (version 0), then written like any other
        DeltaTable.create(str(path), frame.clear().to_arrow().schema, partition_by=["shift_id"], mode="ignore")
    table = DeltaTable(str(path))  # opened once: the write below updates it to the version it commits
    if plain_table(table, frame):
        version = overwrite_shifts(path, table, frame, shift_ids)  # polars writes the files: half the CPU
    else:
        predicate = " OR ".join(f"shift_id = '{s}'" for s in shift_ids)
        # schema_mode merge: a contract that gained a column (a new release) evolves the table in place;
        # shifts written before read the new column as null until they are re-run
        frame.write_delta(
            table,
            mode="overwrite",
            delta_write_options={"partition_by": ["shift_id"], "predicate": predicate, "schema_mode": "merge"},
        )
        version = table.version()
    _remember(path, version, frame, shift_ids)
    if version - last_checkpoint_version(path) >= CHECKPOINT_EVERY:
        try:
            table.create_checkpoint()
        except Exception as exc:  # noqa: BLE001 - the commit above stands; a missing checkpoint only slows opens
            log.warning(
                "checkpoint of %s at version %d failed: %r; opens replay more JSON commits until the next "
                "write retries it",
                path,
                version,
                exc,
            )
    return version


def _remember(path: Path, version: int, frame: pl.DataFrame, shift_ids: Sequence[str]) -> None:
    """What was just written is what this run's readers of these shifts will read back."""
    cache = read_cache.active()
    if cache is not None:
        cache.put_shifts(path, version, frame, shift_ids)


def table_version(path: Path) -> int | None:
    """The table's latest version, from its log's file names (the Delta protocol writes one
    `_delta_log/<version, 20 digits>.json` per commit), or None when it has no log. Why not
    `DeltaTable(path).version()`: opening replays the log (some 9 ms a table here), and the run's read
    cache asks before every read; a listing costs a fraction of a millisecond."""
    try:
        names = os.listdir(path / "_delta_log")
    except FileNotFoundError:
        return None
    versions = [int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit()]
    return max(versions) if versions else None


def mark_provisional(path: Path, shift_ids: Sequence[str], reason: str) -> int:
    """Flag the gold rows of these shifts provisional with `reason` (added to any reason they have);
    returns how many rows were flagged. Used when a blocking check stops a shift's gold: the figures
    already published for it stay visible, but not as final."""
    if not (path / "_delta_log").exists():
        return 0
    table = DeltaTable(str(path))
    ids = ", ".join(f"'{s}'" for s in shift_ids)
    text = reason.replace("'", "''")
    metrics = table.update(
        predicate=f"shift_id IN ({ids})",
        updates={
            "provisional": "true",
            "provisional_reason": f"CASE WHEN provisional_reason IS NULL OR provisional_reason = '' THEN '{text}' "
            f"WHEN strpos(provisional_reason, '{text}') > 0 THEN provisional_reason "
            f"ELSE concat(provisional_reason, '; ', '{text}') END",
        },
    )
    return int(metrics.get("num_updated_rows", 0))


def read_shifts(
    path: Path, shift_ids: Sequence[str], columns: Sequence[str] | None = None, where: pl.Expr | None = None
) -> pl.DataFrame:
    """Rows of a shift-partitioned table for these shifts; only `columns` and the rows matching `where`
    when given, both pushed into the Parquet read. A missing lake table reads as an empty frame with its
    contract schema. While a run's read cache is active, shifts this run wrote or read whole at the
    table's current version come from memory, and a whole read (no columns, no filter) is remembered."""
    if not (path / "_delta_log").exists():
        schema = schema_of(path)
        empty = pl.DataFrame(schema=schema) if schema is not None else pl.DataFrame()
        return empty.select(columns) if columns is not None and schema is not None else empty
    cache = read_cache.active()
    version = table_version(path) if cache is not None else None
    cached = cache.shifts(path, version, shift_ids) if cache is not None and version is not None else None
    if cached is not None:  # lazy: the filter gathers only the columns asked for
        rows = cached.lazy().filter(where) if where is not None else cached.lazy()
        return (rows.select(columns) if columns is not None else rows).collect()
    table = DeltaTable(str(path))
    scan = scan_shifts(path, shift_ids, table)
    if where is not None:
        scan = scan.filter(where)
    frame = (scan.select(columns) if columns is not None else scan).collect()
    if cache is not None and columns is None and where is None:
        cache.put_shifts(path, table.version(), frame, shift_ids)
    return frame


def read_bronze(
    lake: Path, shift_id: str, tags: Sequence[str] | None = None, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Bronze samples of `shift_id`, carried-in rows included; only `tags` and `columns` when given (read
    pushed down)."""
    path = table_path(lake, Table.BRONZE_SAMPLES)
    if tags is None and columns is None:
        return read_shifts(path, [shift_id])
    if not (path / "_delta_log").exists():
        empty = pl.DataFrame(schema=BRONZE_SAMPLES)
        return empty.select(columns) if columns is not None else empty
    return read_shifts(path, [shift_id], columns, pl.col("tag").is_in(list(tags)) if tags is not None else None)


def bronze_by_shift(
    lake: Path, shift_ids: Sequence[str], tags: Sequence[str] | None = None, columns: Sequence[str] | None = None
) -> dict[str, pl.DataFrame]:
    """`read_bronze` of every shift of a range in one read, cut into shifts in memory."""
    path = table_path(lake, Table.BRONZE_SAMPLES)
    wanted = None if columns is None else list(dict.fromkeys([*columns, "shift_id"]))
    frame = read_shifts(path, shift_ids, wanted, pl.col("tag").is_in(list(tags)) if tags is not None else None)
    keep = list(columns) if columns is not None else frame.columns
    return {s: rows.select(keep) for s, rows in split_by_shift(frame, shift_ids).items()}


def read_gaps(lake: Path) -> pl.DataFrame:
    """The collector's outages (edge `gaps`) with a PLC time, read once for a run's shifts (`plc_gaps`)."""
    path = edge_table_path(lake, "gaps")
    if not (path / "_delta_log").exists():
        return pl.DataFrame(TABLES["gaps"].empty_table())
    return pl.read_delta(str(path)).filter(pl.col("source_ts_before").is_not_null())


def plc_gaps(gaps: pl.DataFrame, window: ShiftWindow) -> list[tuple[str, datetime, datetime]]:
    """The outages of `gaps` (`read_gaps`) overlapping the window, in PLC time: (line, start, end)."""
    out = []
    for row in gaps.iter_rows(named=True):
        start, end = row["source_ts_before"], row["source_ts_after"] or window.end
        if start < window.end and end > window.start:
            out.append((row["line_id"], max(start, window.start), min(end, window.end)))
    return out


def read_manifest(lake: Path) -> pl.DataFrame:
    """The subscriptions manifest (edge `subscriptions`), every row: which one is in force for a shift is
    `edge_collector.manifest.expected_tags`' rule (its `since_ts` is the collector's clock, a shift's end
    the PLC's); an empty frame of the edge contract when the collector never wrote one."""
    path = edge_table_path(lake, "subscriptions")
    if not (path / "_delta_log").exists():
        return pl.DataFrame(TABLES["subscriptions"].empty_table())
    return pl.read_delta(str(path))
