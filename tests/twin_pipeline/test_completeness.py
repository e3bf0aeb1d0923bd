"""What a line must deliver and when it went silent, for lines that are not our simulator: the expected
tags come from the collector's subscriptions manifest, only OEE's tags block, and silence is detected
from the line's own changes when it has no heartbeat tag."""

from __future__ import annotations

from datetime import datetime, timedelta

import polars as pl

from edge_collector.schemas import TABLES
from tests.support.node_opcua_line import CORE_TAGS
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import BRONZE_SAMPLES
from twin_pipeline.lib.quality.completeness import (
    OEE_REQUIRED_TAGS,
    expected_tags,
    missing_optional,
    missing_required,
)
from twin_pipeline.lib.quality.silences import HEARTBEAT_TAG, line_silences

SHIFT = "2026-11-24-0600"
WINDOW = CALENDAR.window(SHIFT)
CORE = list(CORE_TAGS)  # what a CODESYS program typically exposes


def manifest(rows: list[tuple[str, str, str, datetime]]) -> pl.DataFrame:
    """Manifest rows (line, tag, status, since) as the collector writes them, one session per `since`."""
    frame = pl.DataFrame(
        [
            {
                "line_id": line,
                "tag": tag,
                "node_id": f"ns=4;s=|var|PLC.Application.GVL.{tag}",
                "since_ts": since,
                "status": status,
                "detail": None if status == "subscribed" else "BadNodeIdUnknown",
                "sampling_interval_ms": 100.0,
                "session_id": f"s-{since:%H%M}",
                "seq": i,
                "day": since.date().isoformat(),
            }
            for i, (line, tag, status, since) in enumerate(rows)
        ],
        schema=pl.DataFrame(TABLES["subscriptions"].empty_table()).schema,
    )
    return frame


def samples(rows: list[tuple[str, str, datetime, float]], carried: int = 0) -> pl.DataFrame:
    """Bronze rows (line, tag, ts, value); the first `carried` are carried in."""
    return pl.DataFrame(
        [
            {
                "shift_id": SHIFT,
                "line_id": line,
                "tag": tag,
                "source_ts": ts,
                "server_ts": ts,
                "received_ts": ts,
                "value": value,
                "value_text": None,
                "status_code": 0,
                "is_good": True,
                "session_id": "s",
                "seq": i,
                "carried_in": i < carried,
            }
            for i, (line, tag, ts, value) in enumerate(rows)
        ],
        schema=BRONZE_SAMPLES,
    )


BEFORE = WINDOW.start - timedelta(hours=1)


def test_a_line_with_only_the_core_packtags_is_complete() -> None:
    """Defect 1: the seven core PackTags, all subscribed and sending, are complete; the simulator's own
    tags (Sim.*, Admin.StateTime.*) are not expected of a line whose manifest does not have them."""
    expected = expected_tags(manifest([("L9", t, "subscribed", BEFORE) for t in CORE]), ["L9"], WINDOW.end)
    data = samples([("L9", t, WINDOW.start + timedelta(minutes=1), 1.0) for t in CORE])
    assert missing_required(data, expected) == []
    assert missing_optional(data, expected) == []


def test_a_required_tag_the_server_lacks_blocks_and_says_what_to_do() -> None:
    rows = [("L9", t, "subscribed", BEFORE) for t in CORE if t != "Admin.MachDesignSpeed"]
    rows.append(("L9", "Admin.MachDesignSpeed", "missing", BEFORE))
    rows.append(("L9", "Sim.FeedRate", "missing", BEFORE))
    expected = expected_tags(manifest(rows), ["L9"], WINDOW.end)
    data = samples([("L9", t, WINDOW.start + timedelta(minutes=1), 1.0) for t in CORE if t != "Admin.MachDesignSpeed"])
    [req] = missing_required(data, expected)
    assert req.tag == "Admin.MachDesignSpeed"
    assert "BadNodeIdUnknown" in req.why and "collector config" in req.why
    # an optional tag the server lacks is a warning only
    assert [m.tag for m in missing_optional(data, expected)] == ["Sim.FeedRate"]


def test_a_silent_optional_tag_is_a_warning_and_a_silent_counter_blocks() -> None:
    expected = expected_tags(manifest([("L9", t, "subscribed", BEFORE) for t in CORE]), ["L9"], WINDOW.end)
    sent = [t for t in CORE if t not in ("Quality.LastPartDeviation", "Admin.ProdDefectiveCount")]
    data = samples([("L9", t, WINDOW.start + timedelta(minutes=1), 1.0) for t in sent])
    assert [m.tag for m in missing_required(data, expected)] == ["Admin.ProdDefectiveCount"]
    assert [m.tag for m in missing_optional(data, expected)] == ["Quality.LastPartDeviation"]


def test_the_latest_manifest_before_the_shift_end_counts() -> None:
    """The collector was restarted with a config that adds a tag: the later session's manifest counts."""
    first = [("L9", t, "subscribed", BEFORE) for t in CORE]
    second = [
        *(("L9", t, "subscribed", BEFORE + timedelta(minutes=30)) for t in CORE),
    ]
    second.append(("L9", "Admin.AccTimeSinceReset", "subscribed", BEFORE + timedelta(minutes=30)))
    later = [("L9", "Admin.Extra", "subscribed", WINDOW.end + timedelta(hours=1))]
    table = manifest(first + second + later).filter(pl.col("since_ts") < WINDOW.end)
    exp = expected_tags(table, ["L9"], WINDOW.end)["L9"]
    assert "Admin.AccTimeSinceReset" in exp.subscribed and "Admin.Extra" not in exp.subscribed


def test_without_a_manifest_the_tag_map_is_expected_and_oee_tags_still_block() -> None:
    exp = expected_tags(manifest([]), ["L1"], WINDOW.end)
    assert not exp["L1"].from_manifest and set(OEE_REQUIRED_TAGS) <= exp["L1"].subscribed
    assert {m.tag for m in missing_required(samples([]), exp)} == set(OEE_REQUIRED_TAGS)


def _running_line(silent_from: datetime | None, silent_for: timedelta) -> list[tuple[str, str, datetime, float]]:
    """L9 in Execute at 60 ppm all shift (carried in), counting a part every second, except a stretch."""
    rows = [
        ("L9", "Status.StateCurrent", WINDOW.start - timedelta(hours=2), 6.0),
        ("L9", "Status.CurMachSpeed", WINDOW.start - timedelta(hours=2), 60.0),
    ]
    t, n = WINDOW.start, 0
    while t < WINDOW.start + timedelta(hours=1):
        if silent_from is None or not (silent_from <= t < silent_from + silent_for):
            rows.append(("L9", "Admin.ProdProcessedCount", t, float(n)))
        t, n = t + timedelta(seconds=1), n + 1
    rows.append(("L9", "Status.StateCurrent", WINDOW.start + timedelta(hours=1), 2.0))  # Stopped: quiet is fine
    return rows


def test_a_running_line_without_heartbeat_that_goes_quiet_is_a_silence() -> None:
    gap_at = WINDOW.start + timedelta(minutes=20)
    [silence] = line_silences(samples(_running_line(gap_at, timedelta(minutes=10)), carried=2), WINDOW)
    assert silence.signal == "activity"
    assert silence.seconds == 601.0  # the last part before, the first after
    # the same line without the outage: no silence, although it is stopped (and quiet) for 7 hours
    assert line_silences(samples(_running_line(None, timedelta(0)), carried=2), WINDOW) == []


def test_a_starved_line_at_speed_zero_is_quiet_not_silent() -> None:
    rows = _running_line(None, timedelta(0))
    rows.append(("L9", "Status.CurMachSpeed", WINDOW.start + timedelta(minutes=59, seconds=30), 0.0))
    rows = [r for r in rows if r[0] != "L9" or r[1] != "Status.StateCurrent" or r[2] < WINDOW.start]
    rows = [
        r
        for r in rows
        if not (r[1] == "Admin.ProdProcessedCount" and r[2] > WINDOW.start + timedelta(minutes=59, seconds=29))
    ]
    assert line_silences(samples(rows, carried=2), WINDOW) == []  # Execute for 7 more hours at speed 0


def test_a_line_with_a_heartbeat_is_judged_by_it() -> None:
    start = WINDOW.start
    rows = [("L1", HEARTBEAT_TAG, start + timedelta(seconds=10 * i), float(i)) for i in range(60)]
    rows += [
        ("L1", HEARTBEAT_TAG, start + timedelta(minutes=30 + i), float(i))
        for i in range(int(WINDOW.duration_s // 60) - 31)
    ]
    found = line_silences(samples(rows), WINDOW)
    assert [s.signal for s in found] == ["heartbeat"]
    assert found[0].start == start + timedelta(seconds=590)
