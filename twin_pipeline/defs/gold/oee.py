"""Gold `fact_oee_shift`, per OEE engine: computed here in polars (`twin_pipeline/lib/transforms/oee.py`), or, with
bronze and silver, by the Spark medallion job (`twin_pipeline/spark_jobs/oee_job.py`) on local pyspark or
Databricks through Pipes, which reports the same metadata and the `oee_invariants` and `performance_at_most_1`
checks itself. `gold_oee()` below includes the one the profile chose.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import dagster as dg
import polars as pl

from twin_pipeline.defs.partitions import (
    BRONZE,
    CALENDAR,
    OEE_FIRST,
    SHIFTS,
    publish,
    report_per_shift,
    shift_asset,
    table_metadata,
)
from twin_pipeline.lib.by_shift import split_by_shift
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT, Table, table_path
from twin_pipeline.lib.lake_io import bronze_by_shift, read_bronze, read_shifts
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.settings import dashboard_url, oee_engine, profile
from twin_pipeline.lib.transforms.counters import DESIGN_SPEED_TAG
from twin_pipeline.lib.transforms.oee import COUNT_COLUMNS, INTERVAL_COLUMNS, SPEED_COLUMNS, oee_rows, percent, roll_up
from twin_pipeline.resources.lake import LakeResource

KEY = dg.AssetKey(Table.OEE_SHIFT.asset_path)
DEPS = [dg.AssetKey(Table.STATE_INTERVALS.asset_path), dg.AssetKey(Table.PART_COUNTS.asset_path), BRONZE]
DESCRIPTION = (
    "OEE per line and shift (ISO 22400-2) over planned busy time (breaks excluded; a line that runs "
    "through a break is reported in *_in_breaks): actual production time, downtime by kind, "
    "produced/good/reject, availability, performance (flagged above 1, never capped), quality, OEE, and "
    "a provisional flag for shifts with outages or unknown time."
)


def read_oee_inputs(lake: Location, shift_id: str) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """What `oee_rows` needs of one shift: its silver state intervals and part counts and its bronze
    design-speed samples, only the columns it uses. The three tables are read concurrently: most of a
    read is delta-rs replaying the table's log and polars scanning Parquet, both outside the GIL."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        intervals = pool.submit(read_shifts, table_path(lake, Table.STATE_INTERVALS), [shift_id], INTERVAL_COLUMNS)
        counts = pool.submit(read_shifts, table_path(lake, Table.PART_COUNTS), [shift_id], COUNT_COLUMNS)
        speed = pool.submit(read_bronze, lake, shift_id, [DESIGN_SPEED_TAG], SPEED_COLUMNS)
        return intervals.result(), counts.result(), speed.result()


def fact_oee_rows(lake: Location, shift_ids: Sequence[str]) -> pl.DataFrame:
    """The `fact_oee_shift` rows of these shifts, computed and not written: each input table is read once
    for all of them (concurrently), then cut into shifts in memory."""
    ids = list(shift_ids)
    with ThreadPoolExecutor(max_workers=3) as pool:
        intervals = pool.submit(_by_shift, table_path(lake, Table.STATE_INTERVALS), ids, INTERVAL_COLUMNS)
        counts = pool.submit(_by_shift, table_path(lake, Table.PART_COUNTS), ids, COUNT_COLUMNS)
        speed = pool.submit(bronze_by_shift, lake, ids, [DESIGN_SPEED_TAG], SPEED_COLUMNS)
        by_shift = intervals.result(), counts.result(), speed.result()
    frames = [oee_rows(by_shift[0][s], by_shift[1][s], by_shift[2][s], CALENDAR.window(s)) for s in ids]
    return pl.concat(frames) if frames else pl.DataFrame(schema=FACT_OEE_SHIFT)


def _by_shift(path: Location, shift_ids: list[str], columns: Sequence[str]) -> dict[str, pl.DataFrame]:
    frame = read_shifts(path, shift_ids, [*columns, "shift_id"])
    return {s: rows.select(columns) for s, rows in split_by_shift(frame, shift_ids).items()}


def dashboard_link(shift_id: str) -> dict[str, Any]:
    """The shift's page in the dashboard (`dashboard/views/oee.py`), linked from its materialization."""
    return {"dashboard": dg.MetadataValue.url(f"{dashboard_url()}/oee?shift={shift_id}")}


def oee_metadata(rows: pl.DataFrame) -> dict[str, Any]:
    """What the asset page shows of some `fact_oee_shift` rows (a shift's): OEE, A, P, Q rolled up from sums,
    OEE per line, a table by line, and a link to the shift's page in the dashboard."""
    by_line = {line_id: roll_up(mine) for (line_id,), mine in rows.group_by(["line_id"], maintain_order=True)}
    table = (
        "| line | availability | performance | quality | OEE | produced | provisional |\n"
        "|---|---|---|---|---|---|---|\n"
    )
    for line_id in sorted(by_line):
        f, mine = by_line[line_id], rows.filter(pl.col("line_id") == line_id)
        table += (
            f"| {line_id} | {percent(f.availability)} | {percent(f.performance)} | {percent(f.quality)} "
            f"| {percent(f.oee)} "
            f"| {int(mine['produced'].sum())} | {int(mine['provisional'].sum())} of {mine.height} |\n"
        )
    plant = roll_up(rows)
    headline = {
        name: round(value, 4)
        for name in ("availability", "performance", "quality", "oee")
        if (value := getattr(plant, name)) is not None
    }
    return {
        **(dashboard_link(rows["shift_id"][0]) if rows.height else {}),
        "provisional_rows": int(rows["provisional"].sum()),
        **headline,
        **{f"oee/{line_id}": round(f.oee, 4) for line_id, f in sorted(by_line.items()) if f.oee is not None},
        **{
            f"{name}/{line_id}": round(value, 4)
            for line_id, f in sorted(by_line.items())
            for name in ("availability", "performance", "quality")
            if (value := getattr(f, name)) is not None
        },
        "by_line": dg.MetadataValue.md(table),
    }


@shift_asset(key=KEY.path, group="gold", deps=DEPS, description=DESCRIPTION, oee_first=True)
def gold_fact_oee_shift(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    out = fact_oee_rows(lake.path(), context.partition_keys)
    report_per_shift(context, out, oee_metadata)  # each shift's own OEE, A, P, Q on its partition
    return dg.MaterializeResult(metadata=publish(lake.path(), Table.OEE_SHIFT, out, context.partition_keys))


#: The medallion the Spark job computes in one run, each table with its asset's group and dependencies as the
#: polars assets declare them (`defs/bronze/assets.py`, `defs/silver/assets.py`, above).
#: Bronze reads the landed raw zone in the azure profile, the edges' own tables in the local one.
SOURCE = "landing" if profile() == "azure" else "edge"
MEDALLION: tuple[tuple[Table, str, list[dg.AssetKey], str], ...] = (
    (
        Table.BRONZE_SAMPLES,
        "bronze",
        [dg.AssetKey([SOURCE, "raw_samples"]), dg.AssetKey([SOURCE, "quarantine"])],
        "The shift's samples from the edges (merged, de-duplicated on the sample key), with shift_id and is_good, "
        "plus each tag's last value before the shift (carried_in).",
    ),
    (
        Table.STATE_INTERVALS,
        "silver",
        [BRONZE],
        "PackML state intervals per line, clipped to the shift, with time element, stop reason and gap flag.",
    ),
    (
        Table.PART_COUNTS,
        "silver",
        [BRONZE],
        "Produced and defective parts per line and shift, from PLC counter increments that survive wraps and restarts.",
    ),
    (
        Table.PART_MEASUREMENTS,
        "silver",
        [BRONZE],
        "One row per inspected part: deviation, tolerance, out of tolerance.",
    ),
    (Table.OEE_SHIFT, "gold", DEPS, DESCRIPTION),
)


def pipes_medallion(engine: str) -> dg.AssetsDefinition:
    """Bronze, the three silver tables and `fact_oee_shift` of a range of shifts, computed by one run of the Spark
    job (`spark`: local pyspark; `databricks`: a Databricks run) from the edge rows. The same asset keys as the
    polars assets (their checks stay as they are: they read the lake). The job reports each table's
    materialization with each shift's own figures, which land here on each shift's partition."""
    kinds = {"pyspark", "deltalake", *(["databricks"] if engine == "databricks" else [])}
    specs = [
        dg.AssetSpec(
            key=dg.AssetKey(table.asset_path),
            deps=deps,
            group_name=group,
            kinds=kinds,
            owners=["team:data"],
            description=f"{description} Computed by the Spark medallion job on {engine}.",
            metadata={**table_metadata(table), "partitioned_by": "shift_id"},
        )
        for table, group, deps, description in MEDALLION
    ]

    @dg.multi_asset(
        name="spark_medallion",
        specs=specs,
        partitions_def=SHIFTS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        op_tags=OEE_FIRST,
        check_specs=[
            dg.AssetCheckSpec(
                "oee_invariants",
                asset=KEY,
                description=(
                    "OEE invariants, evaluated by the Spark job: ratios in [0, 1] (performance may exceed 1: "
                    "flagged), OEE = A x P x Q, good + reject = produced, times add up to the shift."
                ),
            ),
            dg.AssetCheckSpec(
                "performance_at_most_1",
                asset=KEY,
                description=(
                    "Performance above 1, reported by the Spark job: a wrong design speed or a counter fault."
                ),
            ),
        ],
    )
    def spark_medallion(context: dg.AssetExecutionContext, oee_job: dg.ResourceParam[Any]):  # noqa: ANN202 - Dagster reads a return annotation as the outputs' type; this asset also returns its checks' results
        results = oee_job.run(context, list(context.partition_keys)).get_results()
        for result in results:  # each shift's own figures on its partition, as the polars path reports them
            per_shift = (result.metadata or {}).get("per_shift") if isinstance(result, dg.MaterializeResult) else None
            if isinstance(per_shift, dg.JsonMetadataValue) and isinstance(per_shift.data, dict):
                for shift_id, figures in per_shift.data.items():
                    if shift_id in context.partition_keys:
                        link = dashboard_link(shift_id) if result.asset_key == KEY else {}
                        context.add_asset_metadata(
                            {**figures, **link}, asset_key=result.asset_key, partition_key=shift_id
                        )
        return results

    return spark_medallion


@dg.definitions
def gold_oee() -> dg.Definitions:
    """Gold OEE from the engine the profile chose: polars here (bronze and silver in their own modules), or the
    whole medallion by the Spark job through Pipes (bronze and silver then contribute nothing). (A module with a
    `@dg.definitions` function contributes only what the function returns.)"""
    engine = oee_engine()
    return dg.Definitions(assets=[gold_fact_oee_shift if engine == "polars" else pipes_medallion(engine)])
