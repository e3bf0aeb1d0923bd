"""Delta maintenance of the local lake as assets in the `delta_local` pool (limit 1 on the instance
`twin up` runs), and a nightly schedule for them, in the middle of the night shift (well away from
the shift-end runs).

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import time
from collections.abc import Callable, Iterable

import dagster as dg

from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.maintenance import EDGE_TABLES, LAKE_TABLES, Maintained, maintain_edge, maintain_lake_table
from twin_pipeline.lib.settings import DELTA_POOL as POOL
from twin_pipeline.resources.lake import LakeResource

#: Nightly, in plant time: between the 22:20 and 06:20 shift runs.
MAINTENANCE_CRON = "40 3 * * *"


def _maintain(
    context: dg.AssetExecutionContext, tables: Iterable[str], maintain: Callable[[str], Maintained | None]
) -> dg.MaterializeResult:
    """Maintain each table that exists, log a line per table, and report the totals as metadata."""
    started = time.monotonic()
    done = []
    for table in tables:
        maintained = maintain(table)
        if maintained is not None:
            context.log.info(maintained.line())
            done.append(maintained)
    return dg.MaterializeResult(
        metadata={
            "tables": len(done),
            "files_compacted": sum(m.files_compacted for m in done),
            "files_vacuumed": sum(m.files_vacuumed for m in done),
            "seconds": round(time.monotonic() - started, 3),
            "report": dg.MetadataValue.md("\n".join(f"- {m.line()}" for m in done) or "no tables yet"),
        }
    )


@dg.asset(
    key=["maintenance", "edge_tables"],
    group_name="maintenance",
    pool=POOL,
    kinds={"deltalake"},
    owners=["team:edge"],
    description="Compacts and vacuums the collector's edge tables beside the running collector (its compaction "
    "lock serialises the two; never a full vacuum). Materializing it is the maintenance run.",
)
def maintenance_edge_tables(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    lakes = lake.edge_lakes()  # every edge on this machine
    names = [f"{edge_id}:{table}" for edge_id in lakes for table in EDGE_TABLES]
    return _maintain(context, names, lambda name: maintain_edge(lakes[name.split(":")[0]], name.split(":")[1]))


@dg.asset(
    key=["maintenance", "lake_tables"],
    group_name="maintenance",
    pool=POOL,
    kinds={"deltalake"},
    owners=["team:data"],
    description="Compacts and vacuums the bronze, silver and gold tables (files replaced by shift re-runs are "
    "deleted once older than the table's retention, 7 days by default).",
)
def maintenance_lake_tables(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    return _maintain(context, LAKE_TABLES, lambda table: maintain_lake_table(lake.path(), table))


maintenance_job = dg.define_asset_job(
    "delta_maintenance",
    selection=dg.AssetSelection.groups("maintenance"),
    description="Compaction and vacuum of the edge and lake Delta tables.",
)


@dg.schedule(
    cron_schedule=MAINTENANCE_CRON,
    execution_timezone=CALENDAR.timezone,
    job=maintenance_job,
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly Delta maintenance, between the night shift's start and end runs.",
)
def nightly_maintenance(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    return dg.RunRequest(run_key=context.scheduled_execution_time.strftime("%Y-%m-%d"))


@dg.definitions
def maintenance() -> dg.Definitions:
    return dg.Definitions(
        assets=[maintenance_edge_tables, maintenance_lake_tables],
        jobs=[maintenance_job],
        schedules=[nightly_maintenance],
    )
