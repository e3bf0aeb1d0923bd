"""The profile settings, read only from the environment: `TWIN_PROFILE` (`local` by default). The
resources they choose are bound in `defs/resources.py`.

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

PROFILES = ("local", "azure")
#: The environment of the azure profile: (variable, required, what it is).
AZURE_SETTINGS = (
    ("AZURE_STORAGE_ACCOUNT_URL", True, "blob endpoint, e.g. https://<account>.blob.core.windows.net"),
    ("AZURE_STORAGE_ACCOUNT", False, "account name, with AZURE_STORAGE_KEY for shared-key auth"),
    ("AZURE_STORAGE_KEY", False, "account key (secret); without it and a SAS token: DefaultAzureCredential"),
    ("AZURE_STORAGE_SAS_TOKEN", False, "a SAS token (secret) instead of the key"),
    (
        "TWIN_LANDING_CONTAINER",
        False,
        "landing container (default: landing); its raw/ prefix is the raw zone",
    ),
    ("TWIN_LAKE", False, "the lake of bronze/silver/gold, e.g. abfss://lake@<account>.dfs.core.windows.net/twin"),
    (
        "TWIN_EDGES",
        False,
        "edges landed from here: <edge id>=<folder>,... (default edge-local=$TWIN_HOME/lake)",
    ),
    ("TWIN_RAW_ZONE", False, "where bronze reads the landed edge tables (default az://<TWIN_LANDING_CONTAINER>)"),
    ("AZURE_STORAGE_USE_EMULATOR", False, "true for Azurite (with AZURITE_BLOB_STORAGE_URL=http://127.0.0.1:<port>)"),
)
#: The Power BI refresh of the azure profile, all or none (lib/integrations/powerbi.py): (variable, what it is).
POWERBI_SETTINGS = (
    ("POWERBI_WORKSPACE_ID", "id of the workspace (group) the IndustrialTwin semantic model is published to"),
    ("POWERBI_SEMANTIC_MODEL_ID", "id of the published IndustrialTwin semantic model (dataset)"),
    ("POWERBI_TENANT_ID", "Entra tenant of the service principal"),
    ("POWERBI_CLIENT_ID", "application (client) id of the service principal"),
    ("POWERBI_CLIENT_SECRET", "its client secret (secret)"),
)
#: Where the published semantic model reads gold (lib/integrations/powerbi_params.py), set as its source
#: parameters before each refresh: (variable, what it is).
POWERBI_SOURCE_SETTINGS = (
    ("TWIN_POWERBI_SOURCE", "adls (default: the Delta folders under TWIN_LAKE) or databricks (a SQL warehouse)"),
    ("DATABRICKS_SQL_HTTP_PATH", "HTTP path of the SQL warehouse (source databricks), e.g. /sql/1.0/warehouses/<id>"),
    ("TWIN_UC_CATALOG", "Unity Catalog catalog of the gold tables (source databricks; default industrial_twin)"),
    ("TWIN_UC_SCHEMA", "its schema (source databricks; default gold)"),
)
#: The environment of the Databricks OEE job (azure profile): (variable, required, what it is).
DATABRICKS_SETTINGS = (
    ("DATABRICKS_HOST", True, "workspace URL, e.g. https://adb-<id>.<n>.azuredatabricks.net"),
    ("DATABRICKS_TOKEN", False, "a token (secret); without it the SDK's auth chain (DATABRICKS_CLIENT_ID/SECRET, CLI)"),
    ("TWIN_DATABRICKS_SCRIPT", True, "where the bundle put oee_job.py, e.g. /Workspace/Shared/twin/oee_job.py"),
    (
        "TWIN_DATABRICKS_LAKE",
        False,
        "the lake as the cluster sees it (default TWIN_LAKE), e.g. abfss://lake@<account>.dfs.core.windows.net/twin",
    ),
    ("TWIN_DATABRICKS_COMPUTE", False, "job_cluster (default), existing_cluster or serverless"),
    ("TWIN_DATABRICKS_CLUSTER_ID", False, "the cluster of compute=existing_cluster"),
    ("TWIN_DATABRICKS_NODE_TYPE", False, "node type of compute=job_cluster (default Standard_D4ds_v5)"),
    ("TWIN_DATABRICKS_SECRET_SCOPE", False, "secret scope holding the landing account key (default twin)"),
    (
        "TWIN_DATABRICKS_RAW",
        False,
        "the landed raw zone as the cluster reads it (default abfss://<landing container>@<account>.dfs...)",
    ),
    (
        "TWIN_UC_CATALOG",
        False,
        "Unity Catalog catalog: the job writes tables <catalog>.<schema>.<table>, else Delta folders",
    ),
    ("TWIN_UC_SCHEMA", False, "Unity Catalog schema of those tables (default gold; Power BI reads gold there)"),
)


def databricks_lake() -> str:
    """The lake as the Databricks cluster sees it: `TWIN_DATABRICKS_LAKE`, else `TWIN_LAKE` (the one lake)."""
    lake = os.environ.get("TWIN_DATABRICKS_LAKE", "").strip() or lake_root()
    if "://" not in lake:
        raise ValueError(
            f"the Databricks medallion needs the lake in cloud storage, not {lake!r}: set TWIN_LAKE (or "
            "TWIN_DATABRICKS_LAKE) to abfss://<container>@<account>.dfs.core.windows.net/<prefix>"
        )
    return lake


def require(profile_name: str, settings: tuple[tuple[str, bool, str], ...]) -> None:
    missing = [var for var, required, _ in settings if required and not os.environ.get(var)]
    if missing:
        listed = "\n".join(f"  {var}{' (required)' if req else ''}: {what}" for var, req, what in settings)
        raise ValueError(
            f"TWIN_PROFILE={profile_name} needs {', '.join(missing)} in the environment (or in .env "
            f"beside workspace.yaml):\n{listed}"
        )


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
        raise ValueError(
            "TWIN_OEE_ENGINE=databricks needs TWIN_PROFILE=azure (its Pipes messages travel through "
            "the landing account); use spark to run the same job on local pyspark"
        )
    return name


#: The Dagster concurrency pool of every step that writes local Delta tables (one writer at a time);
#: `twin up` writes its limit into the instance (launcher/instance.py).
DELTA_POOL = "delta_local"


#: The edge id of the one collector a local twin runs (`[collector] id` in edge_collector/local.toml).
DEFAULT_EDGE_ID = "edge-local"


def twin_home() -> Path:
    return Path(os.environ.get("TWIN_HOME", ".twin")).resolve()


def raw_zone_root() -> str:
    """Where the azure profile reads the landed edge tables: `TWIN_RAW_ZONE`, default the landing container."""
    return (
        os.environ.get("TWIN_RAW_ZONE", "").strip() or f"az://{os.environ.get('TWIN_LANDING_CONTAINER') or 'landing'}"
    )


def lake_root() -> str:
    """Where bronze, silver and gold live: `TWIN_LAKE`, a local folder or an object-store URI
    (`abfss://<container>@<account>.dfs.core.windows.net/<prefix>`, `az://<container>/<prefix>`);
    default `$TWIN_HOME/lake`."""
    value = os.environ.get("TWIN_LAKE", "").strip()
    if not value:
        return str(twin_home() / "lake")
    if "://" in value and not value.startswith("file://"):
        return value.rstrip("/")
    return str(Path(value.removeprefix("file://")).expanduser().resolve())


def edges() -> dict[str, Path]:
    """The edge lakes this deployment reads or lands, by edge id: `TWIN_EDGES`, comma-separated
    `<edge id>=<folder>` (each folder a collector's lake root, its tables under `edge/<table>`);
    default one edge, `edge-local` at `$TWIN_HOME/lake`."""
    value = os.environ.get("TWIN_EDGES", "").strip()
    if not value:
        return {DEFAULT_EDGE_ID: twin_home() / "lake"}
    found: dict[str, Path] = {}
    for item in value.split(","):
        edge_id, sep, folder = item.strip().partition("=")
        edge_id = edge_id.strip()
        if not sep or not edge_id or not folder.strip() or "/" in edge_id:
            raise ValueError(
                f"TWIN_EDGES item {item.strip()!r} is not <edge id>=<folder>; e.g. "
                "TWIN_EDGES=edge-a=/data/edge-a,edge-b=/data/edge-b (each folder a collector's lake root)"
            )
        if edge_id in found:
            raise ValueError(f"TWIN_EDGES names edge {edge_id!r} twice; give each collector its own id")
        found[edge_id] = Path(folder.strip()).expanduser().resolve()
    return found


def dagster_url() -> str:
    """Where the Dagster UI is, for links into it (the dashboard's): `TWIN_DAGSTER_URL`, default `twin up`'s."""
    return (os.environ.get("TWIN_DAGSTER_URL", "").strip() or "http://127.0.0.1:3000").rstrip("/")


def dashboard_url() -> str:
    """Where the dashboard is, for links into it (each shift's OEE materialization): `TWIN_DASHBOARD_URL`,
    default `twin up`'s."""
    return (os.environ.get("TWIN_DASHBOARD_URL", "").strip() or "http://127.0.0.1:8501").rstrip("/")
