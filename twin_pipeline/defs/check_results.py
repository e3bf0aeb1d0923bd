"""What the asset checks of every stage share: the shifts a check evaluates, reading their rows, and
the result of a check whose failure makes a shift's OEE provisional.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import SHIFTS
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.lake_io import mark_provisional, read_shifts
from twin_pipeline.resources.lake import LakeResource


def shift_ids(context: dg.AssetCheckExecutionContext) -> list[str]:
    """The shift, or every shift of a single-run backfill range (evaluated together)."""
    key_range = context.partition_key_range
    return list(SHIFTS.get_partition_keys_in_range(key_range))


def shift_rows(lake: LakeResource, table: Table, context: dg.AssetCheckExecutionContext) -> pl.DataFrame:
    return read_shifts(table_path(lake.path(), table), shift_ids(context))


def provisional_unless(
    name: str, context: dg.AssetCheckExecutionContext, lake: LakeResource, passed: bool, metadata: dict[str, Any]
) -> dg.AssetCheckResult:
    """The result of a check whose failure makes the shift's OEE provisional: a blocking check on bronze
    (gold is not recomputed in this run; rows published earlier stay, flagged) or an ERROR check on
    gold itself (run after gold was written). The check's name becomes the provisional reason."""
    if not passed:
        flagged = mark_provisional(table_path(lake.path(), Table.OEE_SHIFT), shift_ids(context), f"check {name} failed")
        metadata = {**metadata, "gold_rows_marked_provisional": flagged}
    return dg.AssetCheckResult(passed=passed, metadata=metadata)
