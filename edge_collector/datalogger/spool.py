"""The append-only spool: each batch durable on local disk before it goes to Delta.

A batch is written as one Arrow IPC file (temp name, fsync, rename, fsync the directory); that
moment is the acknowledgement: it survives `kill -9` and is replayed on the next start. Its
version, monotonic per table across restarts, names the file and is the Delta app transaction
version it is committed as. The writer deletes it only after the commit is fsync'd.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from ..lake import fsync_dir

log = logging.getLogger("edge_collector.datalogger")

SPOOL_SUFFIX = ".arrow"


@dataclass
class SpoolFile:
    """A batch durable in the spool, not yet known to be committed."""

    table: str
    app_id: str
    version: int
    rows: int
    path: Path
    replayed: bool = False  # spooled by an earlier run (found at start)


def _spool_name(version: int) -> str:
    return f"{version:012d}{SPOOL_SUFFIX}"


def write_spool(directory: Path, table: str, app_id: str, version: int, data: pa.Table) -> SpoolFile:
    """Durably write one batch: temp name, fsync, rename, fsync the directory. Returns once it survives a crash."""
    path = directory / _spool_name(version)
    tmp = directory / (path.name + ".tmp")
    meta = {b"app_id": app_id.encode(), b"version": str(version).encode(), b"rows": str(data.num_rows).encode()}
    data = data.replace_schema_metadata(meta)
    with open(tmp, "wb") as f:
        with pa.ipc.new_file(f, data.schema) as writer:
            writer.write_table(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(directory)
    return SpoolFile(table, app_id, version, data.num_rows, path)


def read_spool(path: Path) -> pa.Table:
    with pa.OSFile(str(path), "rb") as f:
        data = pa.ipc.open_file(f).read_all()
    return data.replace_schema_metadata(None)


def scan_spool(directory: Path, table: str, default_app_id: str) -> tuple[list[SpoolFile], int, list[Path]]:
    """Spool files of a table in version order; partial temp files are removed, unreadable ones returned."""
    files: list[SpoolFile] = []
    corrupt: list[Path] = []
    removed = 0
    for entry in directory.iterdir():
        if entry.name.endswith(".tmp"):
            entry.unlink(missing_ok=True)
            removed += 1
            continue
        if not entry.name.endswith(SPOOL_SUFFIX):
            continue
        try:
            version = int(entry.name[: -len(SPOOL_SUFFIX)])
            with pa.OSFile(str(entry), "rb") as f:
                reader = pa.ipc.open_file(f)
                meta = reader.schema.metadata or {}
                rows = (
                    int(meta[b"rows"])
                    if b"rows" in meta
                    else sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
                )
            app_id = meta.get(b"app_id", default_app_id.encode()).decode()
        except (ValueError, OSError, pa.ArrowException) as exc:
            log.error(
                "spool file %s is unreadable (%s); moved aside to %s/corrupt for inspection", entry, exc, directory
            )
            corrupt.append(entry)
            continue
        files.append(SpoolFile(table, app_id, version, rows, entry, replayed=True))
    files.sort(key=lambda s: s.version)
    return files, removed, corrupt
