"""Deduplication on (line, tag, source_ts, value): replays never become duplicates, new data is never dropped.

After a reconnect the server republishes notifications whose acknowledgement it did not get, and
every new subscription starts with the current value, which was usually stored already. A replay is
the same value at the same source timestamp. A different value at the same source timestamp is new
data: real servers stamp two changes in one tick (our simulator stamps them 1 us apart, which hid
this). So per (line, tag) a watermark (newest stored timestamp) plus a bounded window of recent
(timestamp, value) pairs tells a replay (duplicate) from new data and from a late sample the server
never sent before (older than the watermark and not in the window: out of order, quarantined).

The window is two ascending arrays: 8-byte floats from `datetime.timestamp()` and a 4-byte hash of
the value, not datetimes in a set and a deque: at 4,096 per (line, tag) that is 48 KiB a tag instead
of about 740 KiB (the R6 soak found the collector's RSS still climbing after 10 min). The floats are
exact for equality while their resolution is under a microsecond (until 2106; today it is 0.24 us).
Two different values with one stamp and the same 32-bit hash would be taken for a replay: about one
in 4 billion same-stamp pairs. A new sample costs a dict lookup, a comparison and two appends; only a
sample at or below the watermark is searched (bisect).
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping
from datetime import datetime
from enum import Enum
from pathlib import Path

from .schemas import edge_table_path

Key = tuple[str, str]


class Verdict(Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out_of_order"


def value_key(value: float | None, text: str | None = None, status: int = 0) -> int:
    """A 32-bit signed hash of what a sample says (its value, or its text, or a null with its status)."""
    h = hash(text if text is not None else value if value is not None else ("null", status))
    return ((h & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000


class Deduper:
    def __init__(
        self, watermarks: Mapping[Key, tuple[datetime, Iterable[int]]] | None = None, recent: int = 4096
    ) -> None:
        """`watermarks`: per (line, tag), the newest stored source timestamp and the value keys stored at it."""
        # per key: [watermark, recent stamps ascending, their value keys] (only stamps >= the mark are added)
        self._tracks: dict[Key, list] = {}
        for key, (mark, values) in (watermarks or {}).items():
            keys = array("i", values)
            self._tracks[key] = [mark, array("d", [mark.timestamp()] * len(keys)), keys]
        self._size = recent
        self._slack = max(1, recent // 8)  # trimmed in steps, so an append is O(1) amortized
        self.duplicates = 0
        self.out_of_order = 0

    def check(self, line_id: str, tag: str, ts: datetime, value: int = 0) -> Verdict:
        """`value`: the sample's `value_key` (a replay must say the same thing at the same stamp)."""
        track = self._tracks.get((line_id, tag))
        if track is None:
            track = self._tracks[(line_id, tag)] = [None, array("d"), array("i")]
        mark = track[0]
        if mark is None or ts > mark:
            track[0] = ts
            self._remember(track, ts.timestamp(), value)
            return Verdict.NEW
        seen, keys, stamp = track[1], track[2], ts.timestamp()
        i, j = bisect_left(seen, stamp), bisect_right(seen, stamp)
        if value in keys[i:j]:
            self.duplicates += 1
            return Verdict.DUPLICATE
        if ts == mark:  # another value in the newest tick: new data, kept after the others of that stamp
            self._remember(track, stamp, value)
            return Verdict.NEW
        self.out_of_order += 1
        return Verdict.OUT_OF_ORDER

    def _remember(self, track: list, stamp: float, value: int) -> None:
        seen, keys = track[1], track[2]
        seen.append(stamp)
        keys.append(value)
        if len(seen) > self._size + self._slack:
            cut = len(seen) - self._size
            del seen[:cut]
            del keys[:cut]

    def watermark(self, line_id: str, tag: str) -> datetime | None:
        track = self._tracks.get((line_id, tag))
        return track[0] if track is not None else None


def read_watermarks(
    lake: Path,
) -> tuple[dict[Key, tuple[datetime, list[int]]], dict[str, tuple[datetime, datetime]]]:
    """Per (line, tag) the newest stored source_ts with the value keys stored at it, and per line (last
    source_ts, last received_ts). Read from the last two day partitions of raw_samples only, so start-up
    does not scan history."""
    import polars as pl
    from deltalake import DeltaTable

    path = edge_table_path(lake, "raw_samples")
    if not (path / "_delta_log").exists():
        return {}, {}
    days = sorted({p["day"] for p in DeltaTable(str(path)).partitions()})
    if not days:
        return {}, {}
    recent = pl.scan_delta(str(path)).filter(pl.col("day").is_in(days[-2:]))
    frame = recent.group_by("line_id", "tag").agg(pl.col("source_ts").max(), pl.col("received_ts").max()).collect()
    at_mark = (
        recent.join(frame.lazy().select("line_id", "tag", "source_ts"), on=["line_id", "tag", "source_ts"])
        .select("line_id", "tag", "source_ts", "value", "value_text", "status_code")
        .collect()
    )
    marks: dict[Key, tuple[datetime, list[int]]] = {}
    for r in at_mark.iter_rows(named=True):
        entry = marks.setdefault((r["line_id"], r["tag"]), (r["source_ts"], []))
        entry[1].append(value_key(r["value"], r["value_text"], r["status_code"]))
    per_line: dict[str, tuple[datetime, datetime]] = {}
    for r in frame.iter_rows(named=True):
        old = per_line.get(r["line_id"])
        per_line[r["line_id"]] = (
            (max(old[0], r["source_ts"]), max(old[1], r["received_ts"])) if old else (r["source_ts"], r["received_ts"])
        )
    return marks, per_line
