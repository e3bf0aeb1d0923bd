"""Outages with several edges (lib/edge_source.py): a line is in an outage only where every edge that
delivers it is in one; a raw zone in a local folder reads like the edges it was landed from."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import write_deltalake

from edge_collector.schemas import TABLES
from tests.support.raw_zone import land_in_folder
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.edge_source import LocalEdges, RawZone, local_lister, plc_gaps
from twin_pipeline.lib.location import Location

CALENDAR = load_calendar()
WINDOW = CALENDAR.window("2026-11-24-0600")  # 05:00-13:00 UTC


def at(hour: float) -> datetime:
    return datetime(2026, 11, 24, tzinfo=UTC) + timedelta(hours=hour)


def edge(root: Path, lines: list[str], gaps: list[tuple[str, float, float | None]]) -> Path:
    """An edge lake subscribed to `lines` since 00:00, with outages (line, from hour, to hour or open)."""
    manifest = pl.DataFrame(
        [
            {
                "line_id": line,
                "tag": "Status.StateCurrent",
                "node_id": "ns=4;s=x",
                "since_ts": at(0),
                "status": "subscribed",
            }
            | {"detail": None, "sampling_interval_ms": 0.0, "session_id": "s", "seq": i, "day": "2026-11-24"}
            for i, line in enumerate(lines)
        ],
        schema=pl.DataFrame(TABLES["subscriptions"].empty_table()).schema,
    )
    outages = pl.DataFrame(
        [
            {"line_id": line, "gap_start": at(a), "gap_end": at(b if b is not None else a), "reason": "disconnected"}
            | {"source_ts_before": at(a), "source_ts_after": at(b) if b is not None else None, "session_id": "s"}
            | {"seq": i, "day": "2026-11-24"}
            for i, (line, a, b) in enumerate(gaps)
        ],
        schema=pl.DataFrame(TABLES["gaps"].empty_table()).schema,
    )
    for name, rows in (("subscriptions", manifest), ("gaps", outages)):
        write_deltalake(str(root / "edge" / name), rows.to_arrow(), partition_by=["day"])
    return root


def outages(edges: dict[str, Path]) -> list[tuple[str, datetime, datetime]]:
    return sorted(plc_gaps(LocalEdges(edges).gaps(WINDOW.start, WINDOW.end), WINDOW))


def test_one_edge_reports_its_own_outages(tmp_path: Path) -> None:
    a = edge(tmp_path / "a", ["L1"], [("L1", 7, 8), ("L1", 12, None)])
    assert outages({"a": a}) == [("L1", at(7), at(8)), ("L1", at(12), at(13))]


def test_a_line_is_out_only_where_every_edge_delivering_it_is_out(tmp_path: Path) -> None:
    a = edge(tmp_path / "a", ["L1", "L2"], [("L1", 10, None), ("L2", 6, 7)])  # a stops delivering L1 at 10:00
    b = edge(tmp_path / "b", ["L1"], [("L1", 6, 6.5), ("L1", 11, 12)])  # b took L1 over; L2 is a's alone
    assert outages({"a": a, "b": b}) == [("L1", at(11), at(12)), ("L2", at(6), at(7))]


def test_a_handover_without_outages_shows_none(tmp_path: Path) -> None:
    a = edge(tmp_path / "a", ["L1"], [("L1", 10, None)])  # a stopped at 10:00 for good
    b = edge(tmp_path / "b", ["L1"], [])
    assert outages({"a": a, "b": b}) == []


def test_a_raw_zone_in_a_folder_reads_as_the_edges_it_was_landed_from(tmp_path: Path) -> None:
    edges = {
        "a": edge(tmp_path / "a", ["L1", "L2"], [("L1", 10, None), ("L2", 6, 7)]),
        "b": edge(tmp_path / "b", ["L1"], [("L1", 6, 6.5), ("L1", 11, 12)]),
    }
    assert land_in_folder(tmp_path / "raw", edges, [WINDOW.shift_id]) == 2 * len(TABLES)
    zone = RawZone(Location.of(tmp_path / "raw"), CALENDAR, local_lister(tmp_path / "raw"))
    assert sorted(plc_gaps(zone.gaps(WINDOW.start, WINDOW.end), WINDOW)) == outages(edges)
    landed = zone.manifest(WINDOW.end).sort("edge_id", "line_id")
    assert landed.select("edge_id", "line_id").rows() == [("a", "L1"), ("a", "L2"), ("b", "L1")]
    empty = zone.scan("raw_samples", "source_ts", WINDOW.start, WINDOW.end).collect()
    assert empty.height == 0 and "edge_id" in empty.columns  # nothing landed: empty, with the contract's columns
