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
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from edge_collector.lake import last_checkpoint_version
from twin_pipeline.lib import read_cache
from twin_pipeline.lib.by_shift import split_by_shift
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, Table, schema_of, table_path
from twin_pipeline.lib.delta_files import overwrite_shifts, plain_table
from twin_pipeline.lib.location import Location, delta_options, polars_options

log = logging.getLogger(__name__)

#: Commits between checkpoints of the tables written here (the Delta/Spark default; delta-rs's own is 100).
#: Opening a table replays every JSON commit since its last checkpoint, about 0.4 ms each on this machine:
#: a gold table re-run shift by shift for a month (~100 commits) took 40 ms to open, 3 ms once checkpointed;
#: a checkpoint of it costs about 8 ms, so one per 10 commits costs under 1 ms a commit.
CHECKPOINT_EVERY = 10


def open_table(path: Location) -> DeltaTable:
    """The Delta table at `path`, local or remote (`location.py` supplies the credentials)."""
    return DeltaTable(str(path), **delta_options(path))


def is_table(path: Location | Path) -> bool:
    """Whether a Delta table exists at `path` (a listing of its log locally; a request remotely)."""
    location = Location.of(path)
    if location.is_local:
        return (location.local / "_delta_log").exists()
    return DeltaTable.is_deltatable(str(location), **delta_options(location))


def scan_shifts(path: Location | Path, shift_ids: Sequence[str], table: DeltaTable | None = None) -> pl.LazyFrame:
    """Rows of these shifts of an existing table partitioned by `shift_id`, columns in the table's order.

    The Delta log picks the shifts' Parquet files and only those are scanned: `pl.scan_delta` hands every
    file of the table, with every file's statistics, to the scan and prunes there, which costs more than
    the read itself for one shift. Tables that need a full Delta reader (deletion vectors, column
    mapping) go through `scan_delta`."""
    path = Location.of(path)
    table = table if table is not None else open_table(path)
    ids = list(shift_ids)
    if table.protocol().min_reader_version > 1:
        return pl.scan_delta(table, **polars_options(path)).filter(pl.col("shift_id").is_in(ids))
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
        **polars_options(path),
    ).select(schema.names())


def replace_shifts(path: Location | Path, frame: pl.DataFrame, shift_ids: Sequence[str]) -> int:
    """Replace the given shifts' rows with `frame` in one commit; returns the new Delta version."""
    path = Location.of(path)
    if not shift_ids:
        raise ValueError("no shift ids to replace")
    unknown = set(frame["shift_id"].unique().to_list()) - set(shift_ids)
    if unknown:
        raise ValueError(f"rows for shifts {sorted(unknown)} outside the replaced set {list(shift_ids)}")
    if not is_table(path):  # created empty (version 0), then written like any other
        DeltaTable.create(
            str(path), frame.clear().to_arrow().schema, partition_by=["shift_id"], mode="ignore", **delta_options(path)
        )
    table = open_table(path)  # opened once: the write below updates it to the version it commits
    if path.is_local and plain_table(table, frame):
        version = overwrite_shifts(path.local, table, frame, shift_ids)  # polars writes the files: half the CPU
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
    if path.is_local and version - last_checkpoint_version(path.local) >= CHECKPOINT_EVERY:
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


def _remember(path: Location, version: int, frame: pl.DataFrame, shift_ids: Sequence[str]) -> None:
    """What was just written is what this run's readers of these shifts will read back."""
    cache = read_cache.active()
    if cache is not None:
        cache.put_shifts(path, version, frame, shift_ids)


def table_version(path: Location | Path) -> int | None:
    """The table's latest version, from its log's file names (the Delta protocol writes one
    `_delta_log/<version, 20 digits>.json` per commit), or None when it has no log. Why not
    `DeltaTable(path).version()`: opening replays the log (some 9 ms a table here), and the run's read
    cache asks before every read; a listing costs a fraction of a millisecond. A remote table is opened."""
    location = Location.of(path)
    if not location.is_local:
        return open_table(location).version() if is_table(location) else None
    try:
        names = os.listdir(location.local / "_delta_log")
    except FileNotFoundError:
        return None
    versions = [int(name[:-5]) for name in names if name.endswith(".json") and name[:-5].isdigit()]
    return max(versions) if versions else None


def mark_provisional(path: Location | Path, shift_ids: Sequence[str], reason: str) -> int:
    """Flag the gold rows of these shifts provisional with `reason` (added to any reason they have);
    returns how many rows were flagged. Used when a blocking check stops a shift's gold: the figures
    already published for it stay visible, but not as final."""
    path = Location.of(path)
    if not is_table(path):
        return 0
    table = open_table(path)
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
    path: Location | Path, shift_ids: Sequence[str], columns: Sequence[str] | None = None, where: pl.Expr | None = None
) -> pl.DataFrame:
    """Rows of a shift-partitioned table for these shifts; only `columns` and the rows matching `where`
    when given, both pushed into the Parquet read. A missing lake table reads as an empty frame with its
    contract schema. While a run's read cache is active, shifts this run wrote or read whole at the
    table's current version come from memory, and a whole read (no columns, no filter) is remembered."""
    path = Location.of(path)
    version = table_version(path)
    if version is None:
        schema = schema_of(path)
        empty = pl.DataFrame(schema=schema) if schema is not None else pl.DataFrame()
        return empty.select(columns) if columns is not None and schema is not None else empty
    cache = read_cache.active()
    cached = cache.shifts(path, version, shift_ids) if cache is not None else None
    if cached is not None:  # lazy: the filter gathers only the columns asked for
        rows = cached.lazy().filter(where) if where is not None else cached.lazy()
        return (rows.select(columns) if columns is not None else rows).collect()
    table = open_table(path)
    scan = scan_shifts(path, shift_ids, table)
    if where is not None:
        scan = scan.filter(where)
    frame = (scan.select(columns) if columns is not None else scan).collect()
    if cache is not None and columns is None and where is None:
        cache.put_shifts(path, table.version(), frame, shift_ids)
    return frame


def read_bronze(
    lake: Location | Path, shift_id: str, tags: Sequence[str] | None = None, columns: Sequence[str] | None = None
) -> pl.DataFrame:
    """Bronze samples of `shift_id`, carried-in rows included; only `tags` and `columns` when given (read
    pushed down)."""
    path = table_path(lake, Table.BRONZE_SAMPLES)
    if tags is None and columns is None:
        return read_shifts(path, [shift_id])
    if not is_table(path):
        empty = pl.DataFrame(schema=BRONZE_SAMPLES)
        return empty.select(columns) if columns is not None else empty
    return read_shifts(path, [shift_id], columns, pl.col("tag").is_in(list(tags)) if tags is not None else None)


def bronze_by_shift(
    lake: Location | Path,
    shift_ids: Sequence[str],
    tags: Sequence[str] | None = None,
    columns: Sequence[str] | None = None,
) -> dict[str, pl.DataFrame]:
    """`read_bronze` of every shift of a range in one read, cut into shifts in memory."""
    path = table_path(lake, Table.BRONZE_SAMPLES)
    wanted = None if columns is None else list(dict.fromkeys([*columns, "shift_id"]))
    frame = read_shifts(path, shift_ids, wanted, pl.col("tag").is_in(list(tags)) if tags is not None else None)
    keep = list(columns) if columns is not None else frame.columns
    return {s: rows.select(keep) for s, rows in split_by_shift(frame, shift_ids).items()}
