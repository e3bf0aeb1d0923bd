"""The shift calendar: ids, windows, breaks, DST nights, and agreement with Dagster's partitions."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta

import pytest

from twin_pipeline.defs.partitions import shift_partitions
from twin_pipeline.lib.calendar.shift_calendar import ShiftCalendarError, load_calendar, parse_calendar

UTC = UTC
CAL = load_calendar()


def test_default_calendar_is_three_shifts_in_berlin() -> None:
    assert CAL.timezone == "Europe/Berlin" and CAL.cron() == "0 6,14,22 * * *"
    w = CAL.window("2026-11-24-0600")
    assert (w.name, w.start, w.end) == (
        "early",
        datetime(2026, 11, 24, 5, tzinfo=UTC),
        datetime(2026, 11, 24, 13, tzinfo=UTC),
    )
    assert w.duration_s == 8 * 3600
    assert w.planned_downtime_s == 45 * 60 and w.planned_busy_time_s == 8 * 3600 - 45 * 60
    assert ":" not in w.shift_id


@pytest.mark.parametrize(
    ("shift_id", "hours"), [("2026-03-28-2200", 7), ("2026-10-24-2200", 9), ("2026-06-01-2200", 8)]
)
def test_night_shifts_across_dst_last_7_or_9_hours(shift_id: str, hours: int) -> None:
    w = CAL.window(shift_id)
    assert w.duration_s == hours * 3600
    assert w.planned_busy_time_s == hours * 3600 - 45 * 60  # the breaks are still 45 minutes


def test_night_shift_breaks_fall_after_midnight() -> None:
    w = CAL.window("2026-11-24-2200")
    assert [b[0] for b in w.breaks] == [
        datetime(2026, 11, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 11, 25, 3, tzinfo=UTC),
    ]


def test_shift_at_and_windows_tile_time_without_gaps_or_overlaps() -> None:
    start = datetime(2026, 3, 27, tzinfo=UTC)
    shifts = CAL.windows(start, start + timedelta(days=240))
    for a, b in itertools.pairwise(shifts):
        assert a.end == b.start
    assert len({w.shift_id for w in shifts}) == len(shifts)
    for w in shifts[:50]:
        assert CAL.shift_at(w.start).shift_id == w.shift_id
        assert CAL.shift_at(w.end - timedelta(microseconds=1)).shift_id == w.shift_id
        assert CAL.window(w.shift_id) == w


def test_shift_windows_equal_dagster_partitions_over_a_year() -> None:
    partitions = shift_partitions(CAL, end=datetime(2027, 1, 1, 6, tzinfo=CAL.tz))
    start = datetime(2026, 1, 1, 5, tzinfo=UTC)
    keys = partitions.get_partition_keys(current_time=datetime(2027, 1, 2, tzinfo=UTC))
    assert len(keys) == 365 * 3  # both DST changes of 2026 inside
    ours = CAL.windows(start, datetime(2027, 1, 1, 5, tzinfo=UTC))
    assert keys == [w.shift_id for w in ours]
    for w in ours[::7]:
        tw = partitions.time_window_for_partition_key(w.shift_id)
        assert (tw.start.timestamp(), tw.end.timestamp()) == (w.start.timestamp(), w.end.timestamp())


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"timezone": "Mars/Olympus", "shifts": [{"name": "a", "start": "06:00"}]}, "IANA"),
        ({"shifts": []}, "at least one"),
        ({"shifts": [{"name": "a", "start": "14:00"}, {"name": "b", "start": "06:00"}]}, "day order"),
        ({"shifts": [{"name": "a", "start": "06:00"}, {"name": "b", "start": "14:30"}]}, "same minute"),
        ({"shifts": [{"name": "a", "start": "02:30"}, {"name": "b", "start": "14:30"}]}, "daylight-saving"),
        ({"shifts": [{"name": "a", "start": "6 am"}]}, "local time"),
        ({"shifts": [{"name": "a", "start": "06:00", "breaks": [{"start": "09:00"}]}]}, "minutes"),
        ({"shift": []}, "unknown key"),
    ],
)
def test_bad_calendars_are_refused_with_a_clear_message(raw: dict, message: str) -> None:
    with pytest.raises(ShiftCalendarError, match=message):
        parse_calendar(raw)


def test_two_shift_calendar_in_another_timezone() -> None:
    cal = parse_calendar(
        {
            "timezone": "America/Chicago",
            "start": "2026-01-01",
            "shifts": [{"name": "day", "start": "07:00"}, {"name": "night", "start": "19:00"}],
        }
    )
    assert cal.cron() == "0 7,19 * * *"
    assert cal.window("2026-03-07-1900").duration_s == 11 * 3600  # US spring forward on 2026-03-08
    assert cal.window("2026-03-09-0700").duration_s == 12 * 3600
    assert cal.start == date(2026, 1, 1)
