"""Where the live plant clock of `twin up --speed K` starts, so that it never runs ahead of the wall clock.

At K > 1 a plant clock started at now would be a day ahead of the wall clock after 24/K hours: the
collector quarantines samples more than a day ahead (`absurd_timestamp`), the shift partitions end at
the wall clock and the `shift_closed` schedule fires on wall time. So an accelerated live line starts
`--behind` hours in the past (never before the data the lake already holds), runs at K until it
reaches the wall clock, then in real time (`plc-sim serve --start`, plc/sim_clock.py): every sample
stays in the past, and partitions, plausibility and schedules need no notion of a second clock.
The seeded history then ends where the live line begins.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

#: Default `--behind`: at 60x the plant reaches the wall clock after 24.4 wall minutes, at 600x after 2.4.
DEFAULT_BEHIND_HOURS = 24.0
#: Less plant time than this to catch up is not worth accelerating: the line runs in real time.
MIN_LAG = timedelta(minutes=1)


@dataclass(frozen=True)
class PlantClock:
    """The live line's clock: its origin (None: the wall clock) and speed until it reaches the wall clock."""

    speed: float
    start: datetime | None
    wall_start: datetime

    @property
    def catches_up_at(self) -> datetime | None:
        """Wall instant the plant clock reaches the wall clock (then it runs at 1x)."""
        if self.start is None:
            return None
        lag = (self.wall_start - self.start).total_seconds()
        return self.wall_start + timedelta(seconds=lag / (self.speed - 1.0))

    def started(self, wall: datetime) -> PlantClock:
        """The same origin, with the live line started at `wall` (after seeding took its time)."""
        return PlantClock(self.speed, self.start, wall.astimezone(UTC).replace(microsecond=0))

    def describe(self) -> str:
        """One line for the banner."""
        at = self.catches_up_at
        if self.start is None or at is None:
            return f"{self.wall_start:%Y-%m-%d %H:%M} UTC, real time (the wall clock)"
        minutes = (at - self.wall_start).total_seconds() / 60
        return (
            f"from {self.start:%Y-%m-%d %H:%M} UTC at {self.speed:g}x; reaches the wall clock at about {at:%H:%M} UTC "
            f"(in {minutes:.1f} min), then real time: samples never lie ahead of the wall clock"
        )


def plan(speed: float, behind: timedelta, now: datetime, newest: datetime | None) -> PlantClock:
    """The clock of a live line started at `now`: at `speed` > 1, `behind` in the past but never before
    `newest` (the lake's newest plant time, so no simulated instant is produced twice)."""
    now = now.astimezone(UTC).replace(microsecond=0)
    if speed <= 1.0:
        return PlantClock(speed, None, now)
    start = now - behind
    if newest is not None:
        start = max(start, newest.astimezone(UTC).replace(microsecond=0) + timedelta(seconds=1))
    if now - start < MIN_LAG:
        return PlantClock(1.0, None, now)
    return PlantClock(speed, start, now)


def newest_plant_time(home: Path) -> datetime | None:
    """The newest plant time the lake holds: the end of the seeded history (`history.json`) or the newest
    live sample, whichever is later; None for an empty TWIN_HOME."""
    from edge_collector.collector import read_watermarks

    found: list[datetime] = []
    marker = home / "history.json"
    if marker.exists():
        state = json.loads(marker.read_text())
        if state.get("end"):
            found.append(datetime.fromisoformat(state["end"]))
    _, per_line = read_watermarks(home / "lake")
    found.extend(last_source for last_source, _ in per_line.values())
    return max(found) if found else None
