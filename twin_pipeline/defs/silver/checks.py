"""Asset checks on silver, per shift partition.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg

from twin_pipeline.defs.check_results import shift_rows
from twin_pipeline.defs.partitions import SHIFTS
from twin_pipeline.lib.contracts import Table
from twin_pipeline.resources.lake import LakeResource


@dg.asset_check(
    asset=dg.AssetKey(Table.PART_COUNTS.asset_path),
    partitions_def=SHIFTS,
    description="Counter resets (PLC restarts) and implausible jumps are explained, never silent.",
)
def part_counters_monotonic(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = shift_rows(lake, Table.PART_COUNTS, context)
    resets = int(rows["produced_resets"].sum()) + int(rows["defective_resets"].sum())
    glitches = int(rows["produced_glitches"].sum()) + int(rows["defective_glitches"].sum())
    return dg.AssetCheckResult(
        passed=resets == 0 and glitches == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "counter_resets": resets,
            "counter_glitches": glitches,
            "explanation": "a reset is a PLC restart (counted from 0 again); a glitch is a jump no line can make",
        },
    )
