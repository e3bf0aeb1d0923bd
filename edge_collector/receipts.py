"""Landing receipts: what the edge box may delete, because the cloud holds a verified copy of it.

The landing (the pipeline's `landing/<table>` assets, azure profile) uploads each edge table's slice of
a shift as one object and, once the object is verified (size and SHA-256), records a receipt here, in
the edge lake itself (`<lake>/edge/landed`, a small Delta table): the edge's retention
(`edge_collector/retention.py`) prunes only days that receipts wholly cover. The contract lives on the
edge because data flows plc -> edge_collector -> twin_pipeline: the pipeline imports it, never the reverse.

A receipt says: the rows of `table` whose event time lies in the shift's window [start, end)
(`in_window`) were landed as `object` (`rows` of them, `day_rows` per UTC `day` partition) at
`landed_at`. There is one receipt per (table, edge_id, shift_id): re-landing a shift replaces its
receipt (a merge), it never adds a second one.

`pruned` records the UTC days retention has deleted: a shift touching one of them is never landed again
from this edge (its slice would now be partial and would replace the whole, verified object).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError

from .schemas import TABLES, TS

log = logging.getLogger("edge_collector.receipts")

#: The edge tables a shift's landing covers: all of them (the pipeline's raw zone lands the same set).
LANDED_TABLES = tuple(TABLES)
RECEIPTS = pa.schema(
    [
        pa.field("table", pa.string(), nullable=False),
        pa.field("edge_id", pa.string(), nullable=False),
        pa.field("shift_id", pa.string(), nullable=False),
        pa.field("start", TS, nullable=False),  # the window landed: rows with event time in [start, end)
        pa.field("end", TS, nullable=False),
        pa.field("object", pa.string(), nullable=False),  # blob name in the landing container
        pa.field("sha256", pa.string(), nullable=False),
        pa.field("rows", pa.int64(), nullable=False),
        pa.field("bytes", pa.int64(), nullable=False),
        # rows landed per UTC `day` partition of the edge table: retention compares them with what the day holds
        pa.field(
            "day_rows",
            pa.list_(pa.struct([pa.field("day", pa.string()), pa.field("rows", pa.int64())])),
            nullable=False,
        ),
        pa.field("landed_at", TS, nullable=False),
    ]
)
KEY = ("table", "edge_id", "shift_id")
#: `<lake>/edge/pruned_days.json`: the days retention deleted (written by `lake.maintenance.prune`).
PRUNED_FILE = "pruned_days.json"
MERGE_ATTEMPTS = 5


@dataclass(frozen=True)
class Receipt:
    """One verified landed object (see the module docstring)."""

    table: str
    edge_id: str
    shift_id: str
    start: datetime
    end: datetime
    object: str
    sha256: str
    rows: int
    bytes: int
    day_rows: dict[str, int]
    landed_at: datetime


def receipts_path(lake: Path) -> Path:
    """`<lake>/edge/landed`, beside the edge tables it vouches for."""
    return lake / "edge" / "landed"


def in_window(table: str, start: datetime, end: datetime) -> pl.Expr:
    """The edge rows a receipt's window covers: the event time in [start, end) for the event tables, the
    outages overlapping it in PLC time for `gaps`, the whole manifest for `subscriptions` (the same rule as
    the raw zone's `belongs`, which lands them; a test holds the two together)."""
    if table in ("raw_samples", "injected_events", "quarantine"):
        time_column = {"raw_samples": "source_ts", "injected_events": "event_ts", "quarantine": "received_ts"}[table]
        return (pl.col(time_column) >= start) & (pl.col(time_column) < end)
    if table == "gaps":
        after = pl.col("source_ts_after")
        return (
            pl.col("source_ts_before").is_not_null()
            & (pl.col("source_ts_before") < end)
            & (after.is_null() | (after > start))
        )
    if table == "subscriptions":
        return pl.lit(True)
    raise KeyError(f"{table!r} is not an edge table; known: {', '.join(LANDED_TABLES)}")


def _frame(receipts: Sequence[Receipt]) -> pa.Table:
    rows = [{**asdict(r), "day_rows": [{"day": d, "rows": n} for d, n in sorted(r.day_rows.items())]} for r in receipts]
    return pa.Table.from_pylist(rows, schema=RECEIPTS)


def record(lake: Path, receipts: Sequence[Receipt]) -> int:
    """Record verified objects: one receipt per (table, edge, shift), replaced when re-landed. Returns the
    table's Delta version. A concurrent landing's commit is retried (both merge whole receipts)."""
    if not receipts:
        return -1
    path = receipts_path(lake)
    data = _frame(receipts)
    for attempt in range(1, MERGE_ATTEMPTS + 1):
        try:
            if not DeltaTable.is_deltatable(str(path)):
                path.mkdir(parents=True, exist_ok=True)
                DeltaTable.create(str(path), RECEIPTS, mode="ignore", name="landed")
            dt = DeltaTable(str(path))
            (
                dt.merge(
                    data,
                    " AND ".join(f"t.`{k}` = s.`{k}`" for k in KEY),
                    source_alias="s",
                    target_alias="t",
                )
                .when_matched_update_all()
                .when_not_matched_insert_all()
                .execute()
            )
            if dt.version() % 100 == 0:  # one small commit per landing run: keep the table cheap to read
                dt.optimize.compact()
                dt.create_checkpoint()
                dt.vacuum(dry_run=False)  # the files merges replaced, after Delta's default 7 days
            return dt.version()
        except CommitFailedError:
            if attempt == MERGE_ATTEMPTS:
                raise
            time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def read(lake: Path) -> pl.DataFrame:
    """Every receipt of this edge lake (empty, with the schema, before the first landing)."""
    path = receipts_path(lake)
    if not (path / "_delta_log").exists():
        return pl.DataFrame(RECEIPTS.empty_table())
    return pl.read_delta(str(path))


# ---------------------------------------------------------------------------------------- pruned days
def pruned_days(lake: Path) -> dict[str, dict[str, object]]:
    """The UTC days retention deleted from this edge lake, with what it deleted (rows, bytes, when)."""
    try:
        return dict(json.loads((lake / "edge" / PRUNED_FILE).read_text())["days"])
    except FileNotFoundError:
        return {}


def days_touched(start: datetime, end: datetime) -> list[str]:
    """The UTC `day` partitions [start, end) touches."""
    first, last = start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()
    return [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]


def touches_pruned(lake: Path, start: datetime, end: datetime) -> list[str]:
    """The pruned days a window touches (a shift touching one must not be landed again from this edge)."""
    gone = pruned_days(lake)
    return [d for d in days_touched(start, end) if d in gone]


def day_bounds(day: str) -> tuple[datetime, datetime]:
    first = datetime.combine(date.fromisoformat(day), datetime.min.time(), tzinfo=UTC)
    return first, first + timedelta(days=1)
