"""Where a lake table lives: a local folder or a folder in an object store (ADLS Gen2, Blob, Azurite).

Why one type: every Delta read and write of the pipeline goes to `TWIN_LAKE`, which is a local folder
by default and an `abfss://` or `az://` URI in the cloud. delta-rs and polars both take such URIs; what
differs is how they authenticate and what a local folder allows besides (listing a log, writing files
ourselves). This module is the one place that knows the difference.

Credentials come from the environment only: the profile's own settings (`AZURE_STORAGE_ACCOUNT` with
`AZURE_STORAGE_KEY` or `AZURE_STORAGE_SAS_TOKEN`) are handed to delta-rs and polars as storage options;
without them, object_store's standard variables apply (`AZURE_STORAGE_ACCOUNT_NAME`,
`AZURE_STORAGE_ACCOUNT_KEY`, `AZURE_CLIENT_ID`/`AZURE_CLIENT_SECRET`/`AZURE_TENANT_ID` for Entra ID,
`AZURE_USE_AZURE_CLI`, and `AZURE_STORAGE_USE_EMULATOR` with `AZURITE_BLOB_STORAGE_URL` for Azurite).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

SCHEMES = ("abfss", "abfs", "az", "adl", "azure")


@dataclass(frozen=True)
class Location:
    """A folder of the lake, local (an absolute path) or remote (`scheme://...`)."""

    uri: str

    @classmethod
    def of(cls, root: str | Path | Location) -> Location:
        if isinstance(root, Location):
            return root
        text = str(root)
        if "://" in text and not text.startswith("file://"):
            scheme = text.split("://", 1)[0].lower()
            if scheme not in SCHEMES:
                raise ValueError(
                    f"{text!r}: the lake must be a local folder or an Azure URI "
                    f"({', '.join(s + '://' for s in SCHEMES)}), e.g. abfss://lake@<account>.dfs.core.windows.net/twin"
                )
            return cls(text.rstrip("/"))
        return cls(str(Path(text.removeprefix("file://")).resolve()))

    @property
    def is_local(self) -> bool:
        return "://" not in self.uri

    @property
    def local(self) -> Path:
        """The folder on this machine (only for a local location)."""
        if not self.is_local:
            raise ValueError(f"{self.uri} is not on this machine")
        return Path(self.uri)

    @property
    def name(self) -> str:
        return self.uri.rstrip("/").rsplit("/", 1)[-1]

    @property
    def parent(self) -> Location:
        return Location(self.uri.rstrip("/").rsplit("/", 1)[0])

    def __truediv__(self, part: str) -> Location:
        return Location(f"{self.uri.rstrip('/')}/{part.strip('/')}")

    def __str__(self) -> str:
        return self.uri


def storage_options(location: Location) -> dict[str, str] | None:
    """delta-rs / object_store options for a remote location (None for a local one): the profile's Azure
    account settings when given; otherwise object_store reads its own environment."""
    if location.is_local:
        return None
    env = os.environ.get
    options: dict[str, str] = {}
    if account := env("AZURE_STORAGE_ACCOUNT") or account_of(env("AZURE_STORAGE_ACCOUNT_URL", "")):
        options["account_name"] = account
    if env("AZURE_STORAGE_KEY"):
        options["account_key"] = env("AZURE_STORAGE_KEY", "")
    elif env("AZURE_STORAGE_SAS_TOKEN"):
        options["sas_token"] = env("AZURE_STORAGE_SAS_TOKEN", "").lstrip("?")
    return options


def account_of(url: str) -> str:
    """The account name in a Blob endpoint: `https://<account>.blob.core.windows.net`, or Azurite's
    `http://127.0.0.1:<port>/<account>`."""
    if not url:
        return ""
    parsed = urlparse(url)
    host = parsed.hostname or ""
    if host in ("127.0.0.1", "localhost"):
        return parsed.path.strip("/").split("/")[0]
    return host.split(".")[0] if ".blob." in host or ".dfs." in host else ""


def polars_options(location: Location) -> dict[str, Any]:
    """Keyword arguments for polars' readers and writers: the same options, and object_store's own
    credential chain rather than polars' default (which asks the Azure SDK for a token and fails on a
    shared key or Azurite)."""
    if location.is_local:
        return {}
    return {"storage_options": storage_options(location), "credential_provider": None}


def delta_options(location: Location) -> dict[str, Any]:
    """Keyword arguments for `DeltaTable` / `write_deltalake`."""
    options = storage_options(location)
    return {"storage_options": options} if options is not None else {}
