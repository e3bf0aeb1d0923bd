"""Landing an object in Azure Blob Storage (the raw zone, `lib/raw_zone.py`: one Parquet object per edge
table, shift and edge), uploaded so that it is either wholly there, verified, or not there at all.

Why files through the Blob API rather than Delta on `az://`: the landing zone is the hand-over from
an edge box over a link that drops. A block blob becomes visible only when its block list is
committed, so a cut mid-upload leaves no partial object (or leaves the previous version); the
bytes are checked per block in transit (`validate_content`, MD5) and the committed object against
its size and the SHA-256 kept in its metadata; the name is fixed per (table, shift, edge)
(`raw_zone.object_name`), so a re-run replaces the slice and a retry after a lost response finds the
same hash and stops. It also works on Azurite (which has no DFS endpoint) and on
hierarchical-namespace accounts, and Spark reads a table's folder as a dataset partitioned by `shift_id` and `edge_id`.

The Azure SDK is imported where it is used: it comes with the `cloud` extra, which the local profile
(`make run`) does not install, and the code location imports this module in every profile.

Retries are ours, not the SDK's (the SDK's default waits 15 s, then 18 s, 24 s ...: too slow to
notice a link that is back, and unbounded in total): `attempts` tries, exponential backoff with full
jitter capped at `backoff_cap_s`, suited to an edge link.
"""

from __future__ import annotations

import hashlib
import io
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient, ContainerClient

SHA256_KEY = "sha256"


class LandingError(RuntimeError):
    """The shift could not be landed (the message says why and what to do)."""


@dataclass(frozen=True)
class Landed:
    blob: str
    size: int
    sha256: str
    uploaded: bool  # False: the identical object was already there (a retry or a re-run with equal data)
    attempts: int


def parquet_bytes(frame: pl.DataFrame) -> bytes:
    """The frame as Parquet bytes (the same frame gives the same bytes, so equal re-runs are no-ops)."""
    buffer = io.BytesIO()
    frame.write_parquet(buffer, compression="zstd", statistics=True)
    return buffer.getvalue()


def client_for(
    account_url: str, credential: Any, *, block_size: int = 4 << 20, timeout_s: int = 60
) -> BlobServiceClient:
    """A Blob client that leaves retrying to `land` (SDK retries off) and uploads in blocks of `block_size`."""
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient(
        account_url,
        credential=credential,
        retry_total=0,
        max_single_put_size=block_size,
        max_block_size=block_size,
        connection_timeout=timeout_s,
        read_timeout=timeout_s,
    )


def _landed_already(container: ContainerClient, name: str, size: int, digest: str) -> bool:
    from azure.core.exceptions import ResourceNotFoundError

    try:
        props = container.get_blob_client(name).get_blob_properties()
    except ResourceNotFoundError:
        return False
    return props.size == size and (props.metadata or {}).get(SHA256_KEY) == digest


def land(
    container: ContainerClient,
    name: str,
    data: bytes,
    *,
    attempts: int = 6,
    backoff_s: float = 1.0,
    backoff_cap_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
) -> Landed:
    """Upload `data` as blob `name` (replacing it), verified; idempotent and retried with capped backoff."""
    from azure.core.exceptions import AzureError
    from azure.storage.blob import ContentSettings

    digest = hashlib.sha256(data).hexdigest()
    md5 = hashlib.md5(data).digest()  # noqa: S324 - Azure's Content-MD5, not a security use
    last: Exception | None = None
    for attempt in range(1, attempts + 1):
        try:
            if _landed_already(container, name, len(data), digest):
                return Landed(name, len(data), digest, uploaded=False, attempts=attempt)
            container.get_blob_client(name).upload_blob(
                data,
                overwrite=True,
                metadata={SHA256_KEY: digest},
                validate_content=True,
                max_concurrency=1,
                content_settings=ContentSettings(
                    content_type="application/vnd.apache.parquet", content_md5=bytearray(md5)
                ),
            )
            if not _landed_already(container, name, len(data), digest):
                raise LandingError(f"{name}: the committed blob does not match the local bytes (size or SHA-256)")
            return Landed(name, len(data), digest, uploaded=True, attempts=attempt)
        except (AzureError, LandingError) as exc:
            last = exc
            if attempt < attempts:
                sleep(random.uniform(0, min(backoff_cap_s, backoff_s * 2 ** (attempt - 1))))  # noqa: S311 - jitter, not crypto
    raise LandingError(
        f"could not land {name} in container {container.container_name!r} after {attempts} attempts "
        f"({type(last).__name__}: {last}); check the storage account URL, credentials and the link, "
        "then re-run the shift: a re-run replaces it"
    ) from last
