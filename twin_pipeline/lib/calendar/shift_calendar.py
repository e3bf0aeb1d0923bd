"""The plant's shift calendar: the one definition of shifts, breaks and shift ids.

Shifts start at local plant times (default 06:00, 14:00, 22:00 in Europe/Berlin); a shift ends
where the next one starts. Every duration is computed from instants, never from wall-clock
arithmetic, so the night shift across the spring DST change lasts 7 h and the autumn one 9 h.
Shift ids are the local start as `YYYY-MM-DD-HHMM` (no colon: Delta partition values with
colons break predicate overwrites), and they equal the Dagster partition keys built here.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone
from functools import cached_property
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

SHIFT_ID_FORMAT = "%Y-%m-%d-%H%M"
UTC = timezone.utc


class ShiftCalendarError(ValueError):
    """The shift configuration is invalid; the message names the entry and what to fix."""


@dataclass(frozen=True)
class Break:
    """A planned break: local start time and length in minutes."""

    start: time
    minutes: float


@dataclass(frozen=True)
class ShiftDef:
    name: str
    start: time
    breaks: tuple[Break, ...] = ()


@dataclass(frozen=True)
class ShiftWindow:
    """One concrete shift: [start, end) as UTC instants, with its planned breaks."""

    shift_id: str
    name: str
    start: datetime
    end: datetime
    breaks: tuple[tuple[datetime, datetime], ...] = field(default=())

    @property
    def duration_s(self) -> float:
        return self.end.timestamp() - self.start.timestamp()

    @property
    def planned_downtime_s(self) -> float:
        return sum(b_end.timestamp() - b_start.timestamp() for b_start, b_end in self.breaks)

    @property
    def planned_busy_time_s(self) -> float:
        """ISO 22400 planned busy time: shift length minus planned downtime."""
        return self.duration_s - self.planned_downtime_s

    def busy_seconds(self, start: datetime, end: datetime) -> float:
        """Seconds of [start, end) inside the window and outside its planned breaks (its share of the
        planned busy time)."""
        start, end = max(start, self.start), min(end, self.end)
        if end <= start:
            return 0.0
        seconds = end.timestamp() - start.timestamp()
        for b_start, b_end in self.breaks:
            seconds -= max(min(end, b_end).timestamp() - max(start, b_start).timestamp(), 0.0)
        return seconds


def _clock(text: str, where: str) -> time:
    try:
        value = time.fromisoformat(text)
    except (TypeError, ValueError) as exc:
        raise ShiftCalendarError(f"{where}: {text!r} is not a local time like \"06:00\"") from exc
    if value.tzinfo is not None or value.second or value.microsecond:
        raise ShiftCalendarError(f"{where}: give a local time in hours and minutes, like \"06:00\"")
    return value


@dataclass(frozen=True)
class ShiftCalendar:
    timezone: str = "Europe/Berlin"
    shifts: tuple[ShiftDef, ...] = ()
    start: date = date(2026, 1, 1)

    def __post_init__(self) -> None:
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ShiftCalendarError(f"timezone {self.timezone!r} is not an IANA zone like \"Europe/Berlin\"") from exc
        if not self.shifts:
            raise ShiftCalendarError("at least one [[shifts]] entry is needed")
        starts = [s.start for s in self.shifts]
        if starts != sorted(starts) or len(set(starts)) != len(starts):
            raise ShiftCalendarError(f"shift starts must be distinct and in day order, got {[str(s) for s in starts]}")
        if len({s.start.minute for s in self.shifts}) != 1:
            raise ShiftCalendarError("all shifts must start at the same minute of the hour (one cron drives the partitions)")
        if len({s.name for s in self.shifts}) != len(self.shifts):
            raise ShiftCalendarError("shift names must be unique")
        self._refuse_transition_hours()

    def _refuse_transition_hours(self) -> None:
        """A shift starting in a DST transition hour would have no or two local starts: refuse it."""
        tz = self.tz
        day = date(self.start.year, 1, 1)
        for _ in range(2 * 366):
            for shift in self.shifts:
                naive = datetime.combine(day, shift.start)
                a, b = naive.replace(tzinfo=tz, fold=0), naive.replace(tzinfo=tz, fold=1)
                if a.utcoffset() != b.utcoffset():
                    raise ShiftCalendarError(
                        f"shift {shift.name!r} starts at {shift.start:%H:%M}, which does not exist or exists twice on "
                        f"{day} in {self.timezone} (daylight-saving change); move it out of that hour")
            day += timedelta(days=1)

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def cron(self) -> str:
        """Cron of shift starts, e.g. `0 6,14,22 * * *` (in `timezone`)."""
        minute = self.shifts[0].start.minute
        return f"{minute} {','.join(str(s.start.hour) for s in self.shifts)} * * *"

    # ---------------------------------------------------------------- windows
    def _start_on(self, day: date, shift: ShiftDef) -> datetime:
        return datetime.combine(day, shift.start, tzinfo=self.tz).astimezone(UTC)

    def _starts_around(self, instant: datetime) -> list[tuple[datetime, ShiftDef]]:
        local_day = instant.astimezone(self.tz).date()
        return sorted(
            ((self._start_on(local_day + timedelta(days=d), s), s) for d in (-1, 0, 1, 2) for s in self.shifts),
            key=lambda pair: pair[0],
        )

    def _window(self, start: datetime, shift: ShiftDef, end: datetime) -> ShiftWindow:
        local_start = start.astimezone(self.tz)
        breaks = []
        for brk in shift.breaks:
            b_start = datetime.combine(local_start.date(), brk.start, tzinfo=self.tz).astimezone(UTC)
            if b_start < start:
                b_start = datetime.combine(local_start.date() + timedelta(days=1), brk.start,
                                           tzinfo=self.tz).astimezone(UTC)
            b_end = b_start + timedelta(minutes=brk.minutes)  # elapsed time: UTC arithmetic
            b_start, b_end = max(b_start, start), min(b_end, end)
            if b_end > b_start:
                breaks.append((b_start, b_end))
        return ShiftWindow(local_start.strftime(SHIFT_ID_FORMAT), shift.name, start, end, tuple(sorted(breaks)))

    def shift_at(self, instant: datetime) -> ShiftWindow:
        """The shift containing `instant` (aware)."""
        if instant.tzinfo is None:
            raise ValueError("shift_at needs an aware datetime")
        starts = self._starts_around(instant)
        for (start, shift), (end, _) in zip(starts, starts[1:]):
            if start <= instant < end:
                return self._window(start, shift, end)
        raise AssertionError(f"no shift contains {instant}")  # unreachable: starts cover four days

    def window(self, shift_id: str) -> ShiftWindow:
        """The shift with this id (`YYYY-MM-DD-HHMM`, local start)."""
        try:
            local = datetime.strptime(shift_id, SHIFT_ID_FORMAT)
        except ValueError as exc:
            raise ShiftCalendarError(f"shift id {shift_id!r} is not like 2026-11-24-0600") from exc
        shift = next((s for s in self.shifts if s.start == local.time()), None)
        if shift is None:
            raise ShiftCalendarError(f"no shift starts at {local:%H:%M}; shifts start at "
                                     f"{', '.join(f'{s.start:%H:%M}' for s in self.shifts)}")
        start = local.replace(tzinfo=self.tz).astimezone(UTC)
        return self.shift_at(start)

    def windows(self, start: datetime, end: datetime) -> list[ShiftWindow]:
        """Every shift that overlaps [start, end), in order."""
        result: list[ShiftWindow] = []
        window = self.shift_at(start)
        while window.start < end:
            result.append(window)
            window = self.shift_at(window.end)
        return result


def parse_calendar(raw: dict[str, Any], where: str = "shifts") -> ShiftCalendar:
    unknown = set(raw) - {"timezone", "start", "shifts"}
    if unknown:
        raise ShiftCalendarError(f"{where}: unknown key(s) {sorted(unknown)}; expected timezone, start, [[shifts]]")
    shifts = []
    for i, entry in enumerate(raw.get("shifts", [])):
        here = f"{where}: shifts[{i}]"
        extra = set(entry) - {"name", "start", "breaks"}
        if extra or "name" not in entry or "start" not in entry:
            raise ShiftCalendarError(f"{here}: needs name and start (and optional breaks), got {sorted(entry)}")
        breaks = []
        for j, brk in enumerate(entry.get("breaks", [])):
            if set(brk) != {"start", "minutes"} or not isinstance(brk["minutes"], (int, float)) or not 0 < brk["minutes"] < 24 * 60:
                raise ShiftCalendarError(f"{here}.breaks[{j}]: needs start = \"HH:MM\" and minutes > 0")
            breaks.append(Break(_clock(brk["start"], f"{here}.breaks[{j}]"), float(brk["minutes"])))
        shifts.append(ShiftDef(str(entry["name"]), _clock(entry["start"], here), tuple(breaks)))
    try:
        start = date.fromisoformat(str(raw.get("start", "2026-01-01")))
    except ValueError as exc:
        raise ShiftCalendarError(f"{where}: start must be a date like 2026-01-01") from exc
    return ShiftCalendar(timezone=raw.get("timezone", "Europe/Berlin"), shifts=tuple(shifts), start=start)


def load_calendar(path: Path | None = None) -> ShiftCalendar:
    """The calendar from `path`, `$TWIN_SHIFTS`, or the packaged `shifts.toml`."""
    env = os.environ.get("TWIN_SHIFTS")
    path = path or (Path(env) if env else None)
    if path is None:
        text, where = resources.files("twin_pipeline.lib.calendar").joinpath("shifts.toml").read_text(encoding="utf-8"), "shifts.toml"
    else:
        try:
            text, where = path.read_text(encoding="utf-8"), str(path)
        except OSError as exc:
            raise ShiftCalendarError(f"cannot read shift calendar {path}: {exc.strerror}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ShiftCalendarError(f"{where} is not valid TOML: {exc}") from exc
    return parse_calendar(raw, where)


def previous_shift(calendar: ShiftCalendar, window: ShiftWindow) -> ShiftWindow:
    """The shift just before `window` in `calendar`."""
    return calendar.shift_at(window.start - timedelta(microseconds=1))
