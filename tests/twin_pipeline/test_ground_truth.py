"""The ground truth in gold's terms: injected fault time counts only within the shift's planned busy
time, as gold's `downtime_fault_s` does (found by the `twin up` end-to-end test: a fault the engine
injected while the line ran through a planned break made the check fail on a correct gold row)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
from deltalake import write_deltalake

from edge_collector.schemas import PARTITION_BY, TABLES, day_of, edge_table_path
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.lib.transforms.ground_truth import injected_fault_seconds

WINDOW = CALENDAR.window("2026-11-24-0600")  # 05:00-13:00 UTC, with planned breaks


def faults(lake: Path, spans: list[tuple[str, datetime, datetime | None]]) -> None:
    rows, seq = [], 0
    for line_id, start, end in spans:
        for kind, ts in (("fault_start", start), ("fault_end", end)):
            if ts is None:
                continue
            seq += 1
            rows.append(
                {
                    "line_id": line_id,
                    "event_ts": ts,
                    "kind": kind,
                    "distribution": "constant",
                    "params": "{}",
                    "value": 1.0,
                    "fault_code": 42,
                    "seed": 1,
                    "session_id": "t",
                    "seq": seq,
                    "day": day_of(ts),
                }
            )
    write_deltalake(
        str(edge_table_path(lake, "injected_events")),
        pa.Table.from_pylist(rows, schema=TABLES["injected_events"]),
        partition_by=PARTITION_BY,
    )


def test_fault_time_in_planned_breaks_is_not_busy_time(tmp_path: Path) -> None:
    (b_start, b_end), *_ = WINDOW.breaks
    faults(
        tmp_path,
        [
            ("L1", WINDOW.start + timedelta(minutes=30), WINDOW.start + timedelta(minutes=40)),  # 600 s, busy time
            ("L1", b_start + timedelta(minutes=1), b_start + timedelta(minutes=5)),  # inside the break: 0
            ("L1", b_end - timedelta(minutes=2), b_end + timedelta(minutes=3)),  # 180 s after the break
            ("L2", b_start + timedelta(minutes=1), b_start + timedelta(minutes=2)),  # only in a break
            ("L2", WINDOW.end - timedelta(seconds=90), None),  # open at the end: 90 s
        ],
    )
    result = injected_fault_seconds(LocalEdges({"edge": tmp_path}), WINDOW)
    assert result["L1"] == (600.0 + 180.0, 2)
    assert result["L2"] == (90.0, 1)
