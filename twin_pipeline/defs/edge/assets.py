"""The edge tables the collector writes, as external assets (Dagster observes them, never writes
them), and the sensor that records a new Delta version as a runless materialization."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from edge_collector.column_descriptions import DESCRIPTIONS as COLUMN_DESCRIPTIONS
from edge_collector.schemas import TABLES, edge_table_path
from twin_pipeline.resources.lake import LakeResource

DESCRIPTIONS = {
    "raw_samples": "Every OPC UA data change of the lines, as the edge collector received it (long format).",
    "injected_events": "Ground truth: every fault, repair, feed-rate and quality injection of the variability engine.",
    "quarantine": "Values the collector could not store (NaN, type change, absurd timestamp, ...), with a reason.",
    "gaps": "Outages: intervals in which the collector received nothing from a line, with the reason.",
    "subscriptions": "The manifest: which tags (node ids) the collector subscribed per line and since when; "
    "completeness is checked against it.",
}


def _column_type(t: pa.DataType) -> str:
    return "timestamp[us, UTC]" if pa.types.is_timestamp(t) else str(t)


def _spec(table: str) -> dg.AssetSpec:
    schema = TABLES[table]
    return dg.AssetSpec(
        key=["edge", table],
        description=DESCRIPTIONS[table],
        group_name="edge",
        kinds={"deltalake", "opcua"},
        owners=["team:edge"],
        tags={"layer": "edge"},
        metadata={
            "dagster/column_schema": dg.TableSchema(
                columns=[
                    dg.TableColumn(f.name, _column_type(f.type), description=COLUMN_DESCRIPTIONS[table][f.name])
                    for f in schema
                ]
            ),
            "partitioned_by": "day (UTC)",
            "writer": "edge-collector",
        },
    )


EDGE_ASSETS = [_spec(table) for table in TABLES]


def _version(lake: LakeResource, table: str) -> tuple[int, dict[str, int]] | None:
    """The sum of the table's Delta versions over the edges on this machine (it grows with any commit),
    and each edge's; None when no edge has the table."""
    versions: dict[str, int] = {}
    for edge_id, root in lake.edge_lakes().items():
        try:
            versions[edge_id] = DeltaTable(str(edge_table_path(root, table))).version()
        except TableNotFoundError:
            continue
    return (sum(versions.values()), versions) if versions else None


@dg.sensor(
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records each new Delta version of an edge table as a runless materialization (no row counts).",
    asset_selection=dg.AssetSelection.groups("edge"),
)
def edge_delta_versions(context: dg.SensorEvaluationContext, lake: LakeResource) -> dg.SensorResult | dg.SkipReason:
    seen: dict[str, int] = {}
    if context.cursor:
        for item in context.cursor.split(","):
            name, _, number = item.partition("=")
            seen[name] = int(number)
    events = []
    for table in TABLES:
        found = _version(lake, table)
        if found is None or found[0] <= seen.get(table, -1):
            continue
        version, by_edge = found
        seen[table] = version
        events.append(
            dg.AssetMaterialization(
                asset_key=["edge", table],
                metadata={
                    "delta_version": version,
                    **{f"delta_version/{edge_id}": v for edge_id, v in by_edge.items()},
                    "path": dg.MetadataValue.path(
                        ", ".join(str(edge_table_path(root, table)) for root in lake.edge_lakes().values())
                    ),
                },
            )
        )
    cursor = ",".join(f"{name}={version}" for name, version in sorted(seen.items()))
    if not events:
        return dg.SkipReason(f"no new Delta versions ({cursor or 'no tables yet'})")
    return dg.SensorResult(asset_events=events, cursor=cursor)


#: The collector commits raw samples every few seconds while a line is connected: a quarter of an hour
#: without a new Delta version means the collector (or its link to the PLC) is down.
RAW_SAMPLES_STALE_AFTER = timedelta(minutes=15)
edge_freshness = dg.build_last_update_freshness_checks(
    assets=[dg.AssetKey(["edge", "raw_samples"])], lower_bound_delta=RAW_SAMPLES_STALE_AFTER
)
edge_freshness_sensor = dg.build_sensor_for_freshness_checks(
    freshness_checks=edge_freshness, name="edge_freshness", default_status=dg.DefaultSensorStatus.RUNNING
)


@dg.definitions
def edge() -> dg.Definitions:
    return dg.Definitions(
        assets=EDGE_ASSETS, asset_checks=edge_freshness, sensors=[edge_delta_versions, edge_freshness_sensor]
    )
