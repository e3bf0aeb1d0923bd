"""The published semantic model's source parameters, from the profile's settings: where Power BI reads gold.

Why: the model in git (`powerbi/.../expressions.tmdl`) carries placeholder parameters; the deployment
knows the real lake (`TWIN_LAKE`) or the real SQL warehouse. Before each refresh (and from this CLI, at
deploy time) the parameters are set to what the settings say, and only those that differ are sent.

- `TWIN_POWERBI_SOURCE=adls` (default): `SourceKind=ADLS` and `AdlsRoot` = the lake root as the DFS URL
  the Delta Lake connector takes (`abfss://<container>@<account>.dfs.core.windows.net/<prefix>` or
  `az://<container>/<prefix>` with `AZURE_STORAGE_ACCOUNT` (or the account of `AZURE_STORAGE_ACCOUNT_URL`)
  -> `https://<account>.dfs.core.windows.net/
  <container>/<prefix>`). A lake on this machine is an error: the Power BI service cannot read it.
- `TWIN_POWERBI_SOURCE=databricks`: `SourceKind=Databricks`, `DatabricksHost` (`DATABRICKS_HOST` without
  https://), `DatabricksHttpPath` (`DATABRICKS_SQL_HTTP_PATH`), `DatabricksCatalog`/`DatabricksSchema`
  (`TWIN_UC_CATALOG`/`TWIN_UC_SCHEMA`).

    python -m twin_pipeline.lib.integrations.powerbi_params           # print the parameters
    python -m twin_pipeline.lib.integrations.powerbi_params --apply   # set them on the published model
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from twin_pipeline.lib.integrations.powerbi import powerbi_settings
from twin_pipeline.lib.integrations.powerbi_rest import SemanticModelApi, service_principal_token
from twin_pipeline.lib.location import account_of
from twin_pipeline.lib.settings import POWERBI_SOURCE_SETTINGS, lake_root

SOURCES = {"adls": "ADLS", "databricks": "Databricks"}
#: The Unity Catalog defaults, the same as the model's in git (expressions.tmdl).
DEFAULT_CATALOG, DEFAULT_SCHEMA = "industrial_twin", "gold"
_WHAT = "\n".join(f"  {var}: {what}" for var, what in POWERBI_SOURCE_SETTINGS)


class SourceSettingsError(ValueError):
    """The settings do not say where Power BI can read gold; the message says what to set."""


def dfs_url(uri: str, env: Mapping[str, str] | None = None) -> str:
    """An Azure lake URI as the `https://<account>.dfs.core.windows.net/<container>/<path>` URL that
    Power BI's `AzureStorage.DataLake` takes."""
    env = os.environ if env is None else env
    parts = urlsplit(uri)
    scheme, path = parts.scheme.lower(), parts.path.strip("/")
    if scheme in ("abfss", "abfs"):
        container, at, host = parts.netloc.partition("@")
        if not at or not container or not host:
            raise SourceSettingsError(f"{uri!r} is not abfss://<container>@<account>.dfs.core.windows.net/<path>")
        host = host.replace(".blob.", ".dfs.", 1)
    elif scheme in ("az", "azure"):
        container = parts.netloc
        url = env.get("AZURE_STORAGE_ACCOUNT_URL", "")
        endpoint = urlsplit(url).hostname or ""
        account = (
            env.get("AZURE_STORAGE_ACCOUNT")
            or env.get("AZURE_STORAGE_ACCOUNT_NAME")
            or (account_of(url) if endpoint not in ("127.0.0.1", "localhost") else "")
        )
        if not account:
            raise SourceSettingsError(
                f"{uri!r} names no storage account: set AZURE_STORAGE_ACCOUNT (or AZURE_STORAGE_ACCOUNT_URL="
                "https://<account>.blob.core.windows.net), or write TWIN_LAKE as "
                "abfss://<container>@<account>.dfs.core.windows.net/<path>"
            )
        if env.get("AZURE_STORAGE_USE_EMULATOR", "").lower() == "true":
            raise SourceSettingsError(
                f"{uri!r} is in the storage emulator (AZURE_STORAGE_USE_EMULATOR=true), which the Power BI "
                "service cannot reach; point TWIN_LAKE at a storage account"
            )
        host = f"{account}.dfs.core.windows.net"
    else:
        raise SourceSettingsError(
            f"Power BI cannot read the lake {uri!r}: TWIN_POWERBI_SOURCE=adls needs TWIN_LAKE in an Azure storage "
            "account (abfss://<container>@<account>.dfs.core.windows.net/<path>, or az://<container>/<path> with "
            "AZURE_STORAGE_ACCOUNT), or set TWIN_POWERBI_SOURCE=databricks"
        )
    return f"https://{host}/{'/'.join(p for p in (container, path) if p)}"


def uc_table(catalog: str, schema: str, table: str) -> str:
    """The Unity Catalog name the model's Databricks branch reads for a gold table."""
    return f"{catalog}.{schema}.{table}"


def source_parameters(env: Mapping[str, str] | None = None, lake: str | None = None) -> dict[str, str]:
    """The model's source parameters the settings ask for (only the chosen source's)."""
    env = os.environ if env is None else env
    source = (env.get("TWIN_POWERBI_SOURCE") or "adls").strip().lower()
    if source not in SOURCES:
        raise SourceSettingsError(f"TWIN_POWERBI_SOURCE={source!r} is not a source; set adls or databricks:\n{_WHAT}")
    if source == "adls":
        root = lake if lake is not None else lake_root()
        if "://" not in root:
            raise SourceSettingsError(
                f"the lake is the folder {root} on this machine (TWIN_LAKE), which the Power BI service cannot "
                "read: set TWIN_LAKE=abfss://<container>@<account>.dfs.core.windows.net/<path> (the lake in Azure "
                "storage), or TWIN_POWERBI_SOURCE=databricks to read gold through a Databricks SQL warehouse"
            )
        return {"SourceKind": SOURCES[source], "AdlsRoot": dfs_url(root, env)}
    host = (env.get("DATABRICKS_HOST") or "").strip().removeprefix("https://").removeprefix("http://").rstrip("/")
    http_path = (env.get("DATABRICKS_SQL_HTTP_PATH") or "").strip()
    missing = [var for var, value in (("DATABRICKS_HOST", host), ("DATABRICKS_SQL_HTTP_PATH", http_path)) if not value]
    if missing:
        raise SourceSettingsError(
            f"TWIN_POWERBI_SOURCE=databricks needs {' and '.join(missing)} (the SQL warehouse's Connection "
            f"details: Server hostname and HTTP path):\n{_WHAT}"
        )
    return {
        "SourceKind": SOURCES[source],
        "DatabricksHost": host,
        "DatabricksHttpPath": http_path,
        "DatabricksCatalog": (env.get("TWIN_UC_CATALOG") or DEFAULT_CATALOG).strip(),
        "DatabricksSchema": (env.get("TWIN_UC_SCHEMA") or DEFAULT_SCHEMA).strip(),
    }


def changes(current: Mapping[str, str], wanted: Mapping[str, str]) -> dict[str, str]:
    """The wanted parameters whose published value differs; an error when the model lacks one."""
    absent = [name for name in wanted if name not in current]
    if absent:
        raise SourceSettingsError(
            f"the published model has no parameter {', '.join(absent)} "
            f"(it has {', '.join(sorted(current)) or 'none'}): "
            "publish powerbi/IndustrialTwin.SemanticModel from git again"
        )
    return {name: value for name, value in wanted.items() if current[name] != value}


@dataclass(frozen=True)
class Applied:
    """What setting the parameters did: the values sent, and those already right."""

    sent: dict[str, str]
    unchanged: dict[str, str]


def apply(api: SemanticModelApi, wanted: Mapping[str, str]) -> Applied:
    """Read the published parameters, send those that differ (none: no request)."""
    diff = changes(api.parameters(), wanted)
    if diff:
        api.update_parameters(diff)
    return Applied(diff, {k: v for k, v in wanted.items() if k not in diff})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m twin_pipeline.lib.integrations.powerbi_params",
        description="Print the IndustrialTwin semantic model's source parameters the settings ask for "
        f"(TWIN_POWERBI_SOURCE, TWIN_LAKE, ...), or set them on the published model.\n{_WHAT}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--apply",
        action="store_true",
        help="set those that differ on the published model (needs the POWERBI_* settings; the next refresh "
        "applies them)",
    )
    args = parser.parse_args(argv)
    try:
        wanted = source_parameters()
        if not args.apply:
            print(json.dumps(wanted, indent=2))
            return 0
        settings = powerbi_settings()
        if settings is None:
            raise SourceSettingsError("--apply needs the POWERBI_* settings (see .env.example)")
        token = service_principal_token(settings.tenant_id, settings.client_id, os.environ["POWERBI_CLIENT_SECRET"])
        done = apply(SemanticModelApi(token, settings.workspace_id, settings.semantic_model_id), wanted)
    except (ValueError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(json.dumps({"sent": done.sent, "unchanged": done.unchanged}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
