"""Exactly-once, durable appends to an edge Delta table, shared by the datalogger and the history
seeder (and `last_checkpoint_version` by the pipeline).

- `append_once`: a batch is a Delta app transaction (`txn` action: app id, version). delta-rs
  records it but does not reject a stale version, so we compare with `transaction_version(app_id)`
  first: a batch committed before a crash is never written twice.
- `fsync_commit`: a commit and the data files it adds are fsync'd before the caller deletes its
  spool copy, so a power loss cannot lose an acknowledged batch.
- `open_or_create`: the edge table, created plain (no deletion vectors, no clustering) with the
  checkpoint interval and log retention the datalogger relies on.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote

import pyarrow as pa
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Transaction, write_deltalake

from ..schemas import PARTITION_BY, TABLES

#: How long Delta keeps JSON commits before a checkpoint lets them go (about 86,400 a day at 1 s).
LOG_RETENTION = "interval 7 days"


def append_once(dt: DeltaTable, data: pa.Table, app_id: str, version: int) -> bool:
    """Append `data` as batch `version` of `app_id` unless the table already holds it. True if written.

    delta-rs records the `txn` action but does not reject a stale version, so compare first. A
    concurrent writer committing the same app id makes this raise CommitFailedError instead."""
    current = dt.transaction_version(app_id)
    if current is not None and current >= version:
        return False
    write_deltalake(
        dt,
        data,
        mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id, version, int(time.time() * 1000))]),
        post_commithook_properties=PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False),
    )
    return True


def fsync_dir(directory: Path, fsync: Callable[[int], None] = os.fsync) -> None:
    """Make a rename or unlink in `directory` durable (a no-op on Windows, which cannot open directories)."""
    if os.name == "nt":
        return
    fd = os.open(directory, os.O_RDONLY)
    try:
        fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_commit(table_path: Path, version: int) -> None:
    """Make commit `version` and the data files it adds durable, so deleting the spool is safe on power loss."""
    log_dir = table_path / "_delta_log"
    commit = log_dir / f"{version:020d}.json"
    dirs = {log_dir, table_path}
    files = [commit]
    for line in commit.read_text().splitlines():
        add = json.loads(line).get("add") if line else None
        if add:
            file = table_path / unquote(add["path"])
            files.append(file)
            dirs.add(file.parent)
    for file in files:
        fsync_file(file)
    for directory in dirs:
        fsync_dir(directory)


def last_checkpoint_version(table_path: Path) -> int:
    try:
        return int(json.loads((table_path / "_delta_log" / "_last_checkpoint").read_text())["version"])
    except (OSError, ValueError, KeyError):
        return 0


def open_or_create(table_path: Path, table: str, checkpoint_interval: int) -> DeltaTable:
    """The edge table at `table_path`; created (plain Delta: no deletion vectors, no clustering) if missing."""
    if DeltaTable.is_deltatable(str(table_path)):
        return DeltaTable(str(table_path))
    table_path.mkdir(parents=True, exist_ok=True)
    return DeltaTable.create(
        str(table_path),
        TABLES[table],
        mode="ignore",
        partition_by=PARTITION_BY,
        name=table,
        configuration={
            "delta.checkpointInterval": str(checkpoint_interval),
            "delta.logRetentionDuration": LOG_RETENTION,
        },
    )
