"""The raw zone: the edge tables as landed, the one thing the cloud side of the pipeline reads.

Layout, one Parquet object per (edge table, shift, edge), under the landing container's `raw/` prefix:

    raw/<table>/shift_id=<shift id>/edge_id=<edge id>/part-0.parquet

so that Spark (`spark.read.parquet("<root>/raw/raw_samples")`) and polars (`scan_parquet(...,
hive_partitioning=True)`) read each table as one dataset partitioned by `shift_id` and `edge_id`. The
columns are the edge table's own (`edge_collector/schemas.py`, `day` included); `shift_id` and
`edge_id` come from the path. An object holds the rows of one edge that `belongs()` gives for the shift,
sorted by `ORDER`, so that landing the same slice twice gives the same bytes (a re-run is a no-op).

Which rows belong to a shift, per table:
- `raw_samples`, `injected_events`, `quarantine`: the event time in [shift start, shift end);
- `gaps`: the outages overlapping the shift in PLC time (as `lake_io.plc_gaps` uses them), so a gap
  spanning shifts is landed with each of them (readers de-duplicate on `GAP_KEY`);
- `subscriptions`: the whole manifest as the edge holds it when the shift is landed (it is small;
  completeness needs the one in force, however old, and compares its collector-clock `since_ts` with
  the shift's PLC-clock end itself: `edge_collector.manifest.expected_tags`).

Several edges may land the same line (a handover): bronze merges them and de-duplicates on the sample
key (`transforms/bronze.KEY`).
"""

from __future__ import annotations

from collections.abc import Mapping

import polars as pl

from edge_collector.receipts import in_window
from twin_pipeline.lib.calendar.shift_calendar import ShiftWindow

PREFIX = "raw"
PARTITIONS = ("shift_id", "edge_id")
#: The edge tables landed per shift, in the order they are landed (samples first: they are what bronze needs).
TABLES = ("raw_samples", "injected_events", "quarantine", "gaps", "subscriptions")
#: The row order of a landed object (edge tables' sequence columns last), so a slice always gives the same bytes.
ORDER: Mapping[str, list[str]] = {
    "raw_samples": ["line_id", "tag", "source_ts", "received_ts", "session_id", "seq"],
    "injected_events": ["line_id", "event_ts", "session_id", "seq"],
    "quarantine": ["received_ts", "session_id", "seq"],
    "gaps": ["line_id", "gap_start", "session_id", "seq"],
    "subscriptions": ["line_id", "since_ts", "tag", "session_id", "seq"],
}
#: The columns that identify a gap record: the same gap landed with two shifts is one gap.
GAP_KEY = ["edge_id", "session_id", "seq"]


def object_name(table: str, shift_id: str, edge_id: str) -> str:
    """The blob name (relative to the container) of one edge's slice of `table` for a shift."""
    if table not in TABLES:
        raise KeyError(f"{table!r} is not landed; the raw zone holds {', '.join(TABLES)}")
    if not edge_id or "/" in edge_id or "=" in edge_id:
        raise ValueError(f"edge id {edge_id!r} must be a non-empty name without '/' or '='")
    return f"{PREFIX}/{table}/shift_id={shift_id}/edge_id={edge_id}/part-0.parquet"


def belongs(table: str, window: ShiftWindow) -> pl.Expr:
    """The rows of an edge table that are landed with this shift (see the module docstring): the edge's own
    rule of what a receipt covers (`edge_collector.receipts.in_window`), so that what is landed and what the
    edge may delete once it is landed can never differ."""
    if table not in TABLES:
        raise KeyError(f"{table!r} is not landed; the raw zone holds {', '.join(TABLES)}")
    return in_window(table, window.start, window.end)
