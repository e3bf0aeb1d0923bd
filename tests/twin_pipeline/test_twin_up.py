"""End to end: the real `twin up` (what `make run` runs) in a temporary TWIN_HOME: it seeds a day of
history, starts the live line and `dagster dev`, and materializes the two seeded shifts by itself (no user
action): gold rows, passing gold checks, the banner's run link and OEE line; Ctrl-C stops it with every child process
gone; and a second `twin up` continues without seeding again (no duplicate history)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import polars as pl
import pytest

from tests.conftest import free_port
from tests.support.dagster_dev import DagsterDev, session_members
from tests.twin_pipeline.test_graphql_backfill import CHECK_EXECUTIONS, CHECKS

ROOT = Path(__file__).resolve().parents[2]
TWIN = Path(sys.executable).parent / "twin"


def start_twin(home: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    """`twin up` as a user starts it, in its own process group (our SIGINT is the user's Ctrl-C)."""
    env = {**os.environ, "TWIN_HOME": str(home), "TWIN_PROFILE": "local"}
    env.pop("TWIN_SHIFTS", None)
    return subprocess.Popen(
        [str(TWIN), "up", *args],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for(log: Path, text: str, proc: subprocess.Popen[bytes], timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        out = log.read_text(errors="replace")
        if text in out:
            return out
        if proc.poll() is not None:
            pytest.fail(f"twin up exited with {proc.returncode} before {text!r}:\n{out[-4000:]}")
        time.sleep(0.5)
    pytest.fail(f"no {text!r} from twin up within {timeout:.0f} s:\n{log.read_text(errors='replace')[-4000:]}")


def children_sessions(pid: int) -> set[int]:
    """The sessions of `pid`'s children (each child of `twin up` runs in a session of its own)."""
    sessions = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                if int(stat[stat.rindex(")") + 2 :].split()[1]) == pid:
                    sessions.add(os.getsid(int(entry.name)))
            except (OSError, ValueError):
                continue
    return sessions


def raw_sessions(home: Path) -> set[str]:
    """The collector sessions with rows in the edge raw_samples table."""
    try:
        return set(
            pl.scan_delta(str(home / "lake" / "edge" / "raw_samples"))
            .select("session_id")
            .unique()
            .collect()["session_id"]
        )
    except Exception:  # noqa: BLE001 - a commit may be under way: ask again
        return set()


def stop(proc: subprocess.Popen[bytes], sessions: set[int], sig: int = signal.SIGINT) -> float:
    """Ctrl-C in the terminal (SIGINT to the foreground group), or `sig` to `twin up` alone (a service
    manager's SIGTERM); then nothing of it may be left."""
    t0 = time.monotonic()
    if sig == signal.SIGINT:
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(sig)
    assert proc.wait(timeout=90) == 0
    seconds = time.monotonic() - t0
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(m[1] != "Z" for s in sessions for m in session_members(s)):
        time.sleep(0.2)
    left = [m for s in sessions | {proc.pid} for m in session_members(s) if m[1] != "Z"]
    assert not left, f"processes left after twin up stopped: {left}"
    return seconds


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_twin_up_seeds_materializes_history_and_stops_cleanly(tmp_path: Path) -> None:
    home, log = tmp_path / "twin", tmp_path / "twin-up.log"
    config = tmp_path / "collector.toml"  # local.toml with a free metrics port
    config.write_text((ROOT / "edge_collector" / "local.toml").read_text() + f"\n[metrics]\nport = {free_port()}\n")
    ui_port, opc_port, board_port = free_port(), free_port(), free_port()
    args = ["--days", "1", "--ui-port", str(ui_port), "--port", str(opc_port), "--collector-config", str(config)]
    args += ["--dashboard-port", str(board_port)]
    t0 = time.monotonic()
    twin = start_twin(home, log, *args)
    sessions: set[int] = set()
    stop_s = 0.0
    try:
        out = wait_for(log, "twin: running", twin, timeout=300)
        ready_s = time.monotonic() - t0
        history = json.loads((home / "history.json").read_text())
        assert history["done"] and history["session_id"].startswith("seed-") and history["samples"] > 100_000
        assert history["x_real_time_per_line"] >= 10_000  # the floor for history mode
        assert f"http://127.0.0.1:{ui_port}" in out and str(home / "lake") in out and "/metrics" in out
        sessions = children_sessions(twin.pid)
        assert len(sessions) == 4, sessions  # plc-sim, edge-collector, dashboard, dagster dev
        assert f"dashboard      http://127.0.0.1:{board_port}" in out, out[-3000:]
        with urllib.request.urlopen(f"http://127.0.0.1:{board_port}/_stcore/health", timeout=5) as reply:
            assert reply.status == 200

        dev = DagsterDev(
            ROOT / "workspace.yaml", dagster_home=home / "dagster", log_path=home / "logs" / "dagster.log", port=ui_port
        )
        from twin_pipeline.launcher.twin import seeded_shifts

        shifts = seeded_shifts(history)
        assert len(shifts) == 2, history
        # nobody launches anything: twin up materializes the seeded shifts by itself, links the run and says when
        # gold is there (with the last shift's OEE)
        match = re.search(r"materializing bronze -> silver -> gold now, run (\S+)/runs/([0-9a-f-]+)", out)
        assert match and match[1] == f"http://127.0.0.1:{ui_port}", out[-3000:]
        run_id = match[2]
        out = wait_for(log, "history: gold ready", twin, timeout=300)
        ui_up_s = float(re.search(r"Dagster UI up after ([\d.]+) s", out)[1])
        gold_s = float(re.search(r"history: gold ready for 2 shifts ([\d.]+) s after the UI came up", out)[1])
        # the OEE steps run first: when the poll saw OEE in gold before the run ended, it said so, and earlier
        if early := re.search(r"history: OEE of 2 seeded shifts in gold ([\d.]+) s after the UI came up", out):
            assert float(early[1]) <= gold_s, out[-2000:]
        assert re.search(rf"history: gold ready for 2 shifts .*; {shifts[-1]}: OEE \d+\.\d % \(L1 ", out), out[-2000:]

        gold = pl.read_delta(str(home / "lake" / "gold" / "fact_oee_shift")).filter(pl.col("shift_id").is_in(shifts))
        assert gold.height == 4 and gold["oee"].null_count() == 0 and (gold["produced"] > 1000).all(), gold
        run_ids = {run_id}
        nodes = dev.graphql(CHECKS, {"keys": [{"path": ["gold", "fact_oee_shift"]}]})["assetNodes"]
        names = [c["name"] for c in nodes[0]["assetChecksOrError"]["checks"]]
        assert {"oee_invariants", "fault_downtime_matches_injections"} <= set(names)
        for name in names:
            evaluations = [
                e["evaluation"]
                for e in dev.graphql(CHECK_EXECUTIONS, {"key": {"path": ["gold", "fact_oee_shift"]}, "check": name})[
                    "assetCheckExecutions"
                ]
                if e["runId"] in run_ids and e["evaluation"]
            ]
            assert evaluations and all(e["success"] for e in evaluations), (name, evaluations)
    finally:
        if twin.poll() is None:
            stop_s = stop(twin, sessions or children_sessions(twin.pid))
    print(
        f"\ntwin up: UI up {ui_up_s:.1f} s after start (banner after {ready_s:.1f} s), gold of the seeded shifts "
        f"{shifts} ready {gold_s:.1f} s after the UI came up, stopped in {stop_s:.1f} s"
    )
    assert "twin: Dagster stopped (SIGINT)" in log.read_text()

    # again: the history is not seeded twice, the live line continues
    seeded = (
        pl.scan_delta(str(home / "lake" / "edge" / "raw_samples"))
        .filter(pl.col("session_id") == history["session_id"])
        .select(pl.len())
        .collect()
        .item()
    )
    known = raw_sessions(home)
    log.write_text("")
    again = start_twin(home, log, *args, "--no-ui")
    try:
        wait_for(log, "twin: running", again, timeout=120)
        sessions = children_sessions(again.pid)
        deadline = time.monotonic() + 120  # until the second live collector session has committed rows
        while not raw_sessions(home) - known and again.poll() is None and time.monotonic() < deadline:
            time.sleep(0.5)
    finally:
        stop(again, sessions, signal.SIGTERM)
    assert json.loads((home / "history.json").read_text()) == history
    raw = pl.read_delta(str(home / "lake" / "edge" / "raw_samples"))
    assert raw.filter(pl.col("session_id") == history["session_id"]).height == seeded
    # no replay stored twice (a restarted PLC may report another value at a stamp already stored: data)
    assert raw.select("line_id", "tag", "source_ts", "value", "value_text").is_duplicated().sum() == 0
    assert raw["session_id"].n_unique() >= 3  # the seeding, then two live collector sessions


def test_twin_reset_asks_and_refuses_without_a_terminal(tmp_path: Path) -> None:
    home = tmp_path / "twin"
    (home / "lake").mkdir(parents=True)
    (home / "lake" / "x").write_text("data")
    env = {**os.environ, "TWIN_HOME": str(home)}
    refused = subprocess.run([str(TWIN), "reset"], env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert refused.returncode == 1 and "pass --yes" in refused.stdout and home.exists()
    done = subprocess.run([str(TWIN), "reset", "--yes"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and not home.exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
