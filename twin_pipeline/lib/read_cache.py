"""Frames a run has already read or written, shared by every asset and check of the run.

Why: a backfill of a range runs every shift asset and every check on it in one process, and most of
them read the same data: bronze writes what silver, gold and four checks read back; the bronze checks
read the edge slice bronze itself read. Reading each table once per run (or not at all, when the run
wrote it) is most of what makes a range backfill fast.

Entries are keyed by table path and Delta version, so a write by anyone (the next version) makes them
stale and they are never served: only the version a reader finds on disk is. Two kinds:

- shift tables (partitioned by `shift_id`): the rows of a set of shifts, every column, kept per shift;
  a read of some of those shifts, any columns, any row filter, is served from memory;
- edge tables (partitioned by UTC day): every row with a time column in [start, end); a read of a
  window inside it is served from memory.

The cache is active only between `activate()` and `deactivate()` (the lake resource does both around a
run), holds at most `max_rows` rows (oldest entries go first) and is dropped at the end of the run.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl

from twin_pipeline.lib.by_shift import split_by_shift

#: Rows the cache of one run may hold (about 80 bytes a bronze row: some 2 GB at most).
MAX_ROWS = 25_000_000


@dataclass
class _Shifts:
    version: Hashable
    frames: dict[str, pl.DataFrame]  # per shift id; a covered shift without rows maps to an empty frame

    @property
    def rows(self) -> int:
        return sum(f.height for f in self.frames.values())


@dataclass
class _Span:
    version: Hashable
    column: str
    pieces: list[tuple[datetime, datetime, pl.DataFrame]]  # contiguous windows, in time order

    @property
    def rows(self) -> int:
        return sum(f.height for _, _, f in self.pieces)


@dataclass
class ReadCache:
    """What one run has read or written, by (table path, Delta version)."""

    max_rows: int = MAX_ROWS
    _entries: OrderedDict[tuple[str, Hashable], _Shifts | _Span] = field(default_factory=OrderedDict)
    hits: int = 0
    misses: int = 0

    def shifts(self, path: Hashable, version: Hashable, shift_ids: Sequence[str]) -> pl.DataFrame | None:
        """These shifts' rows (every column) if cached at this version, else None."""
        entry = self._entries.get(("shifts", path))
        if not isinstance(entry, _Shifts) or entry.version != version or not set(shift_ids) <= entry.frames.keys():
            self.misses += 1
            return None
        self.hits += 1
        frames = [entry.frames[s] for s in dict.fromkeys(shift_ids)]
        return pl.concat(frames) if len(frames) > 1 else frames[0]

    def put_shifts(self, path: Hashable, version: Hashable, frame: pl.DataFrame, shift_ids: Iterable[str]) -> None:
        """Remember `frame` as every row of `shift_ids` (every column) at `version`."""
        entry = self._entries.get(("shifts", path))
        frames = dict(entry.frames) if isinstance(entry, _Shifts) and entry.version == version else {}
        frames.update(split_by_shift(frame, list(shift_ids)))
        self._put(("shifts", path), _Shifts(version, frames))

    def span(
        self, path: Hashable, version: Hashable, column: str, start: datetime, end: datetime
    ) -> pl.DataFrame | None:
        """Rows with `column` in [start, end) if a cached read at this version covers that window."""
        entry = self._entries.get(("span", path))
        if (
            not isinstance(entry, _Span)
            or entry.version != version
            or entry.column != column
            or not (entry.pieces[0][0] <= start and end <= entry.pieces[-1][1])
        ):
            self.misses += 1
            return None
        self.hits += 1
        used = [(a, b, f) for a, b, f in entry.pieces if a < end and b > start]
        if not used:
            return entry.pieces[0][2].clear()
        frame = pl.concat([f for _, _, f in used]) if len(used) > 1 else used[0][2]
        if used[0][0] < start or used[-1][1] > end:  # only the pieces at the edges need a filter
            frame = frame.filter((pl.col(column) >= start) & (pl.col(column) < end))
        return frame

    def put_span(
        self, path: Hashable, version: Hashable, column: str, pieces: Sequence[tuple[datetime, datetime, pl.DataFrame]]
    ) -> None:
        """Remember every row with `column` in each piece's [start, end); the pieces are contiguous, in order."""
        ordered = sorted(pieces, key=lambda p: p[0])
        if not ordered or any(a[1] != b[0] for a, b in itertools.pairwise(ordered)):
            return  # a hole: a window across it could not be served whole
        self._put(("span", path), _Span(version, column, list(ordered)))

    def _put(self, key: tuple[str, Hashable], entry: _Shifts | _Span) -> None:
        self._entries.pop(key, None)
        if entry.rows > self.max_rows:
            return
        self._entries[key] = entry
        while sum(e.rows for e in self._entries.values()) > self.max_rows:
            self._entries.popitem(last=False)


_active: ReadCache | None = None


def activate(cache: ReadCache | None = None) -> ReadCache:
    """Start sharing reads (a run starts); returns the cache."""
    global _active
    _active = cache or ReadCache()
    return _active


def deactivate() -> None:
    """Stop sharing reads and drop what was held (the run ends)."""
    global _active
    _active = None


def active() -> ReadCache | None:
    return _active
