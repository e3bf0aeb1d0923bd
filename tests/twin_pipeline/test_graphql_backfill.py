"""End to end: backfill past shifts through Dagster's GraphQL API against a real `dagster dev`
(webserver + daemon + code server from workspace.yaml), over edge tables written by the real
simulator and collector, then read gold from the lake and the asset checks from GraphQL.

Where the time goes (2 cores): `dagster dev` answers in about 20 s; the backfill daemon evaluates
backfills every 30 s (hard-coded, `DEFAULT_DAEMON_INTERVAL_SECONDS`), here every 2 s
(tests/support/fast_backfill_loop/sitecustomize.py). The code location's default
executor is in-process (with Dagster's multiprocess default every step and check starts its own
Python process, about 8 s each here). Every shift asset maps shifts one to one and has a single-run
backfill policy, so the named shifts are exactly the shifts materialized.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from tests.support.dagster_dev import DagsterDev, write_dagster_home

ROOT = Path(__file__).resolve().parents[2]
LOCATION = "twin_pipeline"
SHIFTS = ["2026-11-23-2200", "2026-11-24-0600"]  # the night before (no data) and the early shift (40 min of data)
DATA_SHIFT = "2026-11-24-0600"
ASSETS = ["bronze/samples", "silver/state_intervals", "silver/part_counts", "gold/fact_oee_shift"]
#: The run queue's default dequeue interval is 5 s; 1 s saves a few seconds per run.
INSTANCE_YAML = "run_queue:\n  dequeue_interval_seconds: 1\n"
#: An ERROR/CRITICAL line of dagster dev's processes (coloredlogs wraps the level in colour codes), or a traceback:
#: a sensor, schedule or daemon that fails, not only a failed run.
LOG_ERROR = re.compile(r" - (?:\x1b\[[\d;]*m)?(?:ERROR|CRITICAL)(?:\x1b\[0m)? - |Traceback \(most recent call last\)")
BACKFILL_DONE = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

LAUNCH = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

BACKFILL = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill {
      id status isAssetBackfill numPartitions partitionNames
      error { message }
      runs { runId status assetSelection { path } tags { key value } }
    }
    ... on Error { message }
  }
}"""

CHECKS = """
query Checks($keys: [AssetKeyInput!]) {
  assetNodes(assetKeys: $keys) {
    assetKey { path }
    assetChecksOrError { __typename ... on AssetChecks { checks { name } } }
  }
}"""

CHECK_EXECUTIONS = """
query Executions($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 100) {
    runId status partition
    evaluation { success severity partition
      metadataEntries { label ... on TextMetadataEntry { text } ... on IntMetadataEntry { intRepr } } }
  }
}"""


@pytest.fixture
def dagster_dev(edge_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """`dagster dev` over a copy of the edge lake: TWIN_HOME=<tmp>/twin, the lake at <tmp>/twin/lake."""
    twin_home = tmp_path / "twin"
    shutil.copytree(edge_lake, twin_home / "lake")
    monkeypatch.delenv(
        "TWIN_SHIFTS", raising=False
    )  # the repository's calendar (twin_pipeline/lib/calendar/shifts.toml)
    dev = DagsterDev(
        ROOT / "workspace.yaml",
        cwd=ROOT,
        dagster_home=write_dagster_home(tmp_path / "dagster_home", INSTANCE_YAML),
        log_path=tmp_path / "dagster_dev.log",
        env={"TWIN_HOME": str(twin_home), "TWIN_PROFILE": "local"},
    )
    try:
        dev.start_and_wait(timeout=120)
        yield dev
    finally:
        # SIGINT to the process group stops it here, in 2.6-6.4 s (started in its own session with SIGINT
        # restored; SIGTERM and SIGKILL are only fallbacks). `stop()` raises if a process of the session is left.
        stopped_by = dev.stop(grace_s=20.0)
        print(f"dagster dev stopped by {stopped_by} in {dev.timings.get('stop_s', 0):.1f} s (log: {dev.log_path})")
    assert stopped_by in ("SIGINT", "SIGTERM"), f"dagster dev needed {stopped_by}; log tail:\n{dev.log_tail()}"


def _wait_for_backfill(dev: DagsterDev, backfill_id: str, timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    backfill: dict[str, Any] = {}
    while time.monotonic() < deadline:
        backfill = dev.graphql(BACKFILL, {"id": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] in BACKFILL_DONE:
            return backfill
        if dev.proc.poll() is not None:
            pytest.fail(f"dagster dev exited ({dev.proc.returncode}) during the backfill; log tail:\n{dev.log_tail()}")
        time.sleep(0.5)
    pytest.fail(
        f"backfill {backfill_id} not done within {timeout:.0f} s: {_summary(backfill)}\nlog tail:\n{dev.log_tail(6000)}"
    )


def _summary(backfill: dict[str, Any]) -> str:
    runs = []
    for run in backfill.get("runs") or []:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        span = (
            f"{tags.get('dagster/asset_partition_range_start')}...{tags.get('dagster/asset_partition_range_end')}"
            if "dagster/asset_partition_range_start" in tags
            else tags.get("dagster/partition")
        )
        assets = ",".join("/".join(a["path"]) for a in run["assetSelection"] or [])
        runs.append(f"{run['runId'][:8]} {run['status']} [{assets}] {span}")
    return f"status {backfill.get('status')}, error {backfill.get('error')}, runs: {'; '.join(runs) or 'none'}"


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_backfill_of_past_shifts_through_graphql(dagster_dev: DagsterDev, tmp_path: Path) -> None:
    dev = dagster_dev
    dev.wait_for_assets(ASSETS, location=LOCATION, timeout=120)
    startup_s = dev.timings["location_loaded_s"]
    print(
        f"\ndagster dev: webserver up after {dev.timings['webserver_up_s']:.1f} s, "
        f"location {LOCATION} loaded after {startup_s:.1f} s"
    )

    t0 = time.monotonic()
    launched = dev.graphql(
        LAUNCH,
        {
            "params": {
                "assetSelection": [{"path": key.split("/")} for key in ASSETS],
                "partitionNames": SHIFTS,
                "fromFailure": False,
                "title": "test_graphql_backfill",
            }
        },
    )["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    backfill = _wait_for_backfill(dev, launched["backfillId"])
    backfill_s = time.monotonic() - t0
    print(f"backfill {backfill['id']} {backfill['status']} after {backfill_s:.1f} s: {_summary(backfill)}")

    assert backfill["isAssetBackfill"]
    assert backfill["status"] == "COMPLETED_SUCCESS", f"{_summary(backfill)}\nlog tail:\n{dev.log_tail(6000)}"
    runs = backfill["runs"]
    assert runs and all(run["status"] == "SUCCESS" for run in runs), _summary(backfill)
    materialized = {"/".join(a["path"]) for run in runs for a in run["assetSelection"] or []}
    assert materialized == set(ASSETS), _summary(backfill)

    # gold, straight from the lake
    gold = pl.read_delta(str(tmp_path / "twin" / "lake" / "gold" / "fact_oee_shift"))
    shift = gold.filter(pl.col("shift_id") == DATA_SHIFT)
    assert sorted(shift["line_id"]) == ["L1", "L2"], gold.select("shift_id", "line_id")
    assert (shift["produced"] > 0).all(), shift.select("line_id", "produced")
    print(
        f"gold/fact_oee_shift shifts: {sorted(set(gold['shift_id']))}; {DATA_SHIFT}: "
        + ", ".join(f"{r['line_id']} produced {r['produced']} OEE {r['oee']}" for r in shift.iter_rows(named=True))
    )

    # The asset checks that ran in the backfill's runs. gold/fact_oee_shift's must all pass; on the other assets
    # an ERROR check must pass, a WARN check may fail: 40 minutes of data end long before the shift does (the
    # edge is not caught up past the shift end, the heartbeat falls silent), and a WARN says exactly that.
    # A single-run range executes a partitioned check once for the whole range: Dagster 1.13.27 records that
    # evaluation without a partition and marks the check's per-shift executions SKIPPED (an AssetCheckResult
    # has no partition of its own), so the evaluations counted here are the unpartitioned ones.
    run_ids = {run["runId"] for run in runs}
    nodes = dev.graphql(CHECKS, {"keys": [{"path": key.split("/")} for key in ASSETS]})["assetNodes"]
    checks = sorted(
        ("/".join(n["assetKey"]["path"]), c["name"])
        for n in nodes
        if n["assetChecksOrError"]["__typename"] == "AssetChecks"
        for c in n["assetChecksOrError"]["checks"]
    )
    assert any(asset == "gold/fact_oee_shift" for asset, _ in checks), checks
    outcomes: dict[str, list[str]] = {"passed": [], "warned": [], "failed": [], "not evaluated": []}
    for asset, name in checks:
        executions = [
            e
            for e in dev.graphql(CHECK_EXECUTIONS, {"key": {"path": asset.split("/")}, "check": name})[
                "assetCheckExecutions"
            ]
            if e["runId"] in run_ids
        ]
        evaluations = [e["evaluation"] for e in executions if e["evaluation"]]
        errored = [e for e in executions if e["status"] in ("EXECUTION_FAILED", "IN_PROGRESS")]
        label = f"{asset}:{name}"
        for evaluation in evaluations:
            if not evaluation["success"]:
                details = "; ".join(
                    f"{m['label']}={m.get('text', m.get('intRepr'))}" for m in evaluation["metadataEntries"]
                )
                label += f" [{evaluation['severity']}: {details}]"
        if errored or any(
            not e["success"] and (e["severity"] == "ERROR" or asset == "gold/fact_oee_shift") for e in evaluations
        ):
            outcomes["failed"].append(f"{label} {errored}")
        elif not evaluations:
            outcomes["not evaluated"].append(label)
        elif all(e["success"] for e in evaluations):
            outcomes["passed"].append(label)
        else:
            outcomes["warned"].append(label)
    for outcome, labels in outcomes.items():
        print(f"checks {outcome}: {', '.join(labels) or 'none'}")
    assert not outcomes["failed"], f"checks failed: {outcomes['failed']}\nlog tail:\n{dev.log_tail()}"
    gold_checks = [(asset, name) for asset, name in checks if asset == "gold/fact_oee_shift"]
    gold_passed = [label for label in outcomes["passed"] if label.startswith("gold/fact_oee_shift:")]
    assert len(gold_passed) == len(gold_checks), f"gold checks not evaluated in the backfill: {outcomes}"

    # the daemon's sensors, schedules and automation ticks ran alongside; none of them may have failed
    errors = [line for line in dev.log_text().splitlines() if LOG_ERROR.search(line)]
    assert not errors, "errors in dagster dev's log:\n" + "\n".join(errors[:20]) + f"\nlog: {dev.log_path}"
    print(f"timings: startup {startup_s:.1f} s, backfill {backfill_s:.1f} s")
