"""The collector's durable rolling Delta datalogger: rows in, exactly-once Delta appends out.

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
  number of files in the snapshot. It holds a lock file that `compact()` (for Dagster) takes too:
  delta-rs 1.6.6 lets two concurrent compactions both commit, duplicating every rewritten row.
  `vacuum(full=True)` is refused while the writer lock is held (delta-rs #3645).
- Delta errors never stop the collector: the batch stays spooled, an ERROR says what to do, and the
  commit is retried with capped backoff.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import numbers
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from operator import itemgetter
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import CommitProperties, DeltaTable, PostCommitHookProperties, Transaction, write_deltalake
from deltalake.exceptions import SchemaMismatchError

from . import preflight
from .crash_point import crash_point
from .schemas import EVENT_TIME, PARTITION_BY, TABLES, day_of, edge_table_path

try:  # POSIX advisory locks; on Windows the single-writer rule is not enforced
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger("edge_collector.datalogger")

#: How long Delta keeps JSON commits before a checkpoint lets them go (about 86,400 a day at 1 s).
LOG_RETENTION = "interval 7 days"
LOCK_NAME = ".datalogger.lock"
MAINTENANCE_LOCK_NAME = ".maintenance.lock"
SPOOL_SUFFIX = ".arrow"
MAX_BACKOFF_S = 30.0
FIRST_BACKOFF_S = 0.5
DROP_LOG_EVERY_S = 10.0
LATENCY_WINDOW = 4096
_INT64 = (-(2**63), 2**63 - 1)


# ---------------------------------------------------------------------------------------- public data


@dataclass
class DataloggerStats:
    """Counters read by metrics and tests. rows_added counts every `add()` call, dropped ones too, so
    rows_added == rows_committed + dropped_rows + buffer_rows + rows spooled but not yet committed
    (plus, in rows_committed, rows an earlier run had spooled and this one replayed)."""

    rows_added: int = 0
    rows_acknowledged: int = 0  # in a durable spool file
    rows_committed: int = 0  # in a Delta commit
    rows_quarantined: int = 0  # diverted to `quarantine` because they did not fit their schema
    dropped_rows: int = 0  # buffer overflow (or added after close): counted, logged, never silent
    buffer_rows: int = 0  # added, not yet spooled
    commits: int = 0
    batches_skipped: int = 0  # spooled batches found already committed (replay after a crash)
    last_commit_latency_s: float = 0.0
    commit_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_version: dict[str, int] = field(default_factory=dict)
    spool_files_pending: int = 0
    compactions: int = 0
    checkpoints: int = 0
    errors: int = 0

    def latency_quantile(self, q: float) -> float:
        lat = sorted(self.commit_latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0


@dataclass
class RecoveryReport:
    """What `start()` found in the spool and did about it."""

    replayed_batches: dict[str, int] = field(default_factory=dict)
    replayed_rows: dict[str, int] = field(default_factory=dict)
    skipped_batches: dict[str, int] = field(default_factory=dict)  # already in Delta: deleted, not rewritten
    temp_files_removed: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    still_pending: dict[str, int] = field(default_factory=dict)  # replay commit failed: retried by the writer
    next_version: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [f"replayed {sum(self.replayed_batches.values())} batches ({sum(self.replayed_rows.values())} rows)",
                 f"skipped {sum(self.skipped_batches.values())} already committed"]
        if self.temp_files_removed:
            parts.append(f"removed {self.temp_files_removed} partial spool files")
        if self.corrupt_files:
            parts.append(f"moved {len(self.corrupt_files)} unreadable spool files aside")
        if any(self.still_pending.values()):
            parts.append(f"{sum(self.still_pending.values())} batches still pending")
        return ", ".join(parts)


@dataclass(frozen=True)
class Acknowledged:
    """A batch that is durable in the spool: it survives kill -9 from here on."""

    table: str
    version: int
    rows: int
    data: pa.Table


@dataclass
class DataloggerHooks:
    """Test seams on the writer thread: e.g. sleep or fail around a commit to place a crash there."""

    before_commit: Callable[[str, int], None] | None = None  # (table, last batch version of the commit)
    after_commit: Callable[[str, int], None] | None = None  # committed, spool files not yet deleted


class WriterLocked(RuntimeError):
    """Another process (a second collector, or a full vacuum) holds the edge tables' writer lock."""


class VacuumRefused(RuntimeError):
    """`vacuum(full=True)` would delete files an in-flight append is about to commit (delta-rs #3645)."""


# ---------------------------------------------------------------------------------------- rows -> Arrow

_NONE = type(None)


@lru_cache(maxsize=256)
def _accepts(arrow_type: pa.DataType, py_type: type) -> bool:
    """Python types a column takes without a lossy cast (pyarrow alone would truncate 1.5 into int64)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return issubclass(py_type, str)
    if pa.types.is_floating(arrow_type):
        return issubclass(py_type, numbers.Real)  # int and bool (0/1) included
    if pa.types.is_integer(arrow_type):
        return issubclass(py_type, numbers.Integral) and not issubclass(py_type, bool)
    if pa.types.is_timestamp(arrow_type):
        return issubclass(py_type, datetime)
    return False


def _reason(value: Any) -> str:
    """`type_changed` for a plain scalar of the wrong type; `unsupported_type` for what no column stores."""
    if value is None or isinstance(value, (bytes, bytearray, memoryview, list, tuple, dict, set)):
        return "unsupported_type"
    if isinstance(value, (str, numbers.Number, datetime)):
        return "type_changed"
    return "unsupported_type"


@dataclass(frozen=True)
class _Rejected:
    row: Mapping[str, Any]
    column: str
    value: Any
    reason: str
    detail: str


def _check_value(fld: pa.Field, value: Any, required: bool) -> tuple[str, str] | None:
    if value is None:
        return ("unsupported_type", f"required column {fld.name} is missing") if required else None
    if not _accepts(fld.type, type(value)):
        return _reason(value), f"column {fld.name} expects {fld.type}, got {type(value).__name__}"
    try:
        pa.array([value], type=fld.type)
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        return "unsupported_type", f"column {fld.name} cannot store this {type(value).__name__}: {exc}"
    return None


def _columns(schema: pa.Schema,
             rows: Sequence[Mapping[str, Any]]) -> tuple[list[pa.Array | None], dict[int, _Rejected]]:
    """Column-wise conversion; only a column that fails is checked value by value."""
    arrays: list[pa.Array | None] = []
    bad: dict[int, _Rejected] = {}
    try:  # one C-level pass when every row has every column (the collector's rows do)
        columns: list[Sequence[Any]] | None = list(zip(*map(itemgetter(*schema.names), rows))) if rows else None
    except (KeyError, TypeError):
        columns = None
    for k, fld in enumerate(schema):
        name = fld.name
        values = columns[k] if columns is not None else [r.get(name) for r in rows]
        required = not fld.nullable and name != "day"  # day is derived when missing
        types = set(map(type, values))
        array = None
        if (not required or _NONE not in types) and all(t is _NONE or _accepts(fld.type, t) for t in types):
            try:
                array = pa.array(values, type=fld.type)
            except (pa.ArrowException, OverflowError, ValueError, TypeError):
                array = None
        if array is None:
            for i, value in enumerate(values):
                if i not in bad and (problem := _check_value(fld, value, required)) is not None:
                    bad[i] = _Rejected(rows[i], name, value, *problem)
        arrays.append(array)
    return arrays, bad


def build_batch(table: str, rows: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, list[_Rejected]]:
    """Rows (dicts of Python values) -> an Arrow table of the edge schema, plus the rows that do not fit."""
    schema = TABLES[table]
    rejected: list[_Rejected] = []
    while True:
        arrays, bad = _columns(schema, rows)
        if not bad:
            break
        rejected.extend(bad.values())
        rows = [r for i, r in enumerate(rows) if i not in bad]
    if any(a is None for a in arrays):  # a column failed as a whole but no value failed alone
        raise ValueError(f"{table}: cannot convert the batch although every value fits its column")
    names = schema.names
    day_i = names.index("day")
    day = arrays[day_i]
    assert day is not None
    if day.null_count:
        derived = pc.strftime(arrays[names.index(EVENT_TIME[table])], format="%Y-%m-%d")
        arrays[day_i] = pc.if_else(pc.is_null(day), derived, day)
    return pa.Table.from_arrays(arrays, schema=schema), rejected  # type: ignore[arg-type]


def _pick(row: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = row.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        return None
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return None
    return value


def _safe_repr(value: Any, limit: int) -> str:
    try:
        return repr(value)[:limit]
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not stop the writer
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"[:limit]


def quarantine_row(table: str, rej: _Rejected) -> dict[str, Any]:
    """A `quarantine` row describing a row of `table` that did not fit; built only from fields that fit."""
    row = rej.row
    received = _pick(row, "received_ts", datetime) or datetime.now(timezone.utc)
    seq = _pick(row, "seq", int)
    return {
        "line_id": _pick(row, "line_id", str),
        "tag": _pick(row, "tag", str),
        "node_id": _pick(row, "node_id", str),
        "source_ts": _pick(row, EVENT_TIME[table] if table != "quarantine" else "source_ts", datetime),
        "server_ts": _pick(row, "server_ts", datetime),
        "received_ts": received,
        "raw_value": _safe_repr(rej.value, 1000),
        "variant_type": _pick(row, "variant_type", str),
        "status_code": _pick(row, "status_code", int),
        "reason": rej.reason,
        "detail": f"{table}: {rej.detail}; row {_safe_repr(dict(row), 1800)}"[:2000],
        "session_id": _pick(row, "session_id", str) or "unknown",
        "seq": seq if seq is not None else -1,
        "day": day_of(received),
    }


def _last_resort_row(rej: _Rejected) -> dict[str, Any]:
    now = datetime.now(timezone.utc)
    return {"received_ts": now, "raw_value": ascii(_safe_repr(rej.value, 1000)), "reason": rej.reason,
            "detail": ascii(f"{rej.detail}; row {_safe_repr(dict(rej.row), 1800)}")[:2000], "session_id": "unknown",
            "seq": -1, "day": day_of(now)}


# ---------------------------------------------------------------------------------------- spool


@dataclass
class SpoolFile:
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
    preflight.fsync_dir(directory)
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
                rows = int(meta[b"rows"]) if b"rows" in meta else sum(
                    reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            app_id = meta.get(b"app_id", default_app_id.encode()).decode()
        except (ValueError, OSError, pa.ArrowException) as exc:
            log.error("spool file %s is unreadable (%s); moved aside to %s/corrupt for inspection", entry, exc,
                      directory)
            corrupt.append(entry)
            continue
        files.append(SpoolFile(table, app_id, version, rows, entry, replayed=True))
    files.sort(key=lambda s: s.version)
    return files, removed, corrupt


# ---------------------------------------------------------------------------------------- Delta


def append_once(dt: DeltaTable, data: pa.Table, app_id: str, version: int) -> bool:
    """Append `data` as batch `version` of `app_id` unless the table already holds it. True if written.

    delta-rs records the `txn` action but does not reject a stale version, so compare first. A
    concurrent writer committing the same app id makes this raise CommitFailedError instead."""
    current = dt.transaction_version(app_id)
    if current is not None and current >= version:
        return False
    write_deltalake(
        dt, data, mode="append",
        commit_properties=CommitProperties(app_transactions=[Transaction(app_id, version, int(time.time() * 1000))]),
        post_commithook_properties=PostCommitHookProperties(create_checkpoint=False, cleanup_expired_logs=False),
    )
    return True


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
        _fsync_file(file)
    for directory in dirs:
        preflight.fsync_dir(directory)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
        str(table_path), TABLES[table], mode="ignore", partition_by=PARTITION_BY, name=table,
        configuration={"delta.checkpointInterval": str(checkpoint_interval),
                       "delta.logRetentionDuration": LOG_RETENTION},
    )


class WriterLock:
    """An exclusive advisory lock file: one writer per edge lake, and no full vacuum while it writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str, wait_s: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WriterLocked(f"{self.path} is locked by another process ({what} refused): stop the "
                                       "other collector or the running vacuum first, or wait for it") from exc
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None


def vacuum(lake: Path, table: str, *, retention_hours: int | None = None, full: bool = False, dry_run: bool = True,
           enforce_retention_duration: bool = True) -> list[str]:
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
        raise VacuumRefused(f"vacuum(full=True) of {path} refused while the collector writes it: stop the collector "
                            "first, or run a normal vacuum") from exc
    try:
        return dt.vacuum(retention_hours, dry_run=dry_run, enforce_retention_duration=enforce_retention_duration,
                         full=True)
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


def _advice(table_path: Path, exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, SchemaMismatchError) or "schema" in text.lower():
        return (f"the table at {table_path} does not have the edge schema of edge_collector/schemas.py: move it "
                "aside (the datalogger recreates it) or migrate it")
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC or "No space" in text:
        return f"free disk space on the filesystem of {table_path}"
    return f"check free disk space and permissions of {table_path}"


# ---------------------------------------------------------------------------------------- the datalogger

_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[None]"]


@dataclass
class _Batch:
    """Built and versioned, not yet durable in the spool."""

    version: int
    data: pa.Table


@dataclass
class _TableState:
    path: Path
    spool_dir: Path
    dt: DeltaTable | None = None
    next_version: int = 1
    committed: int = 0  # every batch version <= this is in Delta
    unspooled: deque[_Batch] = field(default_factory=deque)
    pending: deque[SpoolFile] = field(default_factory=deque)
    retry_at: float = 0.0
    backoff: float = FIRST_BACKOFF_S
    checkpoint_version: int = 0
    commits_since_compaction: int = 0
    last_spool_error: float = 0.0


class Datalogger:
    """Durable, exactly-once, rolling Delta appends of the edge tables (see the module docstring)."""

    def __init__(self, lake: Path, spool: Path, collector_id: str, *, flush_interval_s: float = 1.0,
                 max_batch_rows: int = 50_000, max_buffer_rows: int = 2_000_000, compact_every_s: float = 600.0,
                 checkpoint_every_commits: int = 50, tables: Iterable[str] = TABLES, compact_every_commits: int = 200,
                 on_acknowledged: Callable[[Acknowledged], None] | None = None, hooks: DataloggerHooks | None = None,
                 fs_ops: preflight.FsOps = preflight.DEFAULT_OPS, close_timeout_s: float = 60.0) -> None:
        self.lake = Path(lake)
        self.spool = Path(spool)
        self.collector_id = collector_id
        self.app_id = f"edge-collector:{collector_id}"
        self.tables = tuple(tables)
        self._table_set = frozenset(self.tables)
        unknown = [t for t in self.tables if t not in TABLES]
        if unknown:
            raise ValueError(f"unknown edge tables {unknown}; known: {sorted(TABLES)}")
        if flush_interval_s <= 0 or min(max_batch_rows, max_buffer_rows, checkpoint_every_commits,
                                        compact_every_commits) < 1:
            raise ValueError("flush_interval_s must be > 0; max_batch_rows, max_buffer_rows, "
                             "checkpoint_every_commits and compact_every_commits must be >= 1")
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
        self._t: dict[str, _TableState] = {}
        self._targets: list[tuple[dict[str, int], list[_Waiter]]] = []
        self._next_compaction = 0.0
        self._close_deadline = float("inf")
        self._warned_columns: set[tuple[str, str]] = set()
        self._thread: threading.Thread | None = None
        self._locks = [WriterLock(self.lake / "edge" / LOCK_NAME), WriterLock(self.spool / LOCK_NAME)]
        self._maintenance_lock = WriterLock(self.lake / "edge" / MAINTENANCE_LOCK_NAME)

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
            log.error("datalogger is closed: row for %s dropped (%d dropped so far); stop producing before close()",
                      table, self.stats.dropped_rows, extra={"dropped_rows": self.stats.dropped_rows})
            return
        log.error("datalogger buffer full (%d rows not yet on disk): %d rows dropped so far (latest for %s); the "
                  "writer is behind: check the Delta commit errors above and the disk, or raise "
                  "datalogger.max_buffer_rows", self.max_buffer_rows, self.stats.dropped_rows, table,
                  extra={"dropped_rows": self.stats.dropped_rows})

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
        self._next_compaction = time.monotonic() + self.compact_every_s
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
            log.error("datalogger stopped with %d batches not committed (%d rows not even spooled); they stay in %s "
                      "and are committed on the next start", left, self._buffered, self.spool)
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
            preflight.fsync_dir(self.spool)
            st = _TableState(path, spool_dir)
            self._t[table] = st
            try:  # without the table's transaction version, new batch versions could collide: refuse
                st.dt = open_or_create(path, table, self.checkpoint_every_commits)
            except Exception as exc:
                raise RuntimeError(f"cannot open or create the edge table {path}: {exc!r}; {_advice(path, exc)}") \
                    from exc
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
                self._commit_pending(table, st)
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
            except Exception:  # noqa: BLE001 - the writer never dies; the failure is logged and retried
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
        self._resolve(waiters, None if idle else RuntimeError(
            f"datalogger closed with batches not committed; they stay in {self.spool} for the next start"))

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
                self._commit_pending(table, st)
        if not stopping:
            self._maintain(now)
        self._resolve_targets()

    def _build_and_queue(self, taken: dict[str, list[Mapping[str, Any]]]) -> None:
        """Validate and version each table's rows; rows that do not fit become quarantine rows."""
        diverted: list[tuple[str, _Rejected]] = []
        order = [t for t in self.tables if t != "quarantine"] + (["quarantine"] if "quarantine" in self.tables else [])
        for table in order:
            rows = taken[table]
            if table == "quarantine" and diverted:
                rows = rows + [quarantine_row(src, rej) for src, rej in diverted]
            if not rows:
                continue
            try:
                self._warn_unknown_columns(table, rows)
            except Exception:  # noqa: BLE001 - only a warning; never lose the rows over it
                log.exception("cannot check %s rows for unknown columns", table)
            for start in range(0, len(rows), self.max_batch_rows):
                chunk = rows[start:start + self.max_batch_rows]
                try:
                    data, rejected = build_batch(table, chunk)
                except Exception as exc:  # noqa: BLE001 - a bug here must not lose rows silently
                    log.exception("cannot build a %s batch; its %d rows go to quarantine", table, len(chunk))
                    data, rejected = None, [_Rejected(r, "*", None, "unsupported_type", f"batch build failed: {exc!r}")
                                            for r in chunk]
                if rejected:
                    self._divert(table, rejected, diverted)
                if data is not None and data.num_rows:
                    self._queue(table, data)
        if "quarantine" not in self.tables and diverted:
            with self._lock:
                self._buffered -= len(diverted)
                self.stats.buffer_rows = self._buffered
                self.stats.dropped_rows += len(diverted)
            log.error("%d rows did not fit their schema and the quarantine table is not configured: dropped",
                      len(diverted))

    def _divert(self, table: str, rejected: list[_Rejected], diverted: list[tuple[str, _Rejected]]) -> None:
        self.stats.rows_quarantined += len(rejected)
        first = rejected[0]
        log.warning("%d %s rows do not fit the schema and go to quarantine (first: %s, %s)", len(rejected), table,
                    first.reason, first.detail, extra={"table": table, "reason": first.reason})
        if table != "quarantine":
            diverted.extend((table, r) for r in rejected)
            return
        # a quarantine row that does not fit: rebuild it from what fits, else from nothing but its repr
        fixed = [quarantine_row("quarantine", r) for r in rejected]
        try:
            data, again = build_batch("quarantine", fixed)
        except Exception:  # noqa: BLE001
            data, again = None, [_Rejected(r, "*", r, "unsupported_type", "unbuildable") for r in fixed]
        if again:
            last, _ = build_batch("quarantine", [_last_resort_row(r) for r in again])
            data = pa.concat_tables([data, last]) if data is not None else last
        if data is not None and data.num_rows:
            self._queue("quarantine", data)

    def _warn_unknown_columns(self, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Long format: a new tag is a row, not a column (D6a). Unknown keys are ignored, with a warning."""
        extra = set().union(*rows) - set(TABLES[table].names)
        for name in extra:
            if (table, name) not in self._warned_columns:
                self._warned_columns.add((table, name))
                log.warning("column %r is not in the %s schema and is not stored; new tags are rows (long format), "
                            "new columns need a change of edge_collector/schemas.py", name, table)

    def _queue(self, table: str, data: pa.Table) -> None:
        st = self._t[table]
        st.unspooled.append(_Batch(st.next_version, data))
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
                        log.error("cannot write the spool file of %s batch %d (%d rows) in %s: %s; rows stay in memory "
                                  "(counted against max_buffer_rows) and the write is retried: free disk space or "
                                  "fix permissions there", table, batch.version, batch.data.num_rows, st.spool_dir, exc)
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
                    except Exception:  # noqa: BLE001
                        log.exception("on_acknowledged callback failed")
        # rows diverted to quarantine were counted once as added; their quarantine rows replace them
        # (build_batch never adds rows), so _buffered stays exact.

    def _commit_pending(self, table: str, st: _TableState) -> None:
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

    def _commit_group(self, table: str, st: _TableState, group: list[SpoolFile]) -> None:
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
        log.info("%s: %d spooled batches (<= version %d of %s) are already committed; not writing them again",
                 table, len(files), current, files[0].app_id)

    def _commit_failed(self, table: str, st: _TableState, group: list[SpoolFile], exc: Exception) -> None:
        self.stats.errors += 1
        delay = st.backoff
        st.backoff = min(st.backoff * 2, MAX_BACKOFF_S)
        st.retry_at = time.monotonic() + delay
        log.error("commit of %s batches %d..%d (%d rows) failed: %r; they stay in the spool (%s) and are retried in "
                  "%.1f s: %s", table, group[0].version, group[-1].version, sum(f.rows for f in group), exc,
                  st.spool_dir, delay, _advice(st.path, exc), extra={"table": table})
        try:  # the commit may have landed anyway ("error despite success"): reload before the retry compares
            st.dt = open_or_create(st.path, table, self.checkpoint_every_commits)
        except Exception as reopen:  # noqa: BLE001
            st.dt = None
            log.error("cannot reopen %s: %r", st.path, reopen)

    def _maybe_checkpoint(self, table: str, st: _TableState) -> None:
        if st.dt is None or st.dt.version() - st.checkpoint_version < self.checkpoint_every_commits:
            return
        try:
            st.dt.create_checkpoint()
            version = st.dt.version()
            log_dir = st.path / "_delta_log"
            for file in [*log_dir.glob(f"{version:020d}.checkpoint*.parquet"), log_dir / "_last_checkpoint"]:
                _fsync_file(file)
            preflight.fsync_dir(log_dir)
            st.checkpoint_version = version
            self.stats.checkpoints += 1
        except Exception as exc:  # noqa: BLE001 - a missing checkpoint only slows readers down
            self.stats.errors += 1
            st.checkpoint_version = st.dt.version()  # do not retry on every commit
            log.error("checkpoint of %s failed: %r; readers replay more JSON commits until the next one", st.path, exc)

    def _maintain(self, now: float) -> None:
        """Compaction and log clean-up on their cadence, between commits (ingest keeps buffering meanwhile)."""
        if now < self._next_compaction:
            return
        self._next_compaction = now + self.compact_every_s
        for table, st in self._t.items():
            if st.dt is not None and st.commits_since_compaction:
                self._compact(table, st)
                self._maybe_checkpoint(table, st)

    def _compact(self, table: str, st: _TableState) -> None:
        """Bin-pack small files: readers open fewer files and appends stay fast (their cost grows with
        the number of files in the snapshot). Failures never stop ingest."""
        assert st.dt is not None
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
                log.info("compacted %s: %s files into %s", table, metrics.get("numFilesRemoved"),
                         metrics.get("numFilesAdded"))
            st.dt.cleanup_metadata()  # drop JSON commits older than LOG_RETENTION behind a checkpoint
        except Exception as exc:  # noqa: BLE001 - maintenance failures never stop ingest
            self.stats.errors += 1
            log.error("compaction of %s failed: %r; ingest continues, it is retried later", st.path, exc)
            try:
                st.dt = open_or_create(st.path, table, self.checkpoint_every_commits)
            except Exception:  # noqa: BLE001
                st.dt = None
        finally:
            self._maintenance_lock.release()

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
