"""The landing's own check (azure profile): each landed shift was complete on the edges when it was landed.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import dagster as dg

from twin_pipeline.defs.check_results import shift_ids
from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.lib.quality.data_quality import lines_not_caught_up
from twin_pipeline.lib.settings import profile
from twin_pipeline.resources.lake import LakeResource


@dg.asset_check(
    asset=dg.AssetKey(["landing", "raw_samples"]),
    partitions_def=SHIFTS,
    name="landing_edge_caught_up",
    description="Freshness at landing: every edge already holds samples of each line it delivered in the shift "
    "from after the shift end, so the landed slice was complete (bronze reads it as landed).",
)
def landing_edge_caught_up(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    behind = []
    for edge_id, folder in lake.edge_lakes().items():
        edge = LocalEdges({edge_id: folder})
        for shift_id in shift_ids(context):
            window = CALENDAR.window(shift_id)
            lines = edge.scan("raw_samples", "source_ts", window.start, window.end).select("line_id").unique()
            found = sorted(lines.collect()["line_id"].to_list())
            behind += [f"{shift_id} {line} ({edge_id})" for line in lines_not_caught_up(edge, window, found)]
    return dg.AssetCheckResult(
        passed=not behind,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "not_caught_up": ", ".join(behind) or "none",
            "hint": "re-run the landing and bronze of the shift once the collector has written past its end",
        },
    )


@dg.definitions
def landing_checks() -> dg.Definitions:
    return dg.Definitions(asset_checks=[landing_edge_caught_up] if profile() == "azure" else [])
