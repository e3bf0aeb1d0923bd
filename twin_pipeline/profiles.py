"""Where the pipeline's resources are chosen: `TWIN_PROFILE` (`local` by default).

`local`: the lake on local disk under `$TWIN_HOME/lake`, OEE in polars, no account needed.
`azure`: the same, plus each shift's raw slice landed in Azure Blob Storage, and OEE on Databricks
when `DATABRICKS_HOST` is set. Settings and secrets come only from the environment (see
`AZURE_SETTINGS`, `DATABRICKS_SETTINGS`); a missing one is a clear error at load time.

`TWIN_OEE_ENGINE` picks where gold OEE is computed: `polars` (in the Dagster process), `spark`
(the Spark job on local pyspark, through Pipes) or `databricks` (the same job on Databricks).
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROFILES = ("local", "azure")
#: The environment of the azure profile: (variable, required, what it is).
AZURE_SETTINGS = (
    ("AZURE_STORAGE_ACCOUNT_URL", True, "blob endpoint, e.g. https://<account>.blob.core.windows.net"),
    ("AZURE_STORAGE_ACCOUNT", False, "account name, with AZURE_STORAGE_KEY for shared-key auth"),
    ("AZURE_STORAGE_KEY", False, "account key (secret); without it and a SAS token: DefaultAzureCredential"),
    ("AZURE_STORAGE_SAS_TOKEN", False, "a SAS token (secret) instead of the key"),
    ("TWIN_LANDING_CONTAINER", False, "container of the landing zone (default: landing)"),
)
#: The Power BI refresh of the azure profile, all or none (twin_pipeline/powerbi.py): (variable, what it is).
POWERBI_SETTINGS = (
    ("POWERBI_WORKSPACE_ID", "id of the workspace (group) the IndustrialTwin semantic model is published to"),
    ("POWERBI_SEMANTIC_MODEL_ID", "id of the published IndustrialTwin semantic model (dataset)"),
    ("POWERBI_TENANT_ID", "Entra tenant of the service principal"),
    ("POWERBI_CLIENT_ID", "application (client) id of the service principal"),
    ("POWERBI_CLIENT_SECRET", "its client secret (secret)"),
)
#: The environment of the Databricks OEE job (azure profile): (variable, required, what it is).
DATABRICKS_SETTINGS = (
    ("DATABRICKS_HOST", True, "workspace URL, e.g. https://adb-<id>.<n>.azuredatabricks.net"),
    ("DATABRICKS_TOKEN", False, "a token (secret); without it the SDK's auth chain (DATABRICKS_CLIENT_ID/SECRET, CLI)"),
    ("TWIN_DATABRICKS_SCRIPT", True, "where the bundle put oee_job.py, e.g. /Workspace/Shared/twin/oee_job.py"),
    ("TWIN_DATABRICKS_LAKE", True, "the lake as the cluster sees it, e.g. abfss://lake@<account>.dfs.core.windows.net/twin"),
    ("TWIN_DATABRICKS_COMPUTE", False, "job_cluster (default), existing_cluster or serverless"),
    ("TWIN_DATABRICKS_CLUSTER_ID", False, "the cluster of compute=existing_cluster"),
    ("TWIN_DATABRICKS_NODE_TYPE", False, "node type of compute=job_cluster (default Standard_D4ds_v5)"),
    ("TWIN_DATABRICKS_SECRET_SCOPE", False, "secret scope holding the landing account key (default twin)"),
)


def _require(profile_name: str, settings: tuple[tuple[str, bool, str], ...]) -> None:
    missing = [var for var, required, _ in settings if required and not os.environ.get(var)]
    if missing:
        listed = "\n".join(f"  {var}{' (required)' if req else ''}: {what}" for var, req, what in settings)
        raise ValueError(f"TWIN_PROFILE={profile_name} needs {', '.join(missing)} in the environment (or in .env "
                         f"beside workspace.yaml):\n{listed}")


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`."""

    root: str

    def path(self) -> Path:
        return Path(self.root)


def profile() -> str:
    name = os.environ.get("TWIN_PROFILE", "local")
    if name not in PROFILES:
        raise ValueError(f"TWIN_PROFILE={name!r} is not a profile; set it to one of: {', '.join(PROFILES)}")
    return name


def oee_engine() -> str:
    """Where gold OEE is computed: `TWIN_OEE_ENGINE`, else databricks in the azure profile when
    `DATABRICKS_HOST` is set, else polars."""
    default = "databricks" if profile() == "azure" and os.environ.get("DATABRICKS_HOST") else "polars"
    name = os.environ.get("TWIN_OEE_ENGINE", "") or default
    if name not in ("polars", "spark", "databricks"):
        raise ValueError(f"TWIN_OEE_ENGINE={name!r} is not an engine; set it to polars, spark or databricks")
    if name == "databricks" and profile() != "azure":
        raise ValueError("TWIN_OEE_ENGINE=databricks needs TWIN_PROFILE=azure (its Pipes messages travel through "
                         "the landing account); use spark to run the same job on local pyspark")
    return name


def resources_for(name: str) -> dict[str, object]:
    """The resources of a profile, bound once for the whole code location."""
    home = Path(os.environ.get("TWIN_HOME", ".twin")).resolve()
    lake = LakeResource(root=str(home / "lake"))
    engine = oee_engine()
    if name == "local":
        return {"lake": lake, **_local_spark(engine, lake)}
    if name == "azure":
        from twin_pipeline.landing import LandingResource

        _require(name, AZURE_SETTINGS)
        secret = {var: dg.EnvVar(var) for var in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN") if os.environ.get(var)}
        landing = LandingResource(
            account_url=os.environ["AZURE_STORAGE_ACCOUNT_URL"],
            account_name=os.environ.get("AZURE_STORAGE_ACCOUNT", ""),
            account_key=secret.get("AZURE_STORAGE_KEY", ""), sas_token=secret.get("AZURE_STORAGE_SAS_TOKEN", ""),
            container=os.environ.get("TWIN_LANDING_CONTAINER", "landing"))
        from twin_pipeline.powerbi import powerbi_settings, powerbi_workspace

        power_bi = {"power_bi": powerbi_workspace(pbi)} if (pbi := powerbi_settings()) else {}
        return {"lake": lake, "landing": landing, **_local_spark(engine, lake), **_databricks(engine, landing),
                **power_bi}
    raise ValueError(f"unknown profile {name!r}")


def _local_spark(engine: str, lake: LakeResource) -> dict[str, object]:
    if engine != "spark":
        return {}
    from twin_pipeline.oee_job import LocalSparkOeeJob

    return {"oee_job": LocalSparkOeeJob(lake=lake.root)}


def _databricks(engine: str, landing: object) -> dict[str, object]:
    if engine != "databricks":
        return {}
    from twin_pipeline.oee_job import COMPUTE, DatabricksOeeJob

    _require("azure", DATABRICKS_SETTINGS)
    env = os.environ.get
    compute = env("TWIN_DATABRICKS_COMPUTE", "") or "job_cluster"
    if compute not in COMPUTE:
        raise ValueError(f"TWIN_DATABRICKS_COMPUTE={compute!r} is not one of {', '.join(COMPUTE)}")
    if compute == "existing_cluster" and not env("TWIN_DATABRICKS_CLUSTER_ID"):
        raise ValueError("TWIN_DATABRICKS_COMPUTE=existing_cluster needs TWIN_DATABRICKS_CLUSTER_ID (the cluster's id)")
    return {"oee_job": DatabricksOeeJob(
        host=env("DATABRICKS_HOST", ""), token=dg.EnvVar("DATABRICKS_TOKEN") if env("DATABRICKS_TOKEN") else "",
        script=env("TWIN_DATABRICKS_SCRIPT", ""), lake=env("TWIN_DATABRICKS_LAKE", ""),
        compute=compute, cluster_id=env("TWIN_DATABRICKS_CLUSTER_ID", ""),
        node_type_id=env("TWIN_DATABRICKS_NODE_TYPE", "") or "Standard_D4ds_v5",
        secret_scope=env("TWIN_DATABRICKS_SECRET_SCOPE", "") or "twin", landing=landing)}
