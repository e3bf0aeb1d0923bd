"""Compaction, vacuum and retention pruning of the edge tables beside a running collector (Dagster's
maintenance jobs, the collector's periodic maintenance, `edge-collector prune`).

Both go through the lake's lock files (`lock.py`): a compaction waits for any other one (delta-rs
1.6 lets two concurrent compactions of the same files both commit, duplicating every rewritten
row), and `vacuum(full=True)` is refused while a datalogger writes the lake (delta-rs #3645: it
can delete a just-written parquet file before the commit that names it lands). Pruning takes the
compaction lock: a compaction rewriting a day's files while the day is deleted would conflict.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from deltalake import DeltaTable

from .. import receipts, retention
from ..schemas import edge_table_path
from .delta import fsync_dir, fsync_file
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


log = logging.getLogger("edge_collector.retention")


@dataclass
class PruneReport:
    """What one pruning pass did (and, with `dry_run`, would do)."""

    plan: retention.Plan
    dry_run: bool
    days_pruned: int = 0
    rows_pruned: int = 0
    bytes_pruned: int = 0
    files_deleted: int = 0
    lines: list[str] = field(default_factory=list)

    @property
    def days_kept_unlanded(self) -> int:
        return len(self.plan.kept_unlanded)


def _free(table_path: Path, days: list[str], started: float) -> int:
    """Delete the pruned days' data files now, not after the tombstone retention (nothing on the edge box
    needs time travel to a landed day): each file of a `day=` folder that the table no longer names and
    that is older than this pass (a file an in-flight append is writing is newer: delta-rs #3645)."""
    live = {Path(unquote(f.removeprefix("file://"))).resolve() for f in DeltaTable(str(table_path)).file_uris()}
    deleted = 0
    for day in days:
        folder = table_path / f"day={day}"
        for file in folder.glob("*") if folder.is_dir() else []:
            if file.resolve() in live or file.stat().st_mtime >= started - 1:
                continue
            file.unlink(missing_ok=True)
            deleted += 1
        try:
            folder.rmdir()  # once empty
        except OSError:
            pass
    return deleted


def _add_pruned(lake: Path, days: dict[str, dict[str, object]]) -> None:
    """Record pruned days durably (temp file, fsync, rename, fsync dir), before their files go."""
    edge = lake / "edge"
    merged = {**receipts.pruned_days(lake), **days}
    tmp = edge / f".{receipts.PRUNED_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps({"days": dict(sorted(merged.items()))}, indent=1))
    fsync_file(tmp)
    os.replace(tmp, edge / receipts.PRUNED_FILE)
    fsync_dir(edge)


def prune(
    lake: Path, retention_days: int, *, now: datetime | None = None, dry_run: bool = False, wait_s: float = 300.0
) -> PruneReport:
    """Delete the UTC days older than `retention_days` that landing receipts wholly cover
    (`edge_collector/retention.py` says when), under the compaction lock. A day that is not landed
    stays, and the reason is logged."""
    started = time.time()
    lock = WriterLock(lake / "edge" / MAINTENANCE_LOCK_NAME)
    lock.acquire("retention pruning", wait_s=wait_s)
    try:
        plan = retention.plan(lake, retention_days, now)
        report = PruneReport(plan, dry_run, lines=retention.describe(plan.days))
        for day in plan.kept_unlanded:
            log.warning("retention keeps %s: %s", day.day, "; ".join(sorted(set(day.kept.values()))))
        todo = [d for d in plan.days if d.pruned]
        if dry_run or not todo:
            return report
        stamp = datetime.now(UTC).isoformat()
        # recorded first: from now on no landing replaces these days' objects with a partial slice
        _add_pruned(
            lake, {d.day: {"tables": d.tables, "rows": d.rows, "bytes": d.bytes, "pruned_at": stamp} for d in todo}
        )
        for table in retention.PRUNED_TABLES:
            days = [d.day for d in todo if table in d.tables]
            if not days:
                continue
            path = edge_table_path(lake, table)
            dt = DeltaTable(str(path))
            dt.delete(" OR ".join(f"day = '{day}'" for day in days))
            report.files_deleted += _free(path, days, started)
        for day in todo:
            report.days_pruned += 1
            report.rows_pruned += day.rows
            report.bytes_pruned += day.bytes
            log.info(
                "retention pruned %s: %s (%d rows, %d bytes)%s",
                day.day,
                ", ".join(day.tables),
                day.rows,
                day.bytes,
                "".join(f"; kept {t}: {why}" for t, why in day.kept.items()),
            )
        return report
    finally:
        lock.release()
