"""Resources, bound once for the whole code location, chosen by the profile (`TWIN_PROFILE`, see
`lib/settings.py`). The resource classes are in `twin_pipeline/resources/`."""

from __future__ import annotations

import os

import dagster as dg

from twin_pipeline.lib.integrations.powerbi import powerbi_settings
from twin_pipeline.lib.settings import (
    AZURE_SETTINGS,
    DATABRICKS_SETTINGS,
    databricks_lake,
    edges,
    lake_root,
    oee_engine,
    profile,
    raw_zone_root,
    require,
)
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.landing import LandingResource
from twin_pipeline.resources.oee_engines import COMPUTE, DatabricksOeeJob, LocalSparkOeeJob
from twin_pipeline.resources.powerbi import powerbi_workspace


def resources_for(name: str) -> dict[str, object]:
    """The resources of a profile, bound once for the whole code location."""
    lake = LakeResource(root=lake_root(), edges={edge_id: str(folder) for edge_id, folder in edges().items()})
    engine = oee_engine()
    if name == "local":
        return {"lake": lake, **_local_spark(engine, lake)}
    if name == "azure":
        require(name, AZURE_SETTINGS)
        # bronze reads what was landed, so a deployment in the cloud needs no edge box
        lake = LakeResource(root=lake.root, edges=lake.edges, raw_zone=raw_zone_root())
        secret = {
            var: dg.EnvVar(var) for var in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN") if os.environ.get(var)
        }
        landing = LandingResource(
            account_url=os.environ["AZURE_STORAGE_ACCOUNT_URL"],
            account_name=os.environ.get("AZURE_STORAGE_ACCOUNT", ""),
            account_key=secret.get("AZURE_STORAGE_KEY", ""),
            sas_token=secret.get("AZURE_STORAGE_SAS_TOKEN", ""),
            container=os.environ.get("TWIN_LANDING_CONTAINER", "landing"),
        )
        power_bi = {"power_bi": powerbi_workspace(pbi)} if (pbi := powerbi_settings()) else {}
        return {
            "lake": lake,
            "landing": landing,
            **_local_spark(engine, lake),
            **_databricks(engine, landing),
            **power_bi,
        }
    raise ValueError(f"unknown profile {name!r}")


def _local_spark(engine: str, lake: LakeResource) -> dict[str, object]:
    if engine != "spark":
        return {}
    edge_lakes = {k: str(v) for k, v in lake.edge_lakes().items()}
    return {"oee_job": LocalSparkOeeJob(lake=lake.root, edges=edge_lakes, raw=lake.raw_zone)}


def _databricks(engine: str, landing: object) -> dict[str, object]:
    if engine != "databricks":
        return {}
    require("azure", DATABRICKS_SETTINGS)
    env = os.environ.get
    compute = env("TWIN_DATABRICKS_COMPUTE", "") or "job_cluster"
    if compute not in COMPUTE:
        raise ValueError(f"TWIN_DATABRICKS_COMPUTE={compute!r} is not one of {', '.join(COMPUTE)}")
    if compute == "existing_cluster" and not env("TWIN_DATABRICKS_CLUSTER_ID"):
        raise ValueError("TWIN_DATABRICKS_COMPUTE=existing_cluster needs TWIN_DATABRICKS_CLUSTER_ID (the cluster's id)")
    return {
        "oee_job": DatabricksOeeJob(
            host=env("DATABRICKS_HOST", ""),
            token=dg.EnvVar("DATABRICKS_TOKEN") if env("DATABRICKS_TOKEN") else "",
            script=env("TWIN_DATABRICKS_SCRIPT", ""),
            lake=databricks_lake(),
            compute=compute,
            cluster_id=env("TWIN_DATABRICKS_CLUSTER_ID", ""),
            node_type_id=env("TWIN_DATABRICKS_NODE_TYPE", "") or "Standard_D4ds_v5",
            secret_scope=env("TWIN_DATABRICKS_SECRET_SCOPE", "") or "twin",
            raw=env("TWIN_DATABRICKS_RAW", ""),
            catalog=env("TWIN_UC_CATALOG", ""),
            schema_name=env("TWIN_UC_SCHEMA", "") or ("gold" if env("TWIN_UC_CATALOG") else ""),
            landing=landing,
        )
    }


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(profile()))
