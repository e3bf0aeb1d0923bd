"""Small edge lakes for the landing and retention tests: the history seeder for samples, events and the
manifest, plus a few quarantine and gap rows appended as the datalogger would (every edge table has rows)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from edge_collector.lake import open_or_create
from edge_collector.schemas import TABLES, day_of, edge_table_path
from edge_collector.variability.history import seed_history


def append(lake: Path, table: str, rows: list[dict]) -> None:
    """Append rows to an edge table (created as the datalogger creates it), `day` from the event time."""
    time_column = {
        "raw_samples": "source_ts",
        "injected_events": "event_ts",
        "quarantine": "received_ts",
        "gaps": "gap_start",
        "subscriptions": "since_ts",
    }[table]
    dt = open_or_create(edge_table_path(lake, table), table, 50)
    data = pa.Table.from_pylist([{**r, "day": day_of(r[time_column])} for r in rows], schema=TABLES[table])
    write_deltalake(dt, data, mode="append")


def seed_edge(lake: Path, lines: list[str], start: datetime, end: datetime, seed: int = 1) -> None:
    """`lines` from `start` to `end` (the seeder without variability: it is faster), and on the first line
    one injected event and one quarantine row an hour and one closed outage (10 minutes, 2 h after the start)."""
    seed_history(lake, lines, start, end, seed=seed)
    hours = int((end - start).total_seconds() // 3600)
    append(
        lake,
        "injected_events",
        [
            {
                "line_id": lines[0],
                "event_ts": start + timedelta(hours=h, minutes=30),
                "kind": "feed_rate",
                "distribution": "uniform",
                "params": "{}",
                "value": 100.0 + h,
                "seed": seed,
                "session_id": "test",
                "seq": h,
            }
            for h in range(hours)
        ],
    )
    append(
        lake,
        "quarantine",
        [
            {
                "line_id": lines[0],
                "received_ts": start + timedelta(hours=h, minutes=7),
                "reason": "non_finite",
                "session_id": "test",
                "seq": h,
            }
            for h in range(hours)
        ],
    )
    gap = start + timedelta(hours=2)
    append(
        lake,
        "gaps",
        [
            {
                "line_id": lines[0],
                "gap_start": gap,
                "gap_end": gap + timedelta(minutes=10),
                "reason": "disconnected",
                "source_ts_before": gap,
                "source_ts_after": gap + timedelta(minutes=10),
                "session_id": "test",
                "seq": 1,
            }
        ],
    )
