"""The subscription manifest: which tags each line is expected to deliver, and since when.

Why it exists: a real line exposes its own subset of the PackTags, so the pipeline must expect of a
line exactly what its collector subscribed, never the simulator's full tag map. The collector writes
one `subscriptions` row per configured tag or custom node of a line every time it (re)creates its
subscription (start, and a reconnect that had to recreate it); history seeding writes one for its
seeded session. A manifest is all rows of one line with the same (`session_id`, `since_ts`); the one
in force at a moment is the latest that took effect before it.

Pure (polars and pyarrow only): the pipeline imports `expected_tags` for its completeness checks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

import polars as pl
import pyarrow as pa

from .schemas import SUBSCRIPTION_STATUS, SUBSCRIPTIONS, day_of

#: OPC UA status code of a node the server does not have (Part 4, 7.34): the `missing` status.
BAD_NODE_ID_UNKNOWN = 0x80340000


@dataclass(frozen=True, slots=True)
class Entry:
    """One configured tag or custom node of a line, as the server answered its monitored item."""

    line_id: str
    tag: str
    node_id: str
    status: str  # a key of SUBSCRIPTION_STATUS
    detail: str | None = None
    sampling_interval_ms: float | None = None


def status_of(code: int) -> str:
    """`subscribed` for a Good code, `missing` for BadNodeIdUnknown, else `rejected`."""
    if not code & 0x80000000:
        return "subscribed"
    return "missing" if (code & 0xFFFF0000) == BAD_NODE_ID_UNKNOWN else "rejected"


def manifest_rows(
    entries: Iterable[Entry], since: datetime, session_id: str, next_seq: Callable[[str], int]
) -> list[dict[str, object]]:
    """`subscriptions` rows for one manifest: every entry stamped with the same `since` (collector clock)."""
    rows: list[dict[str, object]] = []
    for e in entries:
        if e.status not in SUBSCRIPTION_STATUS:
            raise ValueError(f"unknown subscription status {e.status!r}; known: {sorted(SUBSCRIPTION_STATUS)}")
        rows.append(
            {
                "line_id": e.line_id,
                "tag": e.tag,
                "node_id": e.node_id,
                "since_ts": since,
                "status": e.status,
                "detail": e.detail,
                "sampling_interval_ms": e.sampling_interval_ms,
                "session_id": session_id,
                "seq": next_seq(e.line_id),
                "day": day_of(since),
            }
        )
    return rows


def manifest_table(rows: list[dict[str, object]]) -> pa.Table:
    """Rows of `manifest_rows` as an Arrow table of the `subscriptions` schema (for a direct Delta append)."""
    return pa.Table.from_pylist(rows, schema=SUBSCRIPTIONS)


def expected_tags(
    manifest: pl.DataFrame | pa.Table,
    line_id: str,
    at: datetime,
    statuses: tuple[str, ...] = ("subscribed",),
    earliest_if_none: bool = True,
) -> frozenset[str] | None:
    """The tags of `line_id`'s latest manifest that took effect before `at` (since_ts < at), limited
    to rows whose status is in `statuses` (default: the tags the server accepted, i.e. the data to
    expect). None when the line has no manifest at all (an older lake: fall back to the tag map).

    `since_ts` is the collector's clock, `at` usually a shift end on the PLC's clock. When the PLC's
    clock is behind the collector's (a replayed or test timeline, a PLC clock set in the past), no
    manifest precedes the shift although its data was recorded under one: with `earliest_if_none`
    the line's earliest manifest is used then (data is only received after a subscription is made).

    `manifest` is the `subscriptions` table (or any frame with its line_id, tag, since_ts, status and
    session_id columns); `at` must be timezone-aware."""
    if at.tzinfo is None:
        raise ValueError(f"`at` must be timezone-aware, got {at}")
    frame = manifest if isinstance(manifest, pl.DataFrame) else pl.from_arrow(manifest)
    assert isinstance(frame, pl.DataFrame)  # noqa: S101 - from_arrow of a Table is a DataFrame; for mypy
    if frame.is_empty():
        return None
    line = frame.filter(pl.col("line_id") == line_id)
    before = line.filter(pl.col("since_ts") < at)
    if before.is_empty():
        if not earliest_if_none or line.is_empty():
            return None
        before = line.filter(pl.col("since_ts") == pl.col("since_ts").min())
    latest = before.sort("since_ts", "session_id").tail(1)  # the earliest_if_none case: one since_ts
    since, session = latest["since_ts"][0], latest["session_id"][0]
    rows = before.filter(
        (pl.col("since_ts") == since) & (pl.col("session_id") == session) & pl.col("status").is_in(list(statuses))
    )
    return frozenset(rows["tag"].to_list())
