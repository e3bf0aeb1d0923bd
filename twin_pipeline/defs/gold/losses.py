"""Gold `fact_losses`: the six big losses per line and shift (`twin_pipeline/lib/transforms/losses.py`), with
its checks: the losses add up to `fact_oee_shift`, and every injected kind reconciles with gold
(`twin_pipeline/lib/transforms/reconcile.py`).

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from datetime import timedelta

import dagster as dg
import polars as pl

from twin_pipeline.defs.check_results import provisional_unless, shift_ids, shift_rows
from twin_pipeline.defs.partitions import BRONZE, CALENDAR, SHIFTS, publish, report_per_shift, shift_asset
from twin_pipeline.lib.contracts import FACT_LOSSES, Table, table_path
from twin_pipeline.lib.lake_io import bronze_by_shift, read_shifts
from twin_pipeline.lib.settings import oee_engine
from twin_pipeline.lib.transforms.losses import LOSS_TAGS, loss_rows, loss_totals_problems
from twin_pipeline.lib.transforms.reconcile import comparisons, summary
from twin_pipeline.resources.lake import LakeResource

KEY = dg.AssetKey(Table.LOSSES.asset_path)
#: How far back the injected events are read: the setting in force at a shift's start (feed rate, quality
#: error) was written before it.
LOOKBACK = timedelta(days=1)


@shift_asset(
    key=KEY.path,
    group="gold",
    deps=[dg.AssetKey(Table.OEE_SHIFT.asset_path), dg.AssetKey(Table.STATE_INTERVALS.asset_path), BRONZE],
    description="The six big losses per line and shift, long format, on the ISO 22400-2 time elements: "
    "breakdowns (ADET) and setup/adjustment (AUST) per cause, small stops and reduced speed (inside APT), "
    "start-up and production rejects; seconds, events and parts lost. They add up to fact_oee_shift.",
)
def gold_fact_losses(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    root = lake.path()
    oee = read_shifts(table_path(root, Table.OEE_SHIFT), list(context.partition_keys))
    intervals = read_shifts(table_path(root, Table.STATE_INTERVALS), list(context.partition_keys))
    bronze = bronze_by_shift(root, context.partition_keys, LOSS_TAGS)
    frames = [
        loss_rows(oee, intervals.filter(pl.col("shift_id") == s), samples, CALENDAR.window(s))
        for s, samples in bronze.items()
    ]
    out = pl.concat(frames) if frames else pl.DataFrame(schema=FACT_LOSSES)
    report_per_shift(context, out, _loss_metadata)
    return dg.MaterializeResult(metadata=publish(root, Table.LOSSES, out, context.partition_keys))


def _loss_metadata(rows: pl.DataFrame) -> dict[str, float | int]:
    """A shift's seconds per loss and its small-stop count (plotted per partition in the UI)."""
    by_loss = rows.group_by("loss").agg(pl.col("seconds").sum()).sort("loss")
    return {
        **{f"seconds/{r['loss']}": round(r["seconds"], 1) for r in by_loss.iter_rows(named=True)},
        "small_stops": int(rows.filter(pl.col("loss") == "small_stops")["count"].sum()),
    }


@dg.asset_check(
    asset=KEY,
    partitions_def=SHIFTS,
    additional_deps=[dg.AssetKey(Table.OEE_SHIFT.asset_path)],
    description="The losses add up to fact_oee_shift: breakdowns + setup (+ unknown) = PBT - APT, small stops + "
    "reduced speed = APT - ideal cycle time x produced, start-up + production rejects = rejects, PBT - every "
    "loss = ideal cycle time x good.",
)
def losses_add_up(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    problems = loss_totals_problems(shift_rows(lake, Table.LOSSES, context), shift_rows(lake, Table.OEE_SHIFT, context))
    return provisional_unless("losses_add_up", context, lake, not problems, {"problems": "; ".join(problems) or "none"})


@dg.asset_check(
    asset=KEY,
    partitions_def=SHIFTS,
    additional_deps=[
        dg.AssetKey(["edge", "injected_events"]),
        dg.AssetKey(Table.OEE_SHIFT.asset_path),
        dg.AssetKey(Table.QUALITY.asset_path),
        dg.AssetKey(Table.STATE_INTERVALS.asset_path),
        dg.AssetKey(Table.PART_MEASUREMENTS.asset_path),
    ],
    description="Ground truth of every injected kind against gold: starvation, blocking and faults against "
    "downtime by reason; micro-stops against the small-stop count; feed rate and speed limit against the "
    "performance loss; quality drift against fact_quality's mean (inside its confidence interval); start-up "
    "rejects against the rejects after restarts. Lines without injections are not compared.",
)
def injections_reconcile(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    root, edges = lake.path(), lake.edge_source()
    ids = shift_ids(context)
    losses = shift_rows(lake, Table.LOSSES, context)
    oee = shift_rows(lake, Table.OEE_SHIFT, context)
    quality = shift_rows(lake, Table.QUALITY, context)
    intervals = shift_rows(lake, Table.STATE_INTERVALS, context)
    measurements = read_shifts(table_path(root, Table.PART_MEASUREMENTS), ids)
    found = []
    for shift_id in ids:
        window = CALENDAR.window(shift_id)
        events = edges.scan("injected_events", "event_ts", window.start - LOOKBACK, window.end).collect()
        found += comparisons(
            window,
            events,
            losses,
            oee,
            quality,
            intervals.filter(pl.col("shift_id") == shift_id),
            measurements.filter(pl.col("shift_id") == shift_id),
        )
    disagree = [f"{c.shift_id} {c.line_id} {c.what}: {c.describe()}" for c in found if not c.agrees]
    return provisional_unless(
        "injections_reconcile",
        context,
        lake,
        not disagree,
        {"disagreements": "; ".join(disagree) or "none", "compared": len(found), **summary(found)},
    )


@dg.definitions
def gold_losses() -> dg.Definitions:
    """The losses and their checks read `fact_oee_shift` from the lake here: with the polars or local Spark
    engine; with Databricks gold lives in the cluster's lake, so they are left out. (A module with a
    `@dg.definitions` function contributes only what it returns.)"""
    if oee_engine() == "databricks":
        return dg.Definitions()
    return dg.Definitions(assets=[gold_fact_losses], asset_checks=[losses_add_up, injections_reconcile])
