"""Listing the raw zone's objects in Blob Storage, for `edge_source.RawZone`.

Why the Blob API and not polars' globbing: a glob that matches nothing is an error in polars, and the
raw zone asks per shift which edges landed it (a shift no edge landed is a normal answer: empty). The
listing also gives each object's ETag, so the run's read cache sees a re-landed shift as new data.
Works on Azurite (which has no DFS endpoint) as on ADLS Gen2. The Azure SDK comes with the `cloud` extra.
"""

from __future__ import annotations

import os
from typing import Any

from twin_pipeline.lib.edge_source import Lister
from twin_pipeline.lib.location import Location


def container_and_prefix(root: Location) -> tuple[str, str, str]:
    """(account host or "", container, prefix) of `az://<container>/<prefix>` or
    `abfss://<container>@<account>.dfs.core.windows.net/<prefix>`."""
    _scheme, rest = root.uri.split("://", 1)
    head, _, prefix = rest.partition("/")
    if "@" in head:
        container, host = head.split("@", 1)
    else:
        container, host = head, ""
    if not container:
        raise ValueError(f"{root.uri}: no container in the URI; e.g. az://landing or abfss://landing@<account>...")
    return host, container, prefix.strip("/")


def account_url(host: str) -> str:
    """The Blob endpoint: `AZURE_STORAGE_ACCOUNT_URL` (the profile's; Azurite's), else from the URI's host."""
    if url := os.environ.get("AZURE_STORAGE_ACCOUNT_URL"):
        return url
    if host:
        return f"https://{host.split('.', 1)[0]}.blob.core.windows.net"
    raise ValueError(
        "set AZURE_STORAGE_ACCOUNT_URL (e.g. https://<account>.blob.core.windows.net) to read the raw zone"
    )


def credential() -> Any:
    """The profile's credential: account key, SAS token, or else the DefaultAzureCredential chain."""
    env = os.environ.get
    if env("AZURE_STORAGE_KEY"):
        return {"account_name": env("AZURE_STORAGE_ACCOUNT", ""), "account_key": env("AZURE_STORAGE_KEY", "")}
    if env("AZURE_STORAGE_SAS_TOKEN"):
        return env("AZURE_STORAGE_SAS_TOKEN")
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


def blob_lister(root: Location) -> Lister:
    """A `Lister` of the objects under `root` (names relative to it) through the Blob API."""
    host, container_name, base = container_and_prefix(root)

    def listing(prefix: str) -> list[tuple[str, int, str]]:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob import BlobServiceClient

        container = BlobServiceClient(account_url(host), credential=credential()).get_container_client(container_name)
        start = f"{base}/{prefix}" if base else prefix
        try:
            blobs = list(container.list_blobs(name_starts_with=start))
        except ResourceNotFoundError:
            return []
        cut = len(base) + 1 if base else 0
        return sorted((b.name[cut:], int(b.size), str(b.etag)) for b in blobs if b.name.endswith(".parquet"))

    return listing
