"""Compaction and vacuum of an edge table beside a running collector (Dagster's maintenance jobs).

Both go through the lake's lock files (`lock.py`): a compaction waits for any other one (delta-rs
1.6 lets two concurrent compactions of the same files both commit, duplicating every rewritten
row), and `vacuum(full=True)` is refused while a datalogger writes the lake (delta-rs #3645: it
can delete a just-written parquet file before the commit that names it lands).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from deltalake import DeltaTable

from ..schemas import edge_table_path
from .lock import LOCK_NAME, MAINTENANCE_LOCK_NAME, WriterLock, WriterLocked


class VacuumRefused(RuntimeError):
    """`vacuum(full=True)` would delete files an in-flight append is about to commit (delta-rs #3645)."""


def vacuum(
    lake: Path,
    table: str,
    *,
    retention_hours: int | None = None,
    full: bool = False,
    dry_run: bool = True,
    enforce_retention_duration: bool = True,
) -> list[str]:
    """Vacuum an edge table. `full=True` (removes every unreferenced file) is refused while a datalogger
    writes the lake, since it can delete a just-written parquet file before its commit lands (#3645)."""
    path = edge_table_path(lake, table)
    dt = DeltaTable(str(path))
    if not full:
        return dt.vacuum(retention_hours, dry_run=dry_run, enforce_retention_duration=enforce_retention_duration)
    lock = WriterLock(path.parent / LOCK_NAME)
    try:
        lock.acquire("full vacuum")
    except WriterLocked as exc:
        raise VacuumRefused(
            f"vacuum(full=True) of {path} refused while the collector writes it: stop the collector "
            "first, or run a normal vacuum"
        ) from exc
    try:
        return dt.vacuum(
            retention_hours, dry_run=dry_run, enforce_retention_duration=enforce_retention_duration, full=True
        )
    finally:
        lock.release()


def compact(lake: Path, table: str, *, wait_s: float = 300.0, **options: Any) -> dict[str, Any]:
    """Compact an edge table beside a running collector (e.g. from Dagster): serialised with the
    datalogger's own compaction through a lock file, on a fresh snapshot. delta-rs 1.6 lets two
    concurrent compactions of the same files both commit, which duplicates every row they rewrote."""
    lock = WriterLock(edge_table_path(lake, table).parent / MAINTENANCE_LOCK_NAME)
    lock.acquire(f"compaction of {table}", wait_s=wait_s)
    try:
        return DeltaTable(str(edge_table_path(lake, table))).optimize.compact(**options)
    finally:
        lock.release()
