"""Deduplication on (line, tag, source_ts): replays never become duplicates.

After a reconnect the server republishes notifications whose acknowledgement it did not get, and
every new subscription starts with the current value, which was usually stored already. The PLC
stamps each change of a node with a strictly increasing source timestamp, so per (line, tag) a
watermark (newest stored timestamp) plus a bounded set of recent timestamps tells a replay
(duplicate) from a late sample the server never sent before (out of order: quarantined).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from datetime import datetime
from enum import Enum

Key = tuple[str, str]


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


class Deduper:
    """Per (line, tag): the watermark and the recent timestamps in arrival order (ascending, since only
    newer ones are appended), so membership below the watermark is a binary search. This is on the
    per-sample path: a new sample costs one dict lookup, a comparison and an append."""

    def __init__(self, watermarks: Mapping[Key, datetime] | None = None, recent: int = 4096) -> None:
        self._tracks: dict[Key, list] = {key: [mark, []] for key, mark in (watermarks or {}).items()}
        self._size = recent
        self.duplicates = 0
        self.out_of_order = 0

    def check(self, line_id: str, tag: str, ts: datetime) -> Verdict:
        track = self._tracks.get((line_id, tag))
        if track is None:
            track = self._tracks[(line_id, tag)] = [None, []]
        mark = track[0]
        if mark is None or ts > mark:
            track[0] = ts
            order = track[1]
            order.append(ts)
            if len(order) >= 2 * self._size:  # keep the newest `recent` (amortized: one trim per `recent` samples)
                del order[:-self._size]
            return Verdict.NEW
        if ts == mark:
            self.duplicates += 1
            return Verdict.DUPLICATE
        order = track[1]
        i = bisect_left(order, ts)
        if i < len(order) and order[i] == ts:
            self.duplicates += 1
            return Verdict.DUPLICATE
        self.out_of_order += 1
        return Verdict.OUT_OF_ORDER

    def watermark(self, line_id: str, tag: str) -> datetime | None:
        track = self._tracks.get((line_id, tag))
        return track[0] if track is not None else None
