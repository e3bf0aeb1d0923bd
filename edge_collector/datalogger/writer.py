"""The Datalogger: the collector's durable rolling Delta writer, rows in, exactly-once Delta appends out.

Why it is shaped like this (RELIABILITY.md D1-D6, R5):
- `add()` runs on the asyncio loop for every row, so it only appends to a bounded in-memory
  buffer. Past `max_buffer_rows` rows are dropped, counted exactly and logged (never silently).
- One writer thread does everything else, so the loop never waits on disk: it takes the buffers
  every `flush_interval_s` (or as soon as a table holds `max_batch_rows`), validates rows against
  the schema (rows that do not fit go to `quarantine` with a reason), writes each batch to an
  append-only spool (Arrow IPC, temp name, fsync, rename, fsync dir). That moment is the
  acknowledgement: a spooled batch survives `kill -9` and is replayed on the next start.
- Each spooled batch has a version, monotonic per table across restarts. It is committed as a
  Delta app transaction (`txn` action: app id = collector id, version = batch version). delta-rs
  does not skip stale versions itself, so before every (re)try we compare with
  `transaction_version(app_id)`: a batch that was committed before a crash is never written twice.
- Spool files are deleted only after the commit (and the files it names) are fsync'd.
- Checkpoints and compaction run between commits on the writer thread (one DeltaTable object per
  table, kept open: reopening per write slows down as the log grows); ingest keeps buffering.
  Compaction is also due every `compact_every_commits` commits: an append's cost grows with the
  number of files in the snapshot. It holds a lock file that `lake.compact()` (for Dagster) takes
  too: delta-rs 1.6.6 lets two concurrent compactions both commit, duplicating every rewritten row.
  `lake.vacuum(full=True)` is refused while the writer lock is held (delta-rs #3645).
- Delta errors never stop the collector: the batch stays spooled, an ERROR says what to do, and the
  commit is retried with capped backoff.

This module buffers, builds, spools and hands over; the Delta commits, checkpoints and compaction
are `commits.py`. Rows -> Arrow and quarantine rows are `rows.py`, the spool files `spool.py`, the
counters and reports `reports.py`, the filesystem probe `preflight.py`; the Delta appends, fsyncs and
locks are `edge_collector/lake/`, shared with the history seeder and the pipeline.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa

from ..lake import (
    LOCK_NAME,
    MAINTENANCE_LOCK_NAME,
    WriterLock,
    fsync_dir,
    last_checkpoint_version,
    open_or_create,
)
from ..schemas import TABLES, edge_table_path
from . import preflight
from .commits import Batch, DeltaCommitter, TableState, advice
from .reports import Acknowledged, DataloggerHooks, DataloggerStats, RecoveryReport
from .rows import Rejected, build_batch, last_resort_row, quarantine_row
from .spool import scan_spool, write_spool

log = logging.getLogger("edge_collector.datalogger")

DROP_LOG_EVERY_S = 10.0


_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class Datalogger:
    """Durable, exactly-once, rolling Delta appends of the edge tables (see the module docstring)."""

    def __init__(
        self,
        lake: Path,
        spool: Path,
        collector_id: str,
        *,
        flush_interval_s: float = 1.0,
        max_batch_rows: int = 50_000,
        max_buffer_rows: int = 2_000_000,
        compact_every_s: float = 600.0,
        checkpoint_every_commits: int = 50,
        tables: Iterable[str] = TABLES,
        compact_every_commits: int = 200,
        on_acknowledged: Callable[[Acknowledged], None] | None = None,
        hooks: DataloggerHooks | None = None,
        fs_ops: preflight.FsOps = preflight.DEFAULT_OPS,
        close_timeout_s: float = 60.0,
    ) -> None:
        self.lake = Path(lake)
        self.spool = Path(spool)
        self.collector_id = collector_id
        self.app_id = f"edge-collector:{collector_id}"
        self.tables = tuple(tables)
        self._table_set = frozenset(self.tables)
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ValueError(f"unknown edge tables {unknown}; known: {sorted(TABLES)}")
        if (
            flush_interval_s <= 0
            or min(max_batch_rows, max_buffer_rows, checkpoint_every_commits, compact_every_commits) < 1
        ):
            raise ValueError(
                "flush_interval_s must be > 0; max_batch_rows, max_buffer_rows, "
                "checkpoint_every_commits and compact_every_commits must be >= 1"
            )
        self.flush_interval_s = flush_interval_s
        self.max_batch_rows = max_batch_rows
        self.max_buffer_rows = max_buffer_rows
        self.compact_every_s = compact_every_s
        self.checkpoint_every_commits = checkpoint_every_commits
        self.compact_every_commits = compact_every_commits
        self.on_acknowledged = on_acknowledged
        self.hooks = hooks or DataloggerHooks()
        self.fs_ops = fs_ops
        self.close_timeout_s = close_timeout_s
        self.stats = DataloggerStats()
        # shared with the event loop, under _lock
        self._lock = threading.Lock()
        self._buffers: dict[str, list[Mapping[str, Any]]] = {t: [] for t in self.tables}
        self._buffered = 0  # added, not yet spooled (includes rows the writer is building)
        self._waiters: list[_Waiter] = []
        self._state = "new"  # new -> running -> closing -> closed
        self._wake = threading.Event()
        self._last_drop_log = float("-inf")
        # writer thread only
        self._t: dict[str, TableState] = {}
        self._targets: list[tuple[dict[str, int], list[_Waiter]]] = []
        self._close_deadline = float("inf")
        self._warned_columns: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._locks = [WriterLock(self.lake / "edge" / LOCK_NAME), WriterLock(self.spool / LOCK_NAME)]
        self._commits = DeltaCommitter(
            self.stats,
            self.hooks,
            WriterLock(self.lake / "edge" / MAINTENANCE_LOCK_NAME),
            max_batch_rows=max_batch_rows,
            checkpoint_every_commits=checkpoint_every_commits,
            compact_every_commits=compact_every_commits,
            compact_every_s=compact_every_s,
        )

    # ------------------------------------------------------------------ event-loop side
    def add(self, table: str, row: Mapping[str, Any]) -> None:
        """Buffer one row (never blocks). Past max_buffer_rows the row is dropped and counted."""
        self.add_many(table, (row,))

    def add_many(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Buffer rows (never blocks), with one lock hand-over for all of them (the collector's hot path).
        Rows past max_buffer_rows are dropped and counted, exactly as one by one."""
        if not rows:
            return
        if table not in self._table_set:
            raise ValueError(f"unknown or unconfigured edge table {table!r}; configured: {list(self.tables)}")
        st = self.stats
        n = len(rows)
        with self._lock:
            st.rows_added += n
            room = 0 if self._state == "closed" else max(0, self.max_buffer_rows - self._buffered)
            take = min(room, n)
            buf = self._buffers[table]  # inside the lock: the writer swaps the buffers
            buf.extend(rows if take == n else rows[:take])
            self._buffered += take
            st.buffer_rows = self._buffered
            st.dropped_rows += n - take
            full = len(buf) >= self.max_batch_rows
        if take < n:
            self._log_drop(table)
        if full and not self._wake.is_set():
            self._wake.set()

    def _log_drop(self, table: str) -> None:
        now = time.monotonic()
        if now - self._last_drop_log < DROP_LOG_EVERY_S:
            return
        self._last_drop_log = now
        if self._state == "closed":
            log.error(
                "datalogger is closed: row for %s dropped (%d dropped so far); stop producing before close()",
                table,
                self.stats.dropped_rows,
                extra={"dropped_rows": self.stats.dropped_rows},
            )
            return
        log.error(
            "datalogger buffer full (%d rows not yet on disk): %d rows dropped so far (latest for %s); the "
            "writer is behind: check the Delta commit errors above and the disk, or raise "
            "datalogger.max_buffer_rows",
            self.max_buffer_rows,
            self.stats.dropped_rows,
            table,
            extra={"dropped_rows": self.stats.dropped_rows},
        )

    async def start(self) -> RecoveryReport:
        """Pre-flight the filesystem, take the writer lock, open/create tables, replay the spool, start writing."""
        if self._state != "new":
            raise RuntimeError("Datalogger.start() called twice")
        try:
            report = await asyncio.to_thread(self._start_sync)
        except BaseException:
            for lock in self._locks:
                lock.release()
            raise
        self._commits.next_compaction = time.monotonic() + self.compact_every_s
        self._thread = threading.Thread(target=self._run, name="datalogger-writer", daemon=True)
        with self._lock:
            self._state = "running"
        self._thread.start()
        if self._buffered:
            self._wake.set()
        return report

    async def flush(self) -> None:
        """Commit now; returns once every row added before the call is in Delta (or in quarantine)."""
        if self._state not in ("running", "closing"):
            raise RuntimeError(f"Datalogger.flush() needs a started datalogger (state {self._state})")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._state == "closed":
                raise RuntimeError("Datalogger.flush() after close()")
            self._waiters.append((loop, fut))
        self._wake.set()
        await fut

    async def close(self) -> None:
        """Flush and stop. Batches that cannot be committed within close_timeout_s stay in the spool
        (durable; committed on the next start) and are reported with an ERROR."""
        if self._state == "new":
            with self._lock:
                self._state = "closed"
                lost = self._buffered
            if lost:
                self.stats.dropped_rows += lost
                log.error("datalogger closed without start(): %d buffered rows dropped", lost)
            return
        if self._state == "closed" or self._thread is None:
            return
        self._close_deadline = time.monotonic() + self.close_timeout_s
        with self._lock:
            if self._state == "running":
                self._state = "closing"
        self._wake.set()
        await asyncio.to_thread(self._thread.join)
        for lock in self._locks:
            lock.release()
        left = sum(len(s.pending) + len(s.unspooled) for s in self._t.values())
        if left or self._buffered:
            log.error(
                "datalogger stopped with %d batches not committed (%d rows not even spooled); they stay in %s "
                "and are committed on the next start",
                left,
                self._buffered,
                self.spool,
            )
        if self.stats.dropped_rows:
            log.error("datalogger dropped %d rows in total (buffer overflow)", self.stats.dropped_rows)

    # ------------------------------------------------------------------ start-up (worker thread)
    def _start_sync(self) -> RecoveryReport:
        edge = self.lake / "edge"
        preflight.check_lake_and_spool(edge, self.spool, self.fs_ops)
        self._locks[0].acquire("a second datalogger on this lake")
        self._locks[1].acquire("a second datalogger on this spool")
        report = RecoveryReport()
        for table in self.tables:
            path = edge_table_path(self.lake, table)
            spool_dir = self.spool / table
            spool_dir.mkdir(parents=True, exist_ok=True)
            fsync_dir(self.spool)
            st = TableState(path, spool_dir)
            self._t[table] = st
            try:  # without the table's transaction version, new batch versions could collide: refuse
                st.dt = open_or_create(path, table, self.checkpoint_every_commits)
            except Exception as exc:
                raise RuntimeError(
                    f"cannot open or create the edge table {path}: {exc!r}; {advice(path, exc)}"
                ) from exc
            st.committed = st.dt.transaction_version(self.app_id) or 0
            st.checkpoint_version = last_checkpoint_version(path)
            self.stats.last_version[table] = st.dt.version()
            files, removed, corrupt = scan_spool(spool_dir, table, self.app_id)
            report.temp_files_removed += removed
            for bad in corrupt:
                (spool_dir / "corrupt").mkdir(exist_ok=True)
                os.replace(bad, spool_dir / "corrupt" / bad.name)
                report.corrupt_files.append(str(bad))
            st.pending.extend(files)
            st.next_version = max([st.committed, *(f.version for f in files)]) + 1
            report.next_version[table] = st.next_version
            rows_before, skipped_before = self.stats.rows_committed, self.stats.batches_skipped
            self.stats.spool_files_pending += len(files)
            if files:
                self._commits.commit_pending(table, st)
            report.replayed_rows[table] = self.stats.rows_committed - rows_before
            report.skipped_batches[table] = self.stats.batches_skipped - skipped_before
            report.replayed_batches[table] = len(files) - len(st.pending) - report.skipped_batches[table]
            report.still_pending[table] = len(st.pending)
        log.info("datalogger for %s (app id %s) started: %s", self.lake / "edge", self.app_id, report)
        return report

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        next_flush = time.monotonic() + self.flush_interval_s
        while True:
            now = time.monotonic()
            wake_at = next_flush
            retries = [s.retry_at for s in self._t.values() if s.pending and s.retry_at > now]
            if retries:
                wake_at = min(wake_at, min(retries))
            if self._state == "closing":
                wake_at = min(wake_at, self._close_deadline)
            self._wake.wait(max(0.0, wake_at - now))
            self._wake.clear()
            now = time.monotonic()
            stopping = self._state == "closing"
            next_flush = now + self.flush_interval_s
            try:
                self._cycle(now, stopping)
            except Exception:  # the writer never dies; the failure is logged and retried
                self.stats.errors += 1
                log.exception("datalogger writer cycle failed; retrying in %.1f s", self.flush_interval_s)
            if stopping:
                with self._lock:
                    idle = not self._buffered and not any(s.pending or s.unspooled for s in self._t.values())
                    if idle or time.monotonic() >= self._close_deadline:
                        self._state = "closed"
                        waiters = [w for _, ws in self._targets for w in ws] + self._waiters
                        self._targets, self._waiters = [], []
                        break
        self._resolve(
            waiters,
            None
            if idle
            else RuntimeError(
                f"datalogger closed with batches not committed; they stay in {self.spool} for the next start"
            ),
        )

    def _cycle(self, now: float, stopping: bool) -> None:
        with self._lock:
            taken = self._buffers
            self._buffers = {t: [] for t in self.tables}
            waiters, self._waiters = self._waiters, []
        if waiters or stopping:
            for st in self._t.values():
                st.retry_at = 0.0
        self._build_and_queue(taken)
        self._spool_all()
        if waiters:
            self._targets.append(({t: s.next_version - 1 for t, s in self._t.items()}, waiters))
        for table, st in self._t.items():
            if st.pending and time.monotonic() >= st.retry_at:
                self._commits.commit_pending(table, st)
        if not stopping:
            self._commits.maintain(self._t, now)
        self._resolve_targets()

    def _build_and_queue(self, taken: dict[str, list[Mapping[str, Any]]]) -> None:
        """Validate and version each table's rows; rows that do not fit become quarantine rows."""
        diverted: list[tuple[str, Rejected]] = []
        order = [t for t in self.tables if t != "quarantine"] + (["quarantine"] if "quarantine" in self.tables else [])
        for table in order:
            rows = taken[table]
            if table == "quarantine" and diverted:
                rows = rows + [quarantine_row(src, rej) for src, rej in diverted]
            if not rows:
                continue
            try:
                self._warn_unknown_columns(table, rows)
            except Exception:  # only a warning; never lose the rows over it
                log.exception("cannot check %s rows for unknown columns", table)
            for start in range(0, len(rows), self.max_batch_rows):
                chunk = rows[start : start + self.max_batch_rows]
                try:
                    data, rejected = build_batch(table, chunk)
                except Exception as exc:  # a bug here must not lose rows silently
                    log.exception("cannot build a %s batch; its %d rows go to quarantine", table, len(chunk))
                    data, rejected = (
                        None,
                        [Rejected(r, "*", None, "unsupported_type", f"batch build failed: {exc!r}") for r in chunk],
                    )
                if rejected:
                    self._divert(table, rejected, diverted)
                if data is not None and data.num_rows:
                    self._queue(table, data)
        if "quarantine" not in self.tables and diverted:
            with self._lock:
                self._buffered -= len(diverted)
                self.stats.buffer_rows = self._buffered
                self.stats.dropped_rows += len(diverted)
            log.error(
                "%d rows did not fit their schema and the quarantine table is not configured: dropped", len(diverted)
            )

    def _divert(self, table: str, rejected: list[Rejected], diverted: list[tuple[str, Rejected]]) -> None:
        self.stats.rows_quarantined += len(rejected)
        first = rejected[0]
        log.warning(
            "%d %s rows do not fit the schema and go to quarantine (first: %s, %s)",
            len(rejected),
            table,
            first.reason,
            first.detail,
            extra={"table": table, "reason": first.reason},
        )
        if table != "quarantine":
            diverted.extend((table, r) for r in rejected)
            return
        # a quarantine row that does not fit: rebuild it from what fits, else from nothing but its repr
        fixed = [quarantine_row("quarantine", r) for r in rejected]
        try:
            data, again = build_batch("quarantine", fixed)
        except Exception:  # noqa: BLE001 - whatever Arrow raises, the rows still go to the last-resort quarantine
            data, again = None, [Rejected(r, "*", r, "unsupported_type", "unbuildable") for r in fixed]
        if again:
            last, _ = build_batch("quarantine", [last_resort_row(r) for r in again])
            data = pa.concat_tables([data, last]) if data is not None else last
        if data is not None and data.num_rows:
            self._queue("quarantine", data)

    def _warn_unknown_columns(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Long format: a new tag is a row, not a column (D6a). Unknown keys are ignored, with a warning."""
        extra = set().union(*rows) - set(TABLES[table].names)
        for name in extra:
            if (table, name) not in self._warned_columns:
                self._warned_columns.add((table, name))
                log.warning(
                    "column %r is not in the %s schema and is not stored; new tags are rows (long format), "
                    "new columns need a change of edge_collector/schemas.py",
                    name,
                    table,
                )

    def _queue(self, table: str, data: pa.Table) -> None:
        st = self._t[table]
        st.unspooled.append(Batch(st.next_version, data))
        st.next_version += 1

    def _spool_all(self) -> None:
        """Make queued batches durable, in version order per table; a failure keeps them queued."""
        for table, st in self._t.items():
            while st.unspooled:
                batch = st.unspooled[0]
                try:
                    spooled = write_spool(st.spool_dir, table, self.app_id, batch.version, batch.data)
                except OSError as exc:
                    self.stats.errors += 1
                    now = time.monotonic()
                    if now - st.last_spool_error >= DROP_LOG_EVERY_S:
                        st.last_spool_error = now
                        log.error(
                            "cannot write the spool file of %s batch %d (%d rows) in %s: %s; rows stay in memory "
                            "(counted against max_buffer_rows) and the write is retried: free disk space or "
                            "fix permissions there",
                            table,
                            batch.version,
                            batch.data.num_rows,
                            st.spool_dir,
                            exc,
                        )
                    break
                st.unspooled.popleft()
                st.pending.append(spooled)
                with self._lock:
                    self._buffered -= spooled.rows
                    self.stats.buffer_rows = self._buffered
                self.stats.rows_acknowledged += spooled.rows
                self.stats.spool_files_pending += 1
                if self.on_acknowledged is not None:
                    try:
                        self.on_acknowledged(Acknowledged(table, batch.version, spooled.rows, batch.data))
                    except Exception:
                        log.exception("on_acknowledged callback failed")
        # rows diverted to quarantine were counted once as added; their quarantine rows replace them
        # (build_batch never adds rows), so _buffered stays exact.

    def _resolve_targets(self) -> None:
        if not self._targets:
            return
        keep: list[tuple[dict[str, int], list[_Waiter]]] = []
        done: list[_Waiter] = []
        for target, waiters in self._targets:
            if all(self._t[t].committed >= v for t, v in target.items()):
                done.extend(waiters)
            else:
                keep.append((target, waiters))
        self._targets = keep
        if done:
            self._resolve(done, None)

    @staticmethod
    def _resolve(waiters: list[_Waiter], error: BaseException | None) -> None:
        def settle(fut: asyncio.Future[None]) -> None:
            if not fut.done():
                if error is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(error)

        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(settle, fut)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass
