"""Where the shift partitions begin: at the first shift with data, so that "filled" in the UI means something.

Partitions from the calendar's `start` (2026-01-01) put a fresh twin's three seeded days behind 1,021
empty shifts: the partition bar said "0% filled". The first partition is, in order:

1. `TWIN_FIRST_SHIFT`: a shift id (`2026-12-04-0600`) or a local date (`2026-12-04`: its first shift);
2. with `TWIN_HOME` set (as `twin up` sets it for Dagster): the first shift that starts inside the history
   `twin up` seeded (`$TWIN_HOME/history.json`, the shifts it backfills), else the shift holding the
   first day of `$TWIN_HOME/lake/edge/raw_samples`;
3. the calendar's `start`.

Only the start moves: the keys stay shift ids in `SHIFT_ID_FORMAT`, so a partition materialized under one
start keeps its key under another.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path

from .shift_calendar import SHIFT_ID_FORMAT, ShiftCalendar

ENV = "TWIN_FIRST_SHIFT"


def _from_setting(calendar: ShiftCalendar, text: str) -> datetime:
    text = text.strip()
    try:
        local = datetime.strptime(text, SHIFT_ID_FORMAT)
    except ValueError:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{ENV}={text!r} is neither a shift id like 2026-12-04-0600 nor a date like 2026-12-04"
            ) from None
        local = datetime.combine(day, calendar.shifts[0].start)
    start = calendar.shift_at(local.replace(tzinfo=calendar.tz)).start
    if start.astimezone(calendar.tz).replace(tzinfo=None) != local:
        raise ValueError(f"{ENV}={text!r} is not the start of a shift of the calendar ({calendar.cron()})")
    return start


def _from_home(calendar: ShiftCalendar, home: Path) -> datetime | None:
    marker = home / "history.json"
    if marker.exists():
        state = json.loads(marker.read_text())
        if state.get("start"):
            seeded = datetime.fromisoformat(state["start"])
            window = calendar.shift_at(seeded)
            return window.start if window.start >= seeded else window.end
    raw = home / "lake" / "edge" / "raw_samples"
    days = sorted(p.name.removeprefix("day=") for p in raw.glob("day=*")) if raw.exists() else []
    if days:
        first = datetime.fromisoformat(days[0] + "T00:00:00+00:00")
        return calendar.shift_at(first).start
    return None


def first_shift_start(calendar: ShiftCalendar, environ: Mapping[str, str] | None = None) -> datetime:
    """The start (UTC) of the first shift partition; see the module docstring for the order."""
    env = os.environ if environ is None else environ
    if env.get(ENV):
        return _from_setting(calendar, env[ENV])
    if env.get("TWIN_HOME"):
        found = _from_home(calendar, Path(env["TWIN_HOME"]))
        if found is not None:
            return found
    return datetime.combine(calendar.start, calendar.shifts[0].start, tzinfo=calendar.tz)
