"""The landing zone (azure profile only): every edge table, per shift and per edge, in the raw zone.

One asset per edge table, `landing/<table>`, downstream of `edge/<table>`: for each shift of the run and
each edge lake (`LakeResource.edge_lakes()`), the slice `raw_zone.belongs` gives is landed as
`raw/<table>/shift_id=<id>/edge_id=<edge>/part-0.parquet` (`lib/integrations/raw_landing.py`), then a
receipt is recorded on that edge (`<edge lake>/edge/landed`), so the edge's retention knows what it may
delete. Each shift's partition gets its own figures (rows, bytes, objects uploaded, unchanged and
skipped, the objects); `run/...` holds the run's totals, seconds and MB/s.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import time
from collections import defaultdict

import dagster as dg

from edge_collector.receipts import Receipt, record
from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.lib.integrations.raw_landing import SliceLanded, land_slice
from twin_pipeline.lib.raw_zone import TABLES
from twin_pipeline.lib.settings import DELTA_POOL as POOL
from twin_pipeline.lib.settings import profile
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.landing import LandingResource


def _figures(done: list[SliceLanded]) -> dict[str, int]:
    landed = [d.landed for d in done if d.landed is not None]
    return {
        "dagster/row_count": sum(d.rows for d in done),
        "bytes": sum(x.size for x in landed),
        "objects_uploaded": sum(x.uploaded for x in landed),
        "objects_unchanged": sum(not x.uploaded for x in landed),
        "objects_skipped": sum(d.landed is None for d in done),
    }


def _said(item: SliceLanded) -> str:
    if item.landed is None:
        return f"skipped: {item.skipped}"
    state = "uploaded" if item.landed.uploaded else "already there, identical"
    return f"{item.landed.size / 1e6:.2f} MB {state} ({item.landed.attempts} attempt(s))"


def _listing(done: list[SliceLanded]) -> dg.MetadataValue:
    return dg.MetadataValue.md(
        "\n".join(
            f"- `{d.landed.blob}` {d.rows} rows sha256={d.landed.sha256[:16]}..."
            if d.landed is not None
            else f"- {d.edge_id}: skipped ({d.skipped})"
            for d in done
        )
    )


def landing_asset(table: str) -> dg.AssetsDefinition:
    """`landing/<table>`: the table's slice of each shift of the run, per edge, verified, with receipts."""

    @dg.asset(
        key=["landing", table],
        deps=[dg.AssetKey(["edge", table])],
        partitions_def=SHIFTS,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name="landing",
        kinds={"azure", "parquet"},
        owners=["team:data"],
        pool=POOL,  # one at a time with the lake's Delta maintenance (instance.py); receipts are Delta writes
        metadata={"partitioned_by": "shift_id, edge_id", "layout": f"raw/{table}/shift_id=<id>/edge_id=<edge>/"},
        description=f"The shift's `{table}` rows of every edge as one verified Parquet object per edge in the "
        f"raw zone (raw/{table}/shift_id=<id>/edge_id=<edge>/part-0.parquet), and a receipt on the edge "
        "(edge/landed): replaced by a re-run, never partly visible; an empty slice is landed too.",
    )
    def _landing(
        context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
    ) -> dg.MaterializeResult:
        container = landing.container_client()
        edges = lake.edge_lakes()
        started = time.monotonic()
        done: list[SliceLanded] = []
        receipts: dict[str, list[Receipt]] = defaultdict(list)
        try:
            for shift_id in context.partition_keys:
                window = CALENDAR.window(shift_id)
                shift = [land_slice(container, folder, edge_id, table, window) for edge_id, folder in edges.items()]
                for item in shift:
                    if item.receipt is not None:
                        receipts[item.edge_id].append(item.receipt)
                    context.log.info("%s %s %s: %d rows, %s", table, shift_id, item.edge_id, item.rows, _said(item))
                # the shift's own figures on its partition (a range is one run)
                context.add_asset_metadata({**_figures(shift), "objects": _listing(shift)}, partition_key=shift_id)
                done.extend(shift)
        finally:  # what was verified is recorded even when a later shift fails: receipts only ever lag
            for edge_id, items in receipts.items():
                record(edges[edge_id], items)
        seconds = time.monotonic() - started
        figures = _figures(done)
        # each partition shows its own shift's figures under the plain keys (they override the run's on it);
        # the run's totals are under run/ so that every partition of a range also shows the whole run
        return dg.MaterializeResult(
            metadata={
                **figures,
                **{f"run/{k.removeprefix('dagster/')}": v for k, v in figures.items()},
                "run/seconds": round(seconds, 3),
                "run/mb_per_s": round(figures["bytes"] / 1e6 / seconds, 2) if seconds > 0 else 0.0,
                "run/shifts": len(context.partition_keys),
                "edges": ", ".join(edges),
                "container": f"{landing.account_url}/{landing.container}",
            }
        )

    return _landing


LANDING_ASSETS = [landing_asset(table) for table in TABLES]


@dg.definitions
def landing_zone() -> dg.Definitions:
    return dg.Definitions(assets=LANDING_ASSETS if profile() == "azure" else [])
