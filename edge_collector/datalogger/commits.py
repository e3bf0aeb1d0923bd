"""Delta commits of the datalogger's spooled batches, on the writer thread (see `writer.py`).

Each batch is one Delta app transaction (app id = collector id, version = batch version), compared
with `transaction_version(app_id)` before every (re)try, so a batch committed before a crash or an
"error despite success" is never written twice; a backlog is coalesced into commits of at most
`max_batch_rows` rows. A failed commit keeps the spool, says what to do and is retried with capped
backoff. Checkpoints, and compaction (every `compact_every_commits` commits and every
`compact_every_s`, under the lock `lake.compact()` takes too: delta-rs 1.6.6 lets two concurrent
compactions both commit, duplicating rows) run between commits; their failures never stop ingest.
"""

from __future__ import annotations

import errno
import logging
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
from deltalake import DeltaTable
from deltalake.exceptions import SchemaMismatchError

from ..crash_point import crash_point
from ..lake import WriterLock, WriterLocked, append_once, fsync_commit, fsync_dir, fsync_file, open_or_create
from .reports import DataloggerHooks, DataloggerStats
from .spool import SpoolFile, read_spool

log = logging.getLogger("edge_collector.datalogger")

MAX_BACKOFF_S = 30.0
FIRST_BACKOFF_S = 0.5


def advice(table_path: Path, exc: BaseException) -> str:
    """What the operator should do about a failed open or commit of the table at `table_path`."""
    text = str(exc)
    if isinstance(exc, SchemaMismatchError) or "schema" in text.lower():
        return (
            f"the table at {table_path} does not have the edge schema of edge_collector/schemas.py: move it "
            "aside (the datalogger recreates it) or migrate it"
        )
    if (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space" in text:
        return f"free disk space on the filesystem of {table_path}"
    return f"check free disk space and permissions of {table_path}"


@dataclass
class Batch:
    """Built and versioned, not yet durable in the spool."""

    version: int
    data: pa.Table


@dataclass
class TableState:
    """One edge table on the writer thread: its batch versions, spool and Delta state."""

    path: Path
    spool_dir: Path
    dt: DeltaTable | None = None
    next_version: int = 1
    committed: int = 0  # every batch version <= this is in Delta
    unspooled: deque[Batch] = field(default_factory=deque)
    pending: deque[SpoolFile] = field(default_factory=deque)
    retry_at: float = 0.0
    backoff: float = FIRST_BACKOFF_S
    checkpoint_version: int = 0
    commits_since_compaction: int = 0
    last_spool_error: float = 0.0


class DeltaCommitter:
    """Commits spooled batches and maintains the tables (see the module docstring)."""

    def __init__(
        self,
        stats: DataloggerStats,
        hooks: DataloggerHooks,
        maintenance_lock: WriterLock,
        *,
        max_batch_rows: int,
        checkpoint_every_commits: int,
        compact_every_commits: int,
        compact_every_s: float,
    ) -> None:
        self.stats = stats
        self.hooks = hooks
        self._maintenance_lock = maintenance_lock
        self.max_batch_rows = max_batch_rows
        self.checkpoint_every_commits = checkpoint_every_commits
        self.compact_every_commits = compact_every_commits
        self.compact_every_s = compact_every_s
        self.next_compaction = 0.0

    def commit_pending(self, table: str, st: TableState) -> None:
        """Commit spooled batches in order, coalescing a backlog into commits of <= max_batch_rows rows."""
        while st.pending:
            group = [st.pending[0]]
            rows = group[0].rows
            for f in list(st.pending)[1:]:
                if f.app_id != group[0].app_id or rows + f.rows > self.max_batch_rows:
                    break
                group.append(f)
                rows += f.rows
            try:
                self._commit_group(table, st, group)
            except Exception as exc:  # noqa: BLE001 - keep the spool, say what to do, retry with backoff
                self._commit_failed(table, st, group, exc)
                return
            for f in group:
                st.pending.popleft()
                try:
                    f.path.unlink()
                except FileNotFoundError:
                    pass
            self.stats.spool_files_pending -= len(group)
            st.committed = max(st.committed, group[-1].version)
            st.backoff = FIRST_BACKOFF_S
            st.retry_at = 0.0

    def _commit_group(self, table: str, st: TableState, group: list[SpoolFile]) -> None:
        if st.dt is None:
            st.dt = open_or_create(st.path, table, self.checkpoint_every_commits)
        app_id = group[0].app_id
        current = st.dt.transaction_version(app_id) or 0
        todo = [f for f in group if f.version > current]
        if len(todo) < len(group):
            self._skipped(table, [f for f in group if f.version <= current], current)
        if not todo:
            return
        data = pa.concat_tables([read_spool(f.path) for f in todo]) if len(todo) > 1 else read_spool(todo[0].path)
        version = todo[-1].version
        if self.hooks.before_commit is not None:
            self.hooks.before_commit(table, version)
        crash_point("commit-begin")
        started = time.perf_counter()
        written = append_once(st.dt, data, app_id, version)
        crash_point("commit-written")
        if written:
            fsync_commit(st.path, st.dt.version())
        latency = time.perf_counter() - started
        crash_point("commit-durable")
        if self.hooks.after_commit is not None:
            self.hooks.after_commit(table, version)
        if not written:
            self._skipped(table, todo, st.dt.transaction_version(app_id) or version)
            return
        s = self.stats
        s.commits += 1
        s.rows_committed += data.num_rows
        s.last_commit_latency_s = latency
        s.commit_latencies.append(latency)
        s.last_version[table] = st.dt.version()
        st.commits_since_compaction += 1
        if st.commits_since_compaction >= self.compact_every_commits:
            self._compact(table, st)  # each append costs more as the snapshot's file count grows
        self._maybe_checkpoint(table, st)

    def _skipped(self, table: str, files: list[SpoolFile], current: int) -> None:
        """Batches already in Delta (their commit landed before a crash or an error): never written twice."""
        self.stats.batches_skipped += len(files)
        self.stats.rows_committed += sum(f.rows for f in files if not f.replayed)  # committed by this run
        log.info(
            "%s: %d spooled batches (<= version %d of %s) are already committed; not writing them again",
            table,
            len(files),
            current,
            files[0].app_id,
        )

    def _commit_failed(self, table: str, st: TableState, group: list[SpoolFile], exc: Exception) -> None:
        self.stats.errors += 1
        delay = st.backoff
        st.backoff = min(st.backoff * 2, MAX_BACKOFF_S)
        st.retry_at = time.monotonic() + delay
        log.error(
            "commit of %s batches %d..%d (%d rows) failed: %r; they stay in the spool (%s) and are retried in "
            "%.1f s: %s",
            table,
            group[0].version,
            group[-1].version,
            sum(f.rows for f in group),
            exc,
            st.spool_dir,
            delay,
            advice(st.path, exc),
            extra={"table": table},
        )
        try:  # the commit may have landed anyway ("error despite success"): reload before the retry compares
            st.dt = open_or_create(st.path, table, self.checkpoint_every_commits)
        except Exception as reopen:  # noqa: BLE001 - any failure to reopen is logged; the next commit retries it
            st.dt = None
            log.error("cannot reopen %s: %r", st.path, reopen)

    def _maybe_checkpoint(self, table: str, st: TableState) -> None:
        if st.dt is None or st.dt.version() - st.checkpoint_version < self.checkpoint_every_commits:
            return
        try:
            st.dt.create_checkpoint()
            version = st.dt.version()
            log_dir = st.path / "_delta_log"
            for file in [*log_dir.glob(f"{version:020d}.checkpoint*.parquet"), log_dir / "_last_checkpoint"]:
                fsync_file(file)
            fsync_dir(log_dir)
            st.checkpoint_version = version
            self.stats.checkpoints += 1
        except Exception as exc:  # noqa: BLE001 - a missing checkpoint only slows readers down
            self.stats.errors += 1
            st.checkpoint_version = st.dt.version()  # do not retry on every commit
            log.error("checkpoint of %s failed: %r; readers replay more JSON commits until the next one", st.path, exc)

    def maintain(self, tables: dict[str, TableState], now: float) -> None:
        """Compaction and log clean-up on their cadence, between commits (ingest keeps buffering meanwhile)."""
        if now < self.next_compaction:
            return
        self.next_compaction = now + self.compact_every_s
        for table, st in tables.items():
            if st.dt is not None and st.commits_since_compaction:
                self._compact(table, st)
                self._maybe_checkpoint(table, st)

    def _compact(self, table: str, st: TableState) -> None:
        """Bin-pack small files: readers open fewer files and appends stay fast (their cost grows with
        the number of files in the snapshot). Failures never stop ingest."""
        assert st.dt is not None  # noqa: S101 - an invariant, stated for the type checker
        try:  # never beside another compaction (see compact()); skipped now, tried again later
            self._maintenance_lock.acquire("compaction")
        except WriterLocked:
            log.info("compaction of %s skipped: another process is compacting it", table)
            return
        st.commits_since_compaction = 0
        try:
            st.dt.update_incremental()  # compact what is live now, not what our snapshot remembers
            before = st.dt.version()
            metrics = st.dt.optimize.compact()
            if st.dt.version() != before:
                fsync_commit(st.path, st.dt.version())
                self.stats.compactions += 1
                self.stats.last_version[table] = st.dt.version()
                log.info(
                    "compacted %s: %s files into %s",
                    table,
                    metrics.get("numFilesRemoved"),
                    metrics.get("numFilesAdded"),
                )
            st.dt.cleanup_metadata()  # drop JSON commits older than LOG_RETENTION behind a checkpoint
        except Exception as exc:  # noqa: BLE001 - maintenance failures never stop ingest
            self.stats.errors += 1
            log.error("compaction of %s failed: %r; ingest continues, it is retried later", st.path, exc)
            try:
                st.dt = open_or_create(st.path, table, self.checkpoint_every_commits)
            except Exception:  # noqa: BLE001 - the table stays closed; the next commit reopens it
                st.dt = None
        finally:
            self._maintenance_lock.release()
