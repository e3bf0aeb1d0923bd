"""Silent subscriptions: neither data nor keep-alive while the connection stays up (issue 14).

An OPC UA server answers a subscription's publish requests at least once per keep-alive period
(publishing interval x keep-alive count): with the changes, or with an empty keep-alive when
nothing changed. A subscription that delivers neither for longer than `SILENT_KEEPALIVES`
keep-alive periods (at least `MIN_SILENT_S`) is silent, although the session is healthy: the
server's publishing is stuck, or the link drops the publish responses and nothing else. Then
nothing can be said about the lines of that subscription, so each gets a gap with the reason
`subscription_silent`, from the last publish response to the next one (data or keep-alive).

The bound is below the stale-subscription bound (`subscription.stale_after_s`, at least two
keep-alive periods), at which asyncua recreates the subscription: a silent gap still open then is
relabelled `subscription_stale` (what the old subscription held is lost), and if the connection is
lost meanwhile, `disconnected` (the collector's usual labels then follow). A silence ended by data
is closed by the first notification, like every other gap; one ended by a keep-alive is closed at
that keep-alive's arrival. Either way the row is written with the line's next new sample (its
`source_ts_after`), or at stop.

When the publish response arrived comes from asyncua's `Subscription.last_publish_at`, a monotonic
stamp set on every publish response, keep-alives included (`asyncua_compat.last_publish_at`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from .gap_records import GapBook
from .opcua import asyncua_compat as compat

log = logging.getLogger("edge_collector")

REASON = "subscription_silent"
SILENT_KEEPALIVES = 2.0  # keep-alive periods without a publish response: one missed keep-alive is not enough
MIN_SILENT_S = 2.0  # a 20 ms publishing interval (the lab tests) must not make a 1 s stall of a busy loop silent
CONFIRM_S = 0.1  # a loop that was busy gets this long to take in publish responses already received


def silent_after_s(parameters: Any) -> float:
    """Seconds without a publish response after which a subscription with these parameters is silent."""
    interval_s = parameters.RequestedPublishingInterval / 1000.0
    keepalive = max(int(parameters.RequestedMaxKeepAliveCount or 1), 1)
    return max(interval_s * keepalive * SILENT_KEEPALIVES, MIN_SILENT_S)


class SilenceWatch:
    """Watches one subscription while `connected` is set; opens and ends the lines' silent gaps."""

    def __init__(self, sub: Any, gaps: GapBook, lines: Sequence[str], connected: asyncio.Event) -> None:
        self.sub = sub
        self.gaps = gaps
        self.lines = list(lines)
        self.connected = connected
        self.silences = 0
        self._silent_since: float | None = None  # last_publish_at when the silence was declared
        self._up_since: float | None = None  # the last check that saw the connection down

    async def run(self) -> None:
        while True:
            bound = silent_after_s(self.sub.parameters)
            await asyncio.sleep(min(bound / 4, 0.5))
            if self._silent_since is None and self._quiet_for() >= bound:
                await asyncio.sleep(CONFIRM_S)  # not a silence if the loop only had not read what arrived
            self.check(bound)

    def _last(self) -> float | None:
        """The last publish response, or the reconnect if later (a reconnect's restore may still run)."""
        last = compat.last_publish_at(self.sub)
        if last is None or self._up_since is None:
            return last
        return max(last, self._up_since)

    def _quiet_for(self) -> float:
        last = self._last()
        return 0.0 if last is None else time.monotonic() - last

    def check(self, bound: float) -> None:
        now = time.monotonic()
        if not self.connected.is_set():
            self._up_since = now  # a lost connection: its own gap is in charge; silence counts anew after it
            return
        last = self._last()
        if last is None:
            return  # nothing published yet
        wall = datetime.now(UTC)
        if self._silent_since is not None:
            if last > self._silent_since:  # a publish response (data or keep-alive) arrived
                self._end(wall - timedelta(seconds=now - last))
            return
        if now - last >= bound:
            self._silent_since = last
            self.silences += 1
            start = wall - timedelta(seconds=now - last)
            log.warning(
                "subscription %s: no data and no keep-alive for %.1f s with the connection up (bound %.1f s); "
                "its lines get a %s gap from the last publish response",
                self.sub.subscription_id,
                now - last,
                bound,
                REASON,
                extra={"reason": REASON},
            )
            for line_id in self.lines:
                self.gaps.open(line_id, start, REASON)

    def _end(self, end: datetime) -> None:
        """The silence is over: end the lines' silent gaps that no data and no other reason took over."""
        self._silent_since = None
        for gap in self.gaps.gaps.values():
            if not gap.closed and gap.row["reason"] == REASON:
                gap.row["gap_end"] = end
                gap.closed = True
        log.warning("subscription %s publishes again", self.sub.subscription_id)
