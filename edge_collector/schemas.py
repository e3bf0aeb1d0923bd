"""The edge tables' schemas: one definition that the collector writes and the pipeline reads.

All tables are Delta on local disk under `$TWIN_HOME/lake/edge/<table>`, appended in batches and
partitioned by the UTC `day` (`YYYY-MM-DD`) of their event time. Timestamps are microseconds, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

TS = pa.timestamp("us", tz="UTC")
PARTITION_BY = ["day"]

RAW_SAMPLES = pa.schema(
    [
        pa.field("line_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),  # tag path as in plc/tagmap.toml, e.g. Status.StateCurrent
        pa.field("source_ts", TS, nullable=False),
        pa.field("server_ts", TS),
        pa.field("received_ts", TS, nullable=False),
        pa.field("value", pa.float64()),  # numbers and booleans (0/1)
        pa.field("value_text", pa.string()),  # strings only, else null
        pa.field("status_code", pa.int64(), nullable=False),  # OPC UA StatusCode, 0 = Good
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),  # strictly increasing per session and line
        pa.field("day", pa.string(), nullable=False),
    ]
)

INJECTED_EVENTS = pa.schema(
    [
        pa.field("line_id", pa.string(), nullable=False),
        pa.field("event_ts", TS, nullable=False),  # simulated time of the PLC
        pa.field("kind", pa.string(), nullable=False),  # fault_start, fault_end, quality_shift, feed_rate, ...
        pa.field("distribution", pa.string(), nullable=False),
        pa.field("params", pa.string(), nullable=False),  # JSON text
        pa.field("value", pa.float64()),
        pa.field("fault_code", pa.int32()),
        pa.field("seed", pa.int64(), nullable=False),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("day", pa.string(), nullable=False),
    ]
)

QUARANTINE = pa.schema(
    [
        pa.field("line_id", pa.string()),
        pa.field("tag", pa.string()),
        pa.field("node_id", pa.string()),
        pa.field("source_ts", TS),
        pa.field("server_ts", TS),
        pa.field("received_ts", TS, nullable=False),
        pa.field("raw_value", pa.string()),  # repr of what arrived, truncated to 1,000 characters
        pa.field("variant_type", pa.string()),
        pa.field("status_code", pa.int64()),
        pa.field("reason", pa.string(), nullable=False),  # machine-readable reason code, see QUARANTINE_REASONS
        pa.field("detail", pa.string()),
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("day", pa.string(), nullable=False),
    ]
)

GAPS = pa.schema(
    [
        pa.field("line_id", pa.string(), nullable=False),
        pa.field("gap_start", TS, nullable=False),  # last moment data was known to flow (received time)
        pa.field("gap_end", TS, nullable=False),  # first moment it flowed again
        pa.field("reason", pa.string(), nullable=False),  # see column_descriptions.GAPS
        pa.field("source_ts_before", TS),  # last PLC source timestamp of the line before the gap
        pa.field("source_ts_after", TS),  # first PLC source timestamp of the line after it
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("day", pa.string(), nullable=False),
    ]
)

SUBSCRIPTIONS = pa.schema(
    [
        pa.field("line_id", pa.string(), nullable=False),
        pa.field("tag", pa.string(), nullable=False),  # tag path (e.g. Admin.ProdProcessedCount) or custom node name
        pa.field("node_id", pa.string(), nullable=False),  # the node id subscribed, as configured
        pa.field("since_ts", TS, nullable=False),  # collector clock (UTC) when this subscription took effect
        pa.field("status", pa.string(), nullable=False),  # subscribed | missing | rejected (see SUBSCRIPTION_STATUS)
        pa.field("detail", pa.string()),  # why a tag is missing or rejected (the server's status code)
        pa.field("sampling_interval_ms", pa.float64()),  # revised sampling interval the server granted
        pa.field("session_id", pa.string(), nullable=False),
        pa.field("seq", pa.int64(), nullable=False),
        pa.field("day", pa.string(), nullable=False),
    ]
)

#: What a `subscriptions` row's status means. The pipeline expects, for a shift, the tags of the line's
#: latest manifest (all rows of one session) that took effect before the shift ended.
SUBSCRIPTION_STATUS = {
    "subscribed": "the server accepted the monitored item; data is expected",
    "missing": "the node does not exist on the server (BadNodeIdUnknown or a failed browse)",
    "rejected": "the server refused the monitored item (another Bad status code, in detail)",
}

QUARANTINE_REASONS = {
    "non_finite": "NaN or +-Inf value",
    "bad_status": "OPC UA status code is Bad; the value is not usable",
    "type_changed": "the tag's data type differs from the tag map or from its first value",
    "unsupported_type": "value type cannot be stored (array, structure, byte string, ...)",
    "too_large": "string value longer than the limit",
    "absurd_timestamp": (
        "source timestamp before 2000 or more than a day ahead of the collector's clock "
        "(a missing one is replaced by the server timestamp, see normalize.py)"
    ),
    "out_of_order": "source timestamp older than one already stored for that tag and not a replay",
    "unknown_node": "notification for a node the collector did not subscribe to",
}

#: Edge table name -> schema. The folder name under lake/edge/ equals the key.
TABLES: dict[str, pa.Schema] = {
    "raw_samples": RAW_SAMPLES,
    "injected_events": INJECTED_EVENTS,
    "quarantine": QUARANTINE,
    "gaps": GAPS,
    "subscriptions": SUBSCRIPTIONS,
}

#: Column holding each table's event time (what `day` is derived from).
EVENT_TIME: dict[str, str] = {
    "raw_samples": "source_ts",
    "injected_events": "event_ts",
    "quarantine": "received_ts",
    "gaps": "gap_start",
    "subscriptions": "since_ts",
}


_DAYS: dict[object, str] = {}


def day_of(ts: datetime) -> str:
    """Partition value for a timestamp: its UTC date (cached per date: it is on the per-sample path)."""
    date = (ts if ts.tzinfo is UTC else ts.astimezone(UTC)).date()
    day = _DAYS.get(date)
    if day is None:
        if len(_DAYS) > 10_000:
            _DAYS.clear()
        day = _DAYS[date] = date.isoformat()
    return day


def edge_table_path(lake: Path, table: str) -> Path:
    if table not in TABLES:
        raise KeyError(f"unknown edge table {table!r}; known: {sorted(TABLES)}")
    return lake / "edge" / table
