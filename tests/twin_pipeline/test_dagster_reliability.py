"""O2 and O3 of shared/RELIABILITY.md against real Dagster services: a code server, a webserver and
a daemon (tests/support/dagster_services.py) on a DAGSTER_HOME whose dagster.yaml is the one `twin up`
writes (twin_pipeline/launcher/instance.py: pool limit 1, crash-only run retries, run monitoring), with
shorter monitoring and queue intervals so the test waits seconds, not minutes. The azure profile
against Azurite, so the landing asset exists; the lake is a copy of 40 simulated minutes of edge
tables written by the real simulator and collector.

The tests run in file order on one set of services (20-40 s to start on 2 shared cores); each run
worker costs 6-10 s of imports, and the daemon's backfill loop sleeps 2 s between iterations (30 s
outside the tests: tests/support/fast_backfill_loop/sitecustomize.py).
"""

from __future__ import annotations

import hashlib
import itertools
import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest
from dagster import AssetKey, DagsterInstance

from edge_collector.lake import MAINTENANCE_LOCK_NAME, WriterLock
from tests.support.azurite import KEY, Azurite, azurite
from tests.support.dagster_services import (
    WORKER_PID,
    Services,
    dagster_services,
    force_terminate,
    launch_run,
    wait_for,
)
from tests.support.fault_proxy import FaultProxy
from twin_pipeline.launcher.instance import POOL, InstanceSettings, ensure_instance
from twin_pipeline.lib.contracts import TABLES

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

#: Shorter than `twin up`'s (60 s / 30 s / 5 s) so the test waits seconds: the pass bounds come from these.
SETTINGS = InstanceSettings(free_slots_after_run_end_s=4, monitoring_poll_s=1, dequeue_interval_s=1)
DATA_SHIFT = "2026-11-24-0600"  # 40 minutes of data
EMPTY_SHIFT = "2026-11-23-1400"  # before the data, and not adjacent to DATA_SHIFT: its own backfill run
SHIFT_JOB = "shift_oee"
MAINTENANCE_JOB = "delta_maintenance"
#: The steps in pool delta_local (op name = asset key joined by "__").
POOL_STEPS = {"maintenance__edge_tables", "maintenance__lake_tables", "landing__raw_samples"}
CONTAINER = "landing-o2o3"
STEP = "maintenance__edge_tables"


@dataclass
class Twin:
    services: Services
    lake: Path
    azurite: Azurite
    link: FaultProxy  # between the landing asset and Azurite


@pytest.fixture(scope="module")
def twin(edge_lake: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Twin]:
    tmp = tmp_path_factory.mktemp("o2o3")
    (tmp / "azurite").mkdir()
    home = tmp / "twin"
    shutil.copytree(edge_lake, home / "lake")
    assert ensure_instance(tmp / "dagster_home", SETTINGS) == "written"
    with azurite(tmp / "azurite") as emulator, FaultProxy(emulator.port) as link:
        env = {
            "TWIN_HOME": str(home),
            "TWIN_PROFILE": "azure",
            "AZURE_STORAGE_ACCOUNT_URL": emulator.url(link.port),
            "AZURE_STORAGE_ACCOUNT": "devstoreaccount1",
            "AZURE_STORAGE_KEY": KEY,
            # bronze reads the landed raw zone through object_store: Azurite too, through the same link
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{link.port}",
            "TWIN_LANDING_CONTAINER": CONTAINER,
            "TWIN_OEE_ENGINE": "polars",
            # partitions begin at the first shift with data; O2b backfills an empty shift before it too
            "TWIN_FIRST_SHIFT": EMPTY_SHIFT,
            # the run-retry daemon looks for failed runs every 5 s by default
            "DAGSTER_EVENT_LOG_CONSUMER_DAEMON_INTERVAL_SECONDS": "1",
        }
        started = time.monotonic()
        with dagster_services(
            tmp / "dagster_home",
            env,
            tmp / "logs",
            ["landing/raw_samples", "maintenance/edge_tables", "gold/fact_oee_shift"],
        ) as services:
            print(f"\nservices up in {time.monotonic() - started:.1f} s (logs: {tmp / 'logs'})")
            yield Twin(services, home / "lake", emulator, link)


# ------------------------------------------------------------------------------------------------ helpers


def _events(services: Services, run_id: str) -> list:
    return services.instance().all_logs(run_id)


def _status(services: Services, run_id: str) -> str:
    return services.instance().get_run_by_id(run_id).status.value


def _step_started(services: Services, run_id: str, step: str) -> bool:
    return any(
        e.dagster_event and e.dagster_event.event_type_value == "STEP_START" and e.step_key == step
        for e in _events(services, run_id)
    )


def _worker_pid(services: Services, run_id: str) -> int | None:
    for event in _events(services, run_id):
        match = WORKER_PID.search(event.message or "")
        if match:
            return int(match.group(1))
    return None


def _wait_done(services: Services, run_ids: list[str], timeout: float = 150.0) -> dict[str, str]:
    done = {"SUCCESS", "FAILURE", "CANCELED"}
    wait_for(
        f"runs {run_ids} finished", lambda: all(_status(services, r) in done for r in run_ids), timeout, services, 0.5
    )
    return {r: _status(services, r) for r in run_ids}


def _pool_intervals(services: Services, run_id: str) -> list[tuple[str, str, float, float]]:
    """(run, step, start, end) of each pool step the run executed, from its step events."""
    start: dict[str, float] = {}
    out = []
    for e in _events(services, run_id):
        kind = e.dagster_event.event_type_value if e.dagster_event else None
        if e.step_key in POOL_STEPS and kind == "STEP_START":
            start[e.step_key] = e.timestamp
        elif e.step_key in POOL_STEPS and kind in ("STEP_SUCCESS", "STEP_FAILURE"):
            out.append((run_id[:8], e.step_key, start[e.step_key], e.timestamp))
    return out


def _claims(services: Services) -> list[tuple[str, str]]:
    info = services.instance().event_log_storage.get_concurrency_info(POOL)
    return [(c.run_id, c.step_key) for c in info.claimed_slots]


def _steps(services: Services, run_id: str, kind: str) -> list[str]:
    return [
        e.step_key for e in _events(services, run_id) if e.dagster_event and e.dagster_event.event_type_value == kind
    ]


def _children(services: Services, run_id: str) -> list[str]:
    """Runs re-executing `run_id` (its automatic retries)."""
    from dagster import RunsFilter

    return [r.run_id for r in services.instance().get_runs(filters=RunsFilter(tags={"dagster/parent_run_id": run_id}))]


def _step_start_time(services: Services, run_id: str, step: str) -> float:
    return next(
        e.timestamp
        for e in _events(services, run_id)
        if e.dagster_event and e.dagster_event.event_type_value == "STEP_START" and e.step_key == step
    )


def _pending(services: Services) -> list[tuple[str, str]]:
    info = services.instance().event_log_storage.get_concurrency_info(POOL)
    return [(p.run_id, p.step_key) for p in info.pending_steps if p.assigned_timestamp is None]


def _shift_content(lake: Path, shift_id: str) -> dict[str, tuple[int, str]]:
    """Rows and SHA-256 (sorted on every column) of `shift_id` in each pipeline table that has it."""
    out = {}
    for table in TABLES:
        path = lake / table
        if not (path / "_delta_log").exists():
            continue
        frame = pl.read_delta(str(path))
        if "shift_id" in frame.columns:
            frame = frame.filter(pl.col("shift_id") == shift_id)
        elif table.startswith("gold/dim_"):
            continue  # dimensions are not per shift (and not in the shift job)
        if frame.height:
            out[table] = (frame.height, hashlib.sha256(frame.sort(pl.all()).write_csv().encode()).hexdigest())
    return out


# ------------------------------------------------------------------------------------------------ O3


def test_o3_maintenance_and_landing_never_overlap_and_a_force_cancelled_run_frees_its_slot(twin: Twin) -> None:
    """O3 (RELIABILITY.md): maintenance (compaction + vacuum of edge and lake tables) and the landing upload,
    both in pool delta_local with limit 1 from the dagster.yaml twin up writes, launched together: their
    pool steps never overlap (step start/end events). The maintenance step is held inside the edge
    compaction by the collector's maintenance lock (as a long compaction of the running collector would),
    so a landing step that ignored the pool would start meanwhile; it waits for the slot instead. Then a
    maintenance run stuck in its pool step is force-terminated: its slot is free well within
    free_slots_after_run_end_seconds (the interrupted step gives it back; the slot of a run whose process
    died, which only the daemon can free, is the O2a test's)."""
    s, web = twin.services, twin.services.web
    lock = WriterLock(twin.lake / "edge" / MAINTENANCE_LOCK_NAME)
    lock.acquire("O3 test: keep the maintenance step inside the edge compaction")
    try:
        maintenance = launch_run(web, MAINTENANCE_JOB)
        landing = launch_run(web, SHIFT_JOB, ["landing/raw_samples"], {"dagster/partition": DATA_SHIFT})
        wait_for("the maintenance step started", lambda: _step_started(s, maintenance, STEP), 90, s)
        assert _claims(s) == [(maintenance, STEP)]
        info = s.instance().event_log_storage.get_concurrency_info(POOL)
        assert (info.slot_count, info.using_default_limit) == (1, True)  # the limit comes from dagster.yaml
        # op granularity (Dagster's default): the landing run starts, its pool step asks for the slot and waits
        # it waits in one of two places, depending on whether the run queue dequeued it before the maintenance
        # step took the slot: its step asks for the slot in a started run, or the queue holds the run (Dagster
        # keeps a run whose pool is full queued)
        wait_for(
            "the landing step waiting for the slot, or its run held in the queue",
            lambda: (landing, "landing__raw_samples") in _pending(s) or _status(s, landing) == "QUEUED",
            90,
            s,
            0.2,
        )
        time.sleep(3.0)  # the queue is evaluated and a claim retried about every second: both keep refusing
        assert not _step_started(s, landing, "landing__raw_samples"), f"landing ran while maintenance held {POOL}"
        assert _claims(s) == [(maintenance, STEP)]
    finally:
        lock.release()
    statuses = _wait_done(s, [maintenance, landing])
    assert statuses == {maintenance: "SUCCESS", landing: "SUCCESS"}, s.logs()
    intervals = sorted(_pool_intervals(s, maintenance) + _pool_intervals(s, landing), key=lambda i: i[2])
    for run, step, start, end in intervals:
        print(f"  {run} {step:28s} {start:.2f} .. {end:.2f} ({end - start:.2f} s)")
    assert {i[1] for i in intervals} == POOL_STEPS
    gaps = [b[2] - a[3] for a, b in itertools.pairwise(intervals)]
    assert all(g >= 0 for g in gaps), f"pool steps overlap: {intervals}"
    starts = {step: start for _, step, start, _ in intervals}
    print(
        f"O3: {len(intervals)} pool steps, never overlapping (gaps {', '.join(f'{g:.2f}' for g in gaps)} s); the "
        f"landing step started {starts['landing__raw_samples'] - starts[STEP]:.1f} s after the maintenance step"
    )
    report = (
        s.instance()
        .get_latest_materialization_event(AssetKey(["maintenance", "edge_tables"]))
        .asset_materialization.metadata
    )
    print(f"edge maintenance: {report['report'].value}")
    assert report["files_compacted"].value > 0  # the collector's small files were really compacted

    # a maintenance run stuck in its pool step (in the lock), force-terminated as from the UI
    lock.acquire("O3 test: keep the maintenance step inside the edge compaction")
    try:
        stuck = launch_run(web, MAINTENANCE_JOB, ["maintenance/edge_tables"])
        wait_for("the maintenance step started", lambda: _step_started(s, stuck, STEP), 90, s)
        assert _claims(s) == [(stuck, STEP)]
        answer = force_terminate(web, stuck)
        assert answer["__typename"] == "TerminateRunSuccess", answer
        wait_for("the run marked CANCELED", lambda: _status(s, stuck) == "CANCELED", 30, s)
        cancelled = s.instance().get_run_record_by_id(stuck).end_time
        wait_for("the slot freed", lambda: not _claims(s), SETTINGS.free_slots_after_run_end_s + 30, s, 0.1)
        freed_after_cancel = time.time() - cancelled
    finally:
        lock.release()
    print(
        f"O3: the force-cancelled run's slot was free {freed_after_cancel:.1f} s after it was marked CANCELED "
        f"(free_slots_after_run_end_seconds={SETTINGS.free_slots_after_run_end_s}, monitoring poll "
        f"{SETTINGS.monitoring_poll_s} s)"
    )
    assert freed_after_cancel <= SETTINGS.free_slots_after_run_end_s + SETTINGS.monitoring_poll_s + 2
    time.sleep(2)
    assert _children(s, stuck) == []  # a cancelled run is not retried


# ------------------------------------------------------------------------------------------------ O2


@pytest.fixture(scope="module")
def clean(twin: Twin, tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str]]:
    """DATA_SHIFT's rows in every table of the shift job after one clean in-process run of that job on a
    copy of the lake (local profile: the same job without the landing upload)."""
    import dagster as dg

    from twin_pipeline.definitions import defs

    home = tmp_path_factory.mktemp("clean")
    shutil.copytree(twin.lake, home / "lake", ignore=shutil.ignore_patterns(".*.lock"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("TWIN_HOME", str(home))
        mp.setenv("TWIN_PROFILE", "local")
        result = (
            defs()
            .resolve_job_def(SHIFT_JOB)
            .execute_in_process(partition_key=DATA_SHIFT, instance=dg.DagsterInstance.ephemeral())
        )
    assert result.success
    content = _shift_content(home / "lake", DATA_SHIFT)
    assert {"bronze/samples", "silver/state_intervals", "gold/fact_oee_shift"} <= set(content)
    return content


def test_o2a_a_run_worker_killed_mid_asset_is_retried_into_identical_output(twin: Twin, clean: dict) -> None:
    """O2 (RELIABILITY.md) (a): the shift job's run worker is SIGKILLed mid-asset: inside the landing upload,
    whose link to the storage the fault proxy blackholes first (so the step cannot finish before the kill).
    The code server records the crash, the crash-only run retry of the dagster.yaml twin up writes
    re-executes from the failed step, and the retried run succeeds with every table's rows for the shift
    identical (count and SHA-256) to a clean run's; nothing appended twice; one landed object per edge table.
    O3 too: the dead worker never gave back its delta_local slot; the daemon frees it
    free_slots_after_run_end_seconds after the run ended (not before, not much later), then the retry's
    landing step gets it."""
    from twin_pipeline.lib.integrations.landing import client_for
    from twin_pipeline.lib.raw_zone import TABLES as RAW_TABLES
    from twin_pipeline.lib.raw_zone import object_name
    from twin_pipeline.lib.settings import DEFAULT_EDGE_ID

    s, web = twin.services, twin.services.web
    twin.link.blackhole()
    try:
        first = launch_run(web, SHIFT_JOB, tags={"dagster/partition": DATA_SHIFT})
        # the first landing step to get the pool slot (one per edge table) hangs on the blackholed link
        steps = [f"landing__{table}" for table in RAW_TABLES]
        victim = wait_for(
            "a landing step started", lambda: next((st for st in steps if _step_started(s, first, st)), None), 120, s
        )
        os.kill(_worker_pid(s, first), signal.SIGKILL)
        killed = time.time()
    finally:
        twin.link.restore()
    wait_for("the killed run marked FAILURE", lambda: _status(s, first) == "FAILURE", 30, s)
    ended = s.instance().get_run_record_by_id(first).end_time
    done_before = sorted(_steps(s, first, "STEP_SUCCESS"))
    assert victim not in done_before
    assert _claims(s) == [(first, victim)]  # held by a dead process
    wait_for(
        "the slot freed", lambda: _claims(s) != [(first, victim)], SETTINGS.free_slots_after_run_end_s + 30, s, 0.1
    )
    freed_after = time.time() - ended
    retry = wait_for("its retry", lambda: _children(s, first), 60, s)[0]
    statuses = _wait_done(s, [retry])
    assert statuses[retry] == "SUCCESS", s.logs()
    run = s.instance().get_run_by_id(retry)
    assert run.tags.get("dagster/retry_number") == "1" and run.root_run_id == first
    assert _children(s, retry) == []
    redone = sorted(_steps(s, retry, "STEP_SUCCESS"))
    assert not set(redone) & set(done_before)  # from the failure: what succeeded is not run again
    assert victim in redone
    assert _step_start_time(s, retry, victim) >= ended + freed_after - 0.5
    after = _shift_content(twin.lake, DATA_SHIFT)
    print(
        f"O2a: killed inside {victim} after {len(done_before)} finished steps ({', '.join(done_before)}); its "
        f"slot freed {freed_after:.1f} s after the run ended (free_slots_after_run_end_seconds="
        f"{SETTINGS.free_slots_after_run_end_s}); retry done {time.time() - killed:.1f} s after the kill, "
        f"{len(redone)} steps re-executed"
    )
    for table, (rows, digest) in sorted(clean.items()):
        mine = after.get(table, (0, ""))
        print(f"  {table:28s} clean {rows:6d} rows {digest[:12]}  retried {mine[0]:6d} rows {mine[1][:12]}")
    assert after == clean
    container = client_for(
        twin.azurite.url(), {"account_name": "devstoreaccount1", "account_key": KEY}
    ).get_container_client(CONTAINER)
    assert sorted(b.name for b in container.list_blobs()) == sorted(
        object_name(table, DATA_SHIFT, DEFAULT_EDGE_ID) for table in RAW_TABLES
    )
    assert SETTINGS.free_slots_after_run_end_s - 0.5 <= freed_after  # not before the configured delay ...
    # ... nor long after: the daemon counts from the run's last update (the retry daemon tags it after the end)
    assert freed_after <= SETTINGS.free_slots_after_run_end_s + SETTINGS.monitoring_poll_s + 10


BACKFILL_ASSETS = ["bronze/samples", "silver/state_intervals", "silver/part_counts"]


def test_o2b_a_daemon_killed_mid_backfill_completes_it_without_duplicate_runs_or_rows(twin: Twin, clean: dict) -> None:
    """O2 (RELIABILITY.md) (b): an asset backfill of two shift partitions (not adjacent, so one run each under
    the single-run backfill policy); the daemon is SIGKILLed as soon as the backfill's first run exists (in
    the middle of the iteration that submits them) and restarted. The backfill reaches COMPLETED_SUCCESS,
    with exactly one run per partition, each asset materialized once per partition, and the data shift's
    rows identical to a clean run's (nothing appended twice)."""
    from dagster import RunsFilter

    from tests.twin_pipeline.test_graphql_backfill import LAUNCH, _summary, _wait_for_backfill

    s, web = twin.services, twin.services.web
    launched = web.graphql(
        LAUNCH,
        {
            "params": {
                "assetSelection": [{"path": key.split("/")} for key in BACKFILL_ASSETS],
                "partitionNames": [EMPTY_SHIFT, DATA_SHIFT],
                "fromFailure": False,
                "title": "O2b",
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill_id = launched["backfillId"]
    started = time.monotonic()  # the running daemon takes it up within its 2 s loop

    def runs() -> list:
        return s.instance().get_runs(filters=RunsFilter(tags={"dagster/backfill": backfill_id}))

    wait_for("the backfill's first run", runs, 120, s, 0.1)
    s.kill_daemon()
    at_kill = [(r.run_id[:8], r.status.value) for r in runs()]
    s.start_daemon()
    backfill = _wait_for_backfill(web, backfill_id, timeout=180)
    took = time.monotonic() - started
    print(
        f"O2b: daemon killed with {len(at_kill)} run(s) submitted {at_kill}; backfill {backfill['status']} "
        f"{took:.1f} s after launch: {_summary(backfill)}"
    )
    assert backfill["status"] == "COMPLETED_SUCCESS", f"{_summary(backfill)}; {_failures(s.instance(), runs())}"
    final = runs()
    spans = sorted(
        (
            r.tags.get("dagster/asset_partition_range_start") or r.tags.get("dagster/partition"),
            r.tags.get("dagster/asset_partition_range_end") or r.tags.get("dagster/partition"),
        )
        for r in final
    )
    assert spans == [(EMPTY_SHIFT, EMPTY_SHIFT), (DATA_SHIFT, DATA_SHIFT)], spans  # one run per partition
    assert all(r.status.value == "SUCCESS" for r in final)
    run_ids = {r.run_id for r in final}
    for key in BACKFILL_ASSETS:
        records = s.instance().fetch_materializations(AssetKey(key.split("/")), limit=1000).records
        partitions = sorted(r.partition_key for r in records if r.run_id in run_ids)
        assert partitions == sorted([EMPTY_SHIFT, DATA_SHIFT]), (key, partitions)  # once each
    after = _shift_content(twin.lake, DATA_SHIFT)
    for table in ("bronze/samples", "silver/state_intervals", "silver/part_counts"):
        assert after[table] == clean[table], table


def _failures(instance: DagsterInstance, runs: list) -> str:
    """The step errors of the failed runs, for the assertion message."""
    out = []
    for run in runs:
        for record in instance.all_logs(run.run_id):
            event = record.dagster_event
            if event is not None and event.is_step_failure:
                error = getattr(event.event_specific_data, "error", None)
                out.append(f"{run.run_id[:8]} {record.step_key}: {error.to_string() if error else record.message}")
    return "\n".join(out) or "no step failed"
