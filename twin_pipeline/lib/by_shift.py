"""Cutting a frame of several shifts into one frame per shift, cheaply.

Why: a range backfill computes many shifts in one step, then needs each shift's rows again (per-shift
metadata, the run's read cache, per-shift transforms). `partition_by` gathers every row into new
buffers; frames the assets build are concatenated shift by shift, so slices of them cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import polars as pl

#: More runs than this per distinct key, and the frame is gathered instead of sliced (many tiny chunks
#: cost more in every later operation than one copy now).
MAX_RUNS_PER_KEY = 64


def split_runs(frame: pl.DataFrame, keys: pl.Series) -> dict[object, pl.DataFrame]:
    """`frame`'s rows per value of `keys` (a series as long as `frame`), in their order. Rows of one value
    usually come in a few contiguous runs (shifts computed in order; edge files written in time order):
    those runs are sliced, without copying, and a value's slices concatenated as chunks. Otherwise rows
    are gathered per value (`partition_by`), which copies them all."""
    if not frame.height:
        return {}
    runs = keys.rle().struct.unnest()
    distinct = runs["value"].n_unique()
    if runs.height > MAX_RUNS_PER_KEY * distinct:
        parts = frame.with_columns(keys.alias("_key")).partition_by("_key", as_dict=True, include_key=False)
        return {k[0]: v for k, v in parts.items()}
    slices: dict[object, list[pl.DataFrame]] = {}
    offset = 0
    for value, length in zip(runs["value"].to_list(), runs["len"].to_list(), strict=True):
        slices.setdefault(value, []).append(frame.slice(offset, length))
        offset += length
    return {k: v[0] if len(v) == 1 else pl.concat(v, rechunk=False) for k, v in slices.items()}


def split_by_shift(frame: pl.DataFrame, shift_ids: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
    """`frame`'s rows per `shift_id` (each of `shift_ids` present, empty when it has no rows), by
    `split_runs`."""
    parts = {str(k): v for k, v in split_runs(frame, frame["shift_id"]).items()} if frame.height else {}
    if shift_ids is None:
        return parts
    return {s: parts.get(s, frame.clear()) for s in shift_ids}


class Window(Protocol):
    @property
    def shift_id(self) -> str: ...
    @property
    def start(self) -> datetime: ...
    @property
    def end(self) -> datetime: ...


def by_window(frame: pl.DataFrame, column: str, windows: Sequence[Window]) -> dict[str, pl.DataFrame]:
    """`frame`'s rows per shift, by `column` in [start, end) of each window (sorted, not overlapping): a
    range read once, cut in memory in one pass (each row's window found by binary search, then sliced by
    `split_runs`), not one filter of the whole range per shift."""
    if not windows:
        return {}
    if not frame.height:
        return {w.shift_id: frame for w in windows}
    bounds = pl.Series([w.start for w in windows] + [windows[-1].end], dtype=frame.schema[column])
    index = bounds.search_sorted(frame[column], side="right").cast(pl.Int64) - 1
    inside = (index >= 0) & (index < len(windows))
    ends = pl.Series([w.end for w in windows], dtype=frame.schema[column])
    inside = inside & (frame[column] < ends.gather(index.clip(0, len(windows) - 1)))
    keys = pl.select(pl.when(pl.lit(inside)).then(pl.lit(index)).otherwise(-1)).to_series()  # -1: in none
    parts = split_runs(frame, keys)
    empty = frame.clear()
    return {w.shift_id: parts.get(i, empty) for i, w in enumerate(windows)}
