"""The landing zone (azure profile only): each shift's raw edge slice in Azure Blob Storage.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import time

import dagster as dg

from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.lib.integrations.landing import blob_name, land, parquet_bytes
from twin_pipeline.lib.settings import DELTA_POOL as POOL
from twin_pipeline.lib.settings import profile
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.landing import LandingResource

#: The row order of a landed object, so the same slice gives the same bytes (a re-run is a no-op).
ORDER = ["line_id", "tag", "source_ts", "received_ts", "session_id", "seq"]


@dg.asset(
    key=["landing", "raw_samples"],
    deps=[dg.AssetKey(["edge", "raw_samples"])],
    partitions_def=SHIFTS,
    backfill_policy=dg.BackfillPolicy.single_run(),
    group_name="landing",
    kinds={"azure", "parquet"},
    owners=["team:data"],
    pool=POOL,  # one at a time with the lake's Delta maintenance (instance.py)
    description="The shift's raw edge samples as one verified Parquet object in Azure Blob Storage "
    "(raw/shift_id=<id>/samples.parquet): replaced by a re-run, never partly visible.",
)
def landing_raw_samples(
    context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource
) -> dg.MaterializeResult:
    container = landing.container_client()
    rows = size = uploaded = 0
    started = time.monotonic()
    blobs = []
    for shift_id in context.partition_keys:
        window = CALENDAR.window(shift_id)
        frame = (
            LocalEdges(lake.edge_lakes())  # landing reads the edges' own disks, never the raw zone
            .scan("raw_samples", "source_ts", window.start, window.end)
            .drop("edge_id")
            .collect()
            .sort(ORDER)
        )
        result = land(container, blob_name(shift_id), parquet_bytes(frame))
        context.log.info(
            "shift %s: %d rows, %.1f MB %s (%d attempt(s))",
            shift_id,
            frame.height,
            result.size / 1e6,
            "uploaded" if result.uploaded else "already there, identical",
            result.attempts,
        )
        context.add_asset_metadata(  # the shift's own figures on its partition (a range is one run)
            {
                "dagster/row_count": frame.height,
                "bytes": result.size,
                "objects_uploaded": int(result.uploaded),
                "objects_unchanged": int(not result.uploaded),
                "blobs": dg.MetadataValue.md(f"- `{result.blob} sha256={result.sha256[:16]}...`"),
            },
            partition_key=shift_id,
        )
        rows, size, uploaded = rows + frame.height, size + result.size, uploaded + int(result.uploaded)
        blobs.append(f"{result.blob} sha256={result.sha256[:16]}...")
    seconds = time.monotonic() - started
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": rows,
            "bytes": size,
            "objects_uploaded": uploaded,
            "objects_unchanged": len(context.partition_keys) - uploaded,
            "seconds": round(seconds, 3),
            "container": f"{landing.account_url}/{landing.container}",
            "blobs": dg.MetadataValue.md("\n".join(f"- `{b}`" for b in blobs)),
        }
    )


@dg.definitions
def landing_zone() -> dg.Definitions:
    return dg.Definitions(assets=[landing_raw_samples] if profile() == "azure" else [])
