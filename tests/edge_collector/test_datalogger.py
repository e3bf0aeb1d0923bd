"""The durable Delta datalogger on real Delta tables in tmp dirs (RELIABILITY.md D2-D6, R5)."""

from __future__ import annotations

import asyncio
import errno
import itertools
import json
import logging
import os
import threading
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake
from deltalake.exceptions import CommitFailedError

from edge_collector.datalogger import Datalogger, DataloggerHooks, build_batch, preflight, read_spool, write_spool
from edge_collector.lake import VacuumRefused, WriterLocked, append_once, compact, vacuum
from edge_collector.schemas import RAW_SAMPLES, TABLES, edge_table_path

T0 = datetime(2026, 11, 24, 23, 59, 58, tzinfo=UTC)


def sample(n: int, ts: datetime | None = None, session: str = "s1", **over: Any) -> dict[str, Any]:
    ts = ts or T0 + timedelta(milliseconds=n)
    row: dict[str, Any] = {
        "line_id": "L1",
        "tag": "Status.CurMachSpeed",
        "source_ts": ts,
        "server_ts": ts,
        "received_ts": ts,
        "value": float(n),
        "value_text": None,
        "status_code": 0,
        "session_id": session,
        "seq": n,
    }
    row.update(over)
    return row


def table_of(lake: Path, table: str = "raw_samples") -> pa.Table:
    return DeltaTable(str(edge_table_path(lake, table))).to_pyarrow_table()


def spool_files(spool: Path) -> list[Path]:
    return sorted(spool.rglob("*.arrow"))


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


Factory = Callable[..., Datalogger]


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Factory]:
    """`make(**options)` -> a Datalogger on tmp_path/lake + tmp_path/spool; closed at the end."""
    made: list[Datalogger] = []

    def factory(**options: Any) -> Datalogger:
        options.setdefault("flush_interval_s", 0.05)
        dl = Datalogger(tmp_path / "lake", tmp_path / "spool", options.pop("collector_id", "test"), **options)
        made.append(dl)
        return dl

    yield factory
    for dl in made:
        await dl.close()


@pytest.fixture
def lake(tmp_path: Path) -> Path:
    return tmp_path / "lake"


@pytest.fixture
def spool(tmp_path: Path) -> Path:
    return tmp_path / "spool"


# ------------------------------------------------------------------------------------------ batching


async def test_flushes_by_time(make: Factory, lake: Path) -> None:
    dl = make(flush_interval_s=0.6, max_batch_rows=10_000)
    await dl.start()
    for i in range(10):
        dl.add("raw_samples", sample(i))
    await asyncio.sleep(0.1)
    assert dl.stats.rows_committed == 0, "committed before the flush interval"
    await until(lambda: dl.stats.rows_committed == 10, timeout=5)
    assert dl.stats.commits == 1
    assert table_of(lake).num_rows == 10


async def test_flushes_by_rows_long_before_the_interval(make: Factory, lake: Path) -> None:
    dl = make(flush_interval_s=60.0, max_batch_rows=100)
    await dl.start()
    for i in range(250):
        dl.add("raw_samples", sample(i))
    await until(lambda: dl.stats.rows_committed == 250, timeout=10)
    history = DeltaTable(str(edge_table_path(lake, "raw_samples"))).history()
    written = [int(h["operationMetrics"]["num_added_rows"]) for h in history if h["operation"] == "WRITE"]
    assert sum(written) == 250 and max(written) <= 100
    for i in range(250, 260):  # below max_batch_rows: waits for the (60 s) interval
        dl.add("raw_samples", sample(i))
    await asyncio.sleep(0.5)
    assert dl.stats.rows_committed == 250
    await dl.close()
    assert table_of(lake).num_rows == 260


async def test_partitioned_by_utc_day_derived_from_event_time(make: Factory, lake: Path) -> None:
    dl = make()
    await dl.start()
    before = datetime(2026, 11, 24, 23, 59, 59, 999_999, tzinfo=UTC)
    after = datetime(2026, 11, 25, 0, 0, tzinfo=UTC)
    berlin_evening = datetime(2026, 11, 25, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 23:30 UTC on the 24th
    dl.add("raw_samples", sample(1, before))
    dl.add("raw_samples", sample(2, after))
    dl.add("raw_samples", sample(3, berlin_evening))
    dl.add("raw_samples", sample(4, after, day="2026-11-26"))  # an explicit day is kept
    dl.add(
        "injected_events",
        {
            "line_id": "L1",
            "event_ts": after,
            "kind": "fault_start",
            "distribution": "weibull",
            "params": "{}",
            "value": None,
            "fault_code": 7,
            "seed": 1,
            "session_id": "s1",
            "seq": 5,
        },
    )
    await dl.flush()
    dt = DeltaTable(str(edge_table_path(lake, "raw_samples")))
    assert dt.metadata().partition_columns == ["day"]
    days = dict(zip(*[dt.to_pyarrow_table().column(c).to_pylist() for c in ("seq", "day")]))
    assert days == {1: "2026-11-24", 2: "2026-11-25", 3: "2026-11-24", 4: "2026-11-26"}
    dirs = sorted(p.name for p in edge_table_path(lake, "raw_samples").iterdir() if p.name.startswith("day="))
    assert dirs == ["day=2026-11-24", "day=2026-11-25", "day=2026-11-26"]
    assert table_of(lake, "injected_events").column("day").to_pylist() == ["2026-11-25"]
    assert set(TABLES) == {p.name for p in (lake / "edge").iterdir() if not p.name.startswith(".")}


# ------------------------------------------------------------------------------------------ D2


async def test_d2a_error_after_commit_is_not_written_twice(
    make: Factory, lake: Path, spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """D2 (RELIABILITY.md): Error after commit is not written twice."""
    failed = []

    def after_commit(table: str, version: int) -> None:
        if not failed:
            failed.append(version)
            raise OSError("connection reset after the commit landed")  # what delta-rs #2279 looks like

    dl = make(hooks=DataloggerHooks(after_commit=after_commit))
    await dl.start()
    for i in range(100):
        dl.add("raw_samples", sample(i))
    with caplog.at_level(logging.ERROR, "edge_collector.datalogger"):
        await asyncio.wait_for(dl.flush(), 10)
    assert failed == [1]
    assert any("retried" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert dl.stats.batches_skipped == 1 and dl.stats.rows_committed == 100
    assert table_of(lake).num_rows == 100
    dt = DeltaTable(str(edge_table_path(lake, "raw_samples")))
    assert dt.transaction_version(dl.app_id) == 1 and dt.version() == 1  # one commit, no retry commit
    assert spool_files(spool) == []


async def test_d2a_restart_after_crash_between_commit_and_spool_delete(make: Factory, lake: Path, spool: Path) -> None:
    """D2 (RELIABILITY.md): Restart after crash between commit and spool delete."""
    dl = make()
    await dl.start()
    for i in range(50):
        dl.add("raw_samples", sample(i))
    await dl.flush()
    await dl.close()
    path = edge_table_path(lake, "raw_samples")
    assert DeltaTable(str(path)).transaction_version(dl.app_id) == 1
    # the state a kill -9 leaves between the commit and the spool delete: batch 1 still in the spool,
    # plus batch 2 spooled (acknowledged) but never committed
    committed = table_of(lake)
    write_spool(spool / "raw_samples", "raw_samples", dl.app_id, 1, committed)
    pending, _ = build_batch("raw_samples", [sample(i, session="s2") for i in range(7)])
    write_spool(spool / "raw_samples", "raw_samples", dl.app_id, 2, pending)

    dl2 = make()
    report = await dl2.start()
    assert report.skipped_batches["raw_samples"] == 1
    assert report.replayed_batches["raw_samples"] == 1 and report.replayed_rows["raw_samples"] == 7
    assert report.next_version["raw_samples"] == 3
    assert table_of(lake).num_rows == 57
    assert spool_files(spool) == []
    dl2.add("raw_samples", sample(99, session="s3"))
    await dl2.flush()
    assert DeltaTable(str(path)).transaction_version(dl2.app_id) == 3  # versions continue after the restart
    seqs = table_of(lake).select(["session_id", "seq"]).to_pylist()
    assert len(seqs) == len({(r["session_id"], r["seq"]) for r in seqs}) == 58


def test_d2b_two_writers_same_app_id_and_version_on_one_snapshot(lake: Path) -> None:
    """D2 (RELIABILITY.md): Two writers same app id and version on one snapshot."""
    path = edge_table_path(lake, "raw_samples")
    DeltaTable.create(str(path), RAW_SAMPLES, partition_by=["day"])
    data, _ = build_batch("raw_samples", [sample(i) for i in range(10)])
    first, second = DeltaTable(str(path)), DeltaTable(str(path))
    assert append_once(first, data, "edge-collector:x", 1)
    with pytest.raises(CommitFailedError):
        append_once(second, data, "edge-collector:x", 1)
    second.update_incremental()
    assert not append_once(second, data, "edge-collector:x", 1)  # the retry compares and skips
    assert DeltaTable(str(path)).to_pyarrow_table().num_rows == 10


# ------------------------------------------------------------------------------------------ D4 and the lock


async def test_d4_refuses_a_filesystem_without_hard_links(make: Factory, lake: Path, spool: Path) -> None:
    """D4 (RELIABILITY.md): Refuses a filesystem without hard links."""

    def no_link(src: str, dst: str) -> None:
        raise OSError(errno.EPERM, "Operation not permitted", dst)  # what blobfuse / SMB answer

    dl = make(fs_ops=preflight.FsOps(link=no_link))
    with pytest.raises(preflight.FilesystemUnsupported, match="lacks atomic no-replace rename/hard link") as info:
        await dl.start()
    assert "local" in str(info.value)  # says what to do
    assert not list(lake.rglob("_delta_log")) and spool_files(spool) == []
    assert not [p for p in lake.rglob("*") if p.name.startswith(".preflight")]


def test_d4_refuses_a_link_that_replaces(tmp_path: Path) -> None:
    """D4 (RELIABILITY.md): Refuses a link that replaces."""

    def replacing_link(src: str, dst: str) -> None:
        if os.path.exists(dst):
            os.unlink(dst)
        os.link(src, dst)

    with pytest.raises(preflight.FilesystemUnsupported, match="replaced an existing file"):
        preflight.check_directory(tmp_path / "x", ops=preflight.FsOps(link=replacing_link))
    preflight.check_directory(tmp_path / "y")  # the real local disk passes


async def test_one_writer_per_lake(make: Factory) -> None:
    await make().start()
    with pytest.raises(WriterLocked, match="stop the other collector"):
        await make(collector_id="other").start()


# ------------------------------------------------------------------------------------------ D5


async def test_d5_log_growth_under_1000_small_appends(make: Factory, lake: Path) -> None:
    """D5 (RELIABILITY.md): Log growth under 1000 small appends."""
    dl = make(max_batch_rows=1, checkpoint_every_commits=50, compact_every_commits=100)
    await dl.start()
    for i in range(1000):
        dl.add("raw_samples", sample(i))
    await asyncio.wait_for(dl.flush(), 120)
    assert dl.stats.commits == 1000
    log_dir = edge_table_path(lake, "raw_samples") / "_delta_log"
    assert (log_dir / "_last_checkpoint").exists()
    started = time.perf_counter()
    dt = DeltaTable(str(edge_table_path(lake, "raw_samples")))
    opened = time.perf_counter() - started
    interval = int(dt.metadata().configuration["delta.checkpointInterval"])
    last_cp = int(json.loads((log_dir / "_last_checkpoint").read_text())["version"])
    since = [p for p in log_dir.glob("*.json") if int(p.stem) > last_cp]
    assert len(since) < interval, (len(since), interval)
    assert dl.stats.checkpoints >= 1000 // interval - 1
    assert opened < 2.0
    assert dt.to_pyarrow_table().num_rows == 1000


# ------------------------------------------------------------------------------------------ D6


async def test_d6b_type_change_goes_to_quarantine_schema_unchanged(make: Factory, lake: Path) -> None:
    """D6 (RELIABILITY.md): Type change goes to quarantine schema unchanged."""
    dl = make()
    await dl.start()
    for i in range(5):
        dl.add("raw_samples", sample(i))
    await dl.flush()
    dl.add("raw_samples", sample(5, value="12.5"))  # float tag now sends a string
    dl.add("raw_samples", sample(6, value=[1.0, 2.0]))  # an array: cannot be stored
    dl.add("raw_samples", sample(7, seq=7.5))  # would be truncated silently by pyarrow
    dl.add("raw_samples", sample(8))
    dl.add("raw_samples", sample(9, new_column="x"))  # D6(a): long format, the column is ignored
    dl.add("quarantine", {"received_ts": T0, "reason": None, "session_id": "s1", "seq": 1})  # a broken one
    await dl.flush()
    raw = table_of(lake)
    assert raw.schema.equals(RAW_SAMPLES)  # the main table's schema did not change
    assert sorted(raw.column("seq").to_pylist()) == [0, 1, 2, 3, 4, 8, 9]
    q = table_of(lake, "quarantine").sort_by("raw_value").to_pylist()
    reasons = {(r["raw_value"], r["reason"]) for r in q}
    assert ("'12.5'", "type_changed") in reasons
    assert ("[1.0, 2.0]", "unsupported_type") in reasons
    assert ("7.5", "type_changed") in reasons
    assert ("None", "unsupported_type") in reasons  # the quarantine row without a reason
    by_value = {r["raw_value"]: r for r in q}
    assert by_value["'12.5'"]["tag"] == "Status.CurMachSpeed" and by_value["'12.5'"]["seq"] == 5
    assert "value" in by_value["'12.5'"]["detail"]
    assert dl.stats.rows_quarantined == 4 and dl.stats.rows_committed == 11


def test_build_batch_is_column_wise_and_strict() -> None:
    """D6 (RELIABILITY.md): Build batch is column wise and strict."""
    rows = [sample(i) for i in range(3)] + [sample(3, status_code=True), sample(4, source_ts="2026-11-24")]
    data, rejected = build_batch("raw_samples", rows)
    assert data.num_rows == 3 and data.schema.equals(RAW_SAMPLES)
    assert pc.all(pc.equal(data.column("day"), "2026-11-24")).as_py()
    assert sorted((r.column, r.reason) for r in rejected) == [
        ("source_ts", "type_changed"),
        ("status_code", "type_changed"),
    ]


# ------------------------------------------------------------------------------------------ R5, errors, close


async def test_r5_overflow_is_counted_exactly_and_logged(
    make: Factory, lake: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """R5 (RELIABILITY.md): Overflow is counted exactly and logged."""
    release = threading.Event()
    dl = make(max_buffer_rows=500, hooks=DataloggerHooks(before_commit=lambda t, v: release.wait(30)))
    await dl.start()
    produced = 0
    with caplog.at_level(logging.ERROR, "edge_collector.datalogger"):
        for _ in range(60):  # the writer is blocked inside its first commit
            for _ in range(50):
                dl.add("raw_samples", sample(produced))
                produced += 1
            await asyncio.sleep(0.01)
        assert dl.stats.buffer_rows <= 500
        release.set()
        await dl.close()
    persisted = table_of(lake).num_rows
    assert dl.stats.dropped_rows > 0
    assert dl.stats.dropped_rows == produced - persisted
    assert dl.stats.rows_added == produced
    drops = [r for r in caplog.records if r.levelno == logging.ERROR and "dropped" in r.getMessage()]
    assert 1 <= len(drops) <= 3  # rate-limited, plus the summary at close


async def test_delta_errors_keep_the_spool_and_retry(
    make: Factory, lake: Path, spool: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # a foreign table where raw_samples should be: every commit fails with a schema mismatch
    path = edge_table_path(lake, "raw_samples")
    write_deltalake(str(path), pa.table({"x": [1]}))
    dl = make()
    await dl.start()
    for i in range(20):
        dl.add("raw_samples", sample(i))
    with caplog.at_level(logging.ERROR, "edge_collector.datalogger"):
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(dl.flush(), 1.5)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("edge schema" in m and "move it aside" in m for m in errors), errors
    assert dl.stats.spool_files_pending == 1 and dl.stats.rows_acknowledged == 20 and dl.stats.errors >= 1
    assert len(spool_files(spool)) == 1
    os.rename(path, path.with_name("raw_samples.foreign"))  # what the operator is told to do
    await asyncio.wait_for(dl.flush(), 20)
    assert table_of(lake).num_rows == 20 and spool_files(spool) == []


async def test_disk_full_during_commit_is_retried_with_backoff(
    make: Factory, lake: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """D7 (ENOSPC only) (RELIABILITY.md): Disk full during commit is retried with backoff."""
    attempts: list[float] = []

    def before_commit(table: str, version: int) -> None:
        attempts.append(time.monotonic())
        if len(attempts) <= 3:
            raise OSError(errno.ENOSPC, "No space left on device")

    dl = make(hooks=DataloggerHooks(before_commit=before_commit), flush_interval_s=0.02)
    await dl.start()
    for i in range(10):
        dl.add("raw_samples", sample(i))
    with caplog.at_level(logging.ERROR, "edge_collector.datalogger"):
        await until(lambda: dl.stats.rows_committed == 10, timeout=15)
    assert any("free disk space" in r.getMessage() for r in caplog.records)
    gaps = [b - a for a, b in itertools.pairwise(attempts)]
    assert gaps[1] > gaps[0] * 1.5  # capped exponential backoff, not a retry storm
    assert table_of(lake).num_rows == 10


async def test_close_leaves_nothing_pending(make: Factory, lake: Path, spool: Path) -> None:
    dl = make(flush_interval_s=60.0)
    await dl.start()
    for i in range(1234):
        dl.add("raw_samples", sample(i))
    dl.add(
        "gaps",
        {
            "line_id": "L1",
            "gap_start": T0,
            "gap_end": T0 + timedelta(seconds=5),
            "reason": "disconnected",
            "source_ts_before": None,
            "source_ts_after": None,
            "session_id": "s1",
            "seq": 1,
        },
    )
    await dl.close()
    assert table_of(lake).num_rows == 1234 and table_of(lake, "gaps").num_rows == 1
    assert spool_files(spool) == []
    s = dl.stats
    assert s.buffer_rows == 0 and s.spool_files_pending == 0 and s.rows_committed == s.rows_added == 1235
    with pytest.raises(RuntimeError):
        await dl.flush()


async def test_add_rejects_an_unknown_table(make: Factory) -> None:
    dl = make()
    with pytest.raises(ValueError, match="unknown"):
        dl.add("raw_sample", sample(1))


# ------------------------------------------------------------------------------------------ D3


async def test_d3_maintenance_during_ingest_keeps_exact_counts(make: Factory, lake: Path) -> None:
    """D3 (RELIABILITY.md): Maintenance during ingest keeps exact counts."""
    dl = make(flush_interval_s=0.03, compact_every_s=0.3, checkpoint_every_commits=10)
    await dl.start()
    path = str(edge_table_path(lake, "raw_samples"))
    stop = threading.Event()
    outside: dict[str, int] = {"compactions": 0, "failures": 0}

    def dagster_like_maintenance() -> None:  # another writer of the same table: compaction, checkpoint, vacuum
        dt = DeltaTable(path)
        while not stop.is_set():
            try:
                compact(lake, "raw_samples", wait_s=5)  # serialised with the datalogger's own compaction
                dt.update_incremental()
                dt.create_checkpoint()
                dt.vacuum(retention_hours=0, dry_run=False, enforce_retention_duration=False)
                outside["compactions"] += 1
            except Exception:  # noqa: BLE001 - a lost race is retried, like a Dagster retry
                outside["failures"] += 1
            stop.wait(0.2)

    worker = threading.Thread(target=dagster_like_maintenance)
    worker.start()
    produced = 0
    try:
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            for _ in range(100):
                dl.add("raw_samples", sample(produced))
                produced += 1
            await asyncio.sleep(0.01)
        with pytest.raises(VacuumRefused, match="stop the collector"):
            vacuum(lake, "raw_samples", full=True)
        vacuum(lake, "raw_samples", retention_hours=0, enforce_retention_duration=False)  # a normal one is fine
        await asyncio.wait_for(dl.flush(), 30)
    finally:
        stop.set()
        worker.join()
    await dl.close()
    data = DeltaTable(path).to_pyarrow_table()
    assert data.num_rows == produced == dl.stats.rows_committed
    assert len(set(data.column("seq").to_pylist())) == produced
    assert dl.stats.compactions >= 1 and dl.stats.checkpoints >= 1 and outside["compactions"] >= 1
    vacuum(lake, "raw_samples", full=True)  # allowed once the writer is gone (dry run)


async def test_spool_roundtrip_keeps_schema(tmp_path: Path) -> None:
    data, _ = build_batch("raw_samples", [sample(i) for i in range(3)])
    f = write_spool(tmp_path, "raw_samples", "edge-collector:x", 7, data)
    assert f.path.name == "000000000007.arrow" and f.rows == 3
    assert read_spool(f.path).equals(data)
    assert not list(tmp_path.glob("*.tmp"))
