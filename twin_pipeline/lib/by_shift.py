"""Cutting a frame of several shifts into one frame per shift, cheaply.

Why: a range backfill computes many shifts in one step, then needs each shift's rows again (per-shift
metadata, the run's read cache, per-shift transforms). `partition_by` gathers every row into new
buffers; frames the assets build are concatenated shift by shift, so slices of them cost nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl


def split_by_shift(frame: pl.DataFrame, shift_ids: Sequence[str] | None = None) -> dict[str, pl.DataFrame]:
    """`frame`'s rows per `shift_id` (each of `shift_ids` present, empty when it has no rows). A frame whose
    shifts are contiguous runs (what the assets write: shifts computed in order and concatenated) is cut
    into zero-copy slices; otherwise rows are gathered per shift (`partition_by`), which copies them all."""
    parts: dict[str, pl.DataFrame] = {}
    if frame.height:
        runs = frame["shift_id"].rle().struct.unnest()
        if runs["value"].n_unique() == runs.height:  # each shift one contiguous run
            offset = 0
            for value, length in zip(runs["value"].to_list(), runs["len"].to_list(), strict=True):
                parts[value] = frame.slice(offset, length)
                offset += length
        else:
            parts = {k[0]: v for k, v in frame.partition_by("shift_id", as_dict=True).items()}
    if shift_ids is None:
        return parts
    return {s: parts.get(s, frame.clear()) for s in shift_ids}
