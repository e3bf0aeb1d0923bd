"""Deduplication on (line, tag, source_ts): replays never become duplicates.

After a reconnect the server republishes notifications whose acknowledgement it did not get, and
every new subscription starts with the current value, which was usually stored already. The PLC
stamps each change of a node with a strictly increasing source timestamp, so per (line, tag) a
watermark (newest stored timestamp) plus a bounded set of recent timestamps tells a replay
(duplicate) from a late sample the server never sent before (out of order: quarantined).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime
from enum import Enum

Key = tuple[str, str]


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


class Deduper:
    def __init__(self, watermarks: Mapping[Key, datetime] | None = None, recent: int = 4096) -> None:
        self._mark: dict[Key, datetime] = dict(watermarks or {})
        self._recent: dict[Key, tuple[deque[datetime], set[datetime]]] = {}
        self._size = recent
        self.duplicates = 0
        self.out_of_order = 0

    def check(self, line_id: str, tag: str, ts: datetime) -> Verdict:
        key = (line_id, tag)
        mark = self._mark.get(key)
        recent = self._recent.get(key)
        if recent is None:
            recent = self._recent[key] = (deque(), set())
        order, seen = recent
        if mark is None or ts > mark:
            self._mark[key] = ts
            order.append(ts)
            seen.add(ts)
            if len(order) > self._size:
                seen.discard(order.popleft())
            return Verdict.NEW
        if ts == mark or ts in seen:
            self.duplicates += 1
            return Verdict.DUPLICATE
        self.out_of_order += 1
        return Verdict.OUT_OF_ORDER

    def watermark(self, line_id: str, tag: str) -> datetime | None:
        return self._mark.get((line_id, tag))
