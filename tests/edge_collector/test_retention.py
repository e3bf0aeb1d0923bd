"""Edge retention against real Delta edge tables: only old days that landing receipts wholly cover are
pruned (and their files deleted), an unlanded or partly landed day stays with its reason, open outages
keep their gaps day, the manifest is never pruned; metrics, the CLI, and pruning beside a running
datalogger."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from prometheus_client import generate_latest

from edge_collector import receipts as rc
from edge_collector.cli import EXAMPLE, main
from edge_collector.config import ConfigError, parse_config
from edge_collector.datalogger import Datalogger
from edge_collector.lake.maintenance import prune
from edge_collector.metrics import registry_for
from edge_collector.pruner import Pruner
from edge_collector.schemas import edge_table_path
from tests.support.edge_seed import append

DAY0 = datetime(2026, 11, 20, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)  # retention 3: days before 2026-11-27 are old enough
DAYS = ["2026-11-20", "2026-11-21", "2026-11-22", "2026-11-23"]


def at(day: int, hour: float) -> datetime:
    return DAY0 + timedelta(days=day, hours=hour)


def sample(ts: datetime, seq: int) -> dict:
    return {
        "line_id": "L1",
        "tag": "Admin.ProdProcessedCount",
        "source_ts": ts,
        "received_ts": ts,
        "value": float(seq),
        "status_code": 0,
        "session_id": "s1",
        "seq": seq,
    }


def windows(first: datetime, count: int) -> list[tuple[datetime, datetime]]:
    """`count` contiguous 8-hour shifts from `first`."""
    return [(first + timedelta(hours=8 * i), first + timedelta(hours=8 * (i + 1))) for i in range(count)]


def land(lake: Path, shifts: list[tuple[datetime, datetime]]) -> None:
    """Receipts as the landing records them: per table and shift, the edge rows `in_window` gives now."""
    out = []
    for table in rc.LANDED_TABLES:
        path = edge_table_path(lake, table)
        frame = pl.read_delta(str(path)) if path.exists() else pl.DataFrame(schema={"day": pl.String})
        for start, end in shifts:
            rows = frame.filter(rc.in_window(table, start, end)) if frame.height else frame
            per_day = rows.group_by("day").len()
            out.append(
                rc.Receipt(
                    table,
                    "edge-a",
                    f"{start:%Y-%m-%d-%H%M}",
                    start,
                    end,
                    f"raw/{table}/{start:%Y%m%d%H}",
                    "0" * 64,
                    rows.height,
                    100,
                    dict(zip(per_day["day"].to_list(), per_day["len"].to_list(), strict=True)),
                    end,
                )
            )
    rc.record(lake, out)


def build(lake: Path) -> None:
    """Four days of one line: samples every 8 h; an event, a quarantine row; a closed outage on day 0 and
    an open-ended one (the collector stopped) on day 1; the manifest on day 0."""
    append(
        lake, "raw_samples", [sample(at(d, h), 10 * d + i) for d in range(4) for i, h in enumerate((1, 9, 17, 23.5))]
    )
    append(
        lake,
        "injected_events",
        [
            {
                "line_id": "L1",
                "event_ts": at(1, 10),
                "kind": "fault_start",
                "distribution": "weibull",
                "params": "{}",
                "seed": 1,
                "session_id": "s1",
                "seq": 1,
            }
        ],
    )
    append(lake, "quarantine", [{"received_ts": at(0, 5), "reason": "non_finite", "session_id": "s1", "seq": 1}])
    gap = {"line_id": "L1", "reason": "disconnected", "session_id": "s1"}
    append(
        lake,
        "gaps",
        [
            {
                **gap,
                "gap_start": at(0, 3),
                "gap_end": at(0, 3.2),
                "source_ts_before": at(0, 3),
                "source_ts_after": at(0, 3.2),
                "seq": 1,
            },
            {
                **gap,
                "gap_start": at(1, 12),
                "gap_end": at(1, 12.5),
                "source_ts_before": at(1, 12),
                "source_ts_after": None,
                "seq": 2,
            },
        ],
    )
    append(
        lake,
        "subscriptions",
        [
            {
                "line_id": "L1",
                "tag": "Admin.ProdProcessedCount",
                "node_id": "ns=4;s=x",
                "since_ts": at(0, 0.5),
                "status": "subscribed",
                "session_id": "s1",
                "seq": 1,
            }
        ],
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    lake = tmp_path_factory.mktemp("edge") / "lake"
    build(lake)
    return lake


@pytest.fixture
def lake(built: Path, tmp_path: Path) -> Iterator[Path]:
    copy = tmp_path / "lake"
    shutil.copytree(built, copy)
    old = time.time() - 3600  # written an hour ago (files younger than the pass may be an append in flight)
    for file in copy.rglob("*.parquet"):
        os.utime(file, (old, old))
    yield copy


def days(lake: Path, table: str) -> list[str]:
    return sorted(set(pl.read_delta(str(edge_table_path(lake, table)))["day"].to_list()))


def test_only_old_days_wholly_landed_are_pruned_and_their_files_deleted(lake: Path) -> None:
    land(lake, windows(at(0, 0), 8))  # landed up to day 2, 16:00 (its last shift is not)
    assert rc.read(lake).height == 5 * 8
    land(lake, windows(at(0, 0), 8))  # landing the same shifts again: still one receipt each
    assert rc.read(lake).height == 5 * 8
    assert not prune(lake, 10, now=NOW).plan.days  # nothing is older than 10 days
    report = prune(lake, 3, now=NOW)
    pruned = {d.day: d.tables for d in report.plan.days if d.pruned}
    assert pruned == {
        "2026-11-20": ["raw_samples", "quarantine", "gaps"],
        "2026-11-21": ["raw_samples", "injected_events"],  # its gaps day holds an open outage: kept
    }
    kept = {d.day: sorted(set(d.kept.values())) for d in report.plan.days if not d.pruned}
    assert set(kept) == {"2026-11-22", "2026-11-23"}
    assert "landed until 2026-11-22 16:00 UTC" in kept["2026-11-22"][0]
    assert report.plan.landed_until == at(2, 16)
    assert (report.days_pruned, report.rows_pruned, report.days_kept_unlanded) == (2, 4 + 1 + 1 + 4 + 1, 2)
    assert report.bytes_pruned > 0 and report.files_deleted >= 5
    assert days(lake, "raw_samples") == DAYS[2:]
    assert days(lake, "gaps") == ["2026-11-21"] and days(lake, "injected_events") == []
    assert days(lake, "subscriptions") == ["2026-11-20"]  # the manifest in force stays
    for table in ("raw_samples", "quarantine", "gaps"):
        assert not (edge_table_path(lake, table) / "day=2026-11-20").exists()  # the disk is freed now
    assert set(rc.pruned_days(lake)) == {"2026-11-20", "2026-11-21"}
    assert rc.touches_pruned(lake, at(0, 22), at(1, 6)) == ["2026-11-20", "2026-11-21"]
    again = prune(lake, 3, now=NOW)
    assert again.days_pruned == 0 and [d.day for d in again.plan.days] == ["2026-11-21", *DAYS[2:]]


def test_a_day_with_rows_landed_late_or_never_landed_stays(lake: Path) -> None:
    land(lake, windows(at(0, 8), 6))  # from day 0, 08:00: its 01:00 sample was never landed
    report = prune(lake, 3, now=NOW)
    day0 = report.plan.days[0]
    assert day0.day == "2026-11-20" and not day0.pruned
    assert "1 raw_samples rows lie before the first landed shift" in day0.kept["raw_samples"]
    assert [d.day for d in report.plan.days if d.pruned] == ["2026-11-21"]
    land(lake, windows(at(0, 0), 12))  # now every shift of the four days is landed
    append(lake, "raw_samples", [sample(at(2, 4), 100)])  # a row of a landed shift, committed after it (late spool)
    late = prune(lake, 3, now=NOW)
    assert [d.day for d in late.plan.days if d.pruned] == ["2026-11-20", "2026-11-23"]
    day2 = next(d for d in late.plan.days if d.day == "2026-11-22")
    assert "1 raw_samples rows of shift 2026-11-22-0000 arrived after it was landed" in day2.kept["raw_samples"]
    assert "re-land that shift" in day2.kept["raw_samples"]
    land(lake, windows(at(0, 0), 12))  # re-landed with the late row: now the day goes
    assert [d.day for d in prune(lake, 3, now=NOW).plan.days if d.pruned] == ["2026-11-22"]
    assert days(lake, "raw_samples") == []


def test_metrics_show_what_pruning_did_and_how_far_the_edge_is_landed(lake: Path) -> None:
    pruner = Pruner(lake, 3, every_s=3600)
    before = pruner.snapshot()
    assert before["retention_days_pruned"] == 0 and before["landed_until_seconds"] == 0.0
    land(lake, windows(at(0, 0), 8))
    pruner.run_once(NOW)
    snap = pruner.snapshot()
    assert snap["retention_days_pruned"] == 2 and snap["retention_rows_pruned"] == 11
    assert snap["retention_days_kept_unlanded"] == 2 and snap["landed_until_seconds"] == at(2, 16).timestamp()
    assert snap["retention_bytes_pruned"] > 0 and snap["retention_last_run_seconds"] > 0
    text = generate_latest(registry_for(pruner.snapshot)).decode()
    assert "edge_collector_retention_days_pruned_total 2.0" in text
    values = {line.split()[0]: float(line.split()[1]) for line in text.splitlines() if not line.startswith("#")}
    assert values["edge_collector_landed_until_seconds"] == at(2, 16).timestamp()
    assert values["edge_collector_retention_days_kept_unlanded"] == 2


def test_the_cli_prunes_with_reasons_and_retention_is_off_by_default(
    lake: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert parse_config(EXAMPLE).datalogger.retention_days == 0
    with pytest.raises(ConfigError, match="retention_days"):
        parse_config("[datalogger]\nretention_days = -1\n")
    assert main(["prune", "--lake", str(lake)]) == 2
    assert "retention is off" in capsys.readouterr().err
    land(lake, windows(at(0, 0), 8))
    assert main(["prune", "--lake", str(lake), "--retention-days", "3", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "landed until 2026-11-22 16:00 UTC" in out and "2026-11-20: pruned raw_samples" in out
    assert "would prune 2 day(s), 11 rows" in out and "2026-11-23: kept: not landed" in out
    assert days(lake, "raw_samples") == DAYS  # a dry run deletes nothing
    assert main(["prune", "--lake", str(lake), "--retention-days", "3"]) == 0
    assert "pruned 2 day(s)" in capsys.readouterr().out and days(lake, "raw_samples") == DAYS[2:]
    assert json.loads((lake / "edge" / rc.PRUNED_FILE).read_text())["days"]["2026-11-20"]["rows"] == 6


def test_pruning_beside_a_running_datalogger_loses_no_new_row(lake: Path, tmp_path: Path) -> None:
    """The collector's datalogger keeps appending (and compacting) while a pass prunes old days."""
    land(lake, windows(at(0, 0), 8))

    async def run() -> None:
        logger = Datalogger(lake, tmp_path / "spool", "edge-a", flush_interval_s=0.05, compact_every_commits=3)
        await logger.start()
        try:
            now = datetime.now(UTC)
            pruning = asyncio.create_task(asyncio.to_thread(prune, lake, 3, now=NOW))
            for i in range(20):
                logger.add("raw_samples", sample(now + timedelta(seconds=i), 1000 + i))
                await logger.flush()
            report = await pruning
            assert report.days_pruned == 2
        finally:
            await logger.close()

    asyncio.run(run())
    frame = pl.read_delta(str(edge_table_path(lake, "raw_samples")))
    assert frame.filter(pl.col("seq") >= 1000).height == 20
    assert frame.filter(pl.col("seq") < 1000).height == 8 and frame["day"].min() == "2026-11-22"


def test_the_collector_prunes_only_when_retention_is_configured(tmp_path: Path) -> None:
    from edge_collector.collector import Collector

    where = f'[collector]\nlake = "{tmp_path / "lake"}"\nspool = "{tmp_path / "spool"}"\n'
    on = Collector(parse_config(where + "[datalogger]\nretention_days = 3\nprune_every_s = 60\n"))
    assert on.pruner is not None and (on.pruner.retention_days, on.pruner.every_s) == (3, 60)
    assert on.metrics_snapshot()["retention_days_pruned"] == 0
    off = Collector(parse_config(where))
    assert off.pruner is None and "retention_days_pruned" not in off.metrics_snapshot()


def test_the_collectors_pass_runs_soon_after_the_start_and_survives_a_failure(
    lake: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import edge_collector.pruner as pruner_module

    monkeypatch.setattr(pruner_module, "FIRST_PASS_S", 0.05)
    land(lake, windows(at(0, 0), 8))
    pruner = Pruner(lake, 3, every_s=0.05)
    calls: list[int] = []
    real = pruner_module.prune

    def flaky(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 1:
            raise OSError("disk hiccup")
        return real(*args, now=NOW)  # type: ignore[arg-type]  # the test's clock

    monkeypatch.setattr(pruner_module, "prune", flaky)

    async def run() -> None:
        task = asyncio.create_task(pruner.run())
        for _ in range(600):
            await asyncio.sleep(0.05)
            if pruner.stats.days_pruned:
                break
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run())
    assert pruner.stats.failures == 1 and pruner.stats.days_pruned == 2 and len(calls) >= 2
    assert pruner.snapshot()["landed_until_seconds"] == at(2, 16).timestamp()
