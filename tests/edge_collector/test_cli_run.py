"""The collector as operators run it: `make run`'s twin, SIGTERM, restarts and kill -9."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable

from edge_collector.schemas import edge_table_path
from tests.conftest import free_port

PY = sys.executable
ROWS_PER_LIFE = 200  # the kill test waits for this many more committed rows in each collector life


def rows(lake: Path, table: str = "raw_samples") -> pl.DataFrame:
    path = edge_table_path(lake, table)
    if not (path / "_delta_log").exists():
        return pl.DataFrame()
    return pl.read_delta(str(path))


def wait_rows(lake: Path, minimum: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if rows(lake).height >= minimum:
                return
        except Exception:  # noqa: BLE001, S110 - the table may be mid-creation: poll again
            pass
        time.sleep(0.2)
    raise AssertionError(f"fewer than {minimum} rows in {lake} after {timeout} s")


def wait_new_session_rows(lake: Path, known: set[str], minimum: int, timeout: float = 90.0) -> str:
    """Wait until one collector session not in `known` has committed `minimum` rows; return its id."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            counts = rows(lake).filter(~pl.col("session_id").is_in(list(known)))["session_id"].value_counts()
            done = counts.filter(pl.col("count") >= minimum)
            if done.height:
                return str(done["session_id"][0])
        except Exception:  # noqa: BLE001, S110 - the table may be mid-creation: poll again
            pass
        time.sleep(0.2)
    raise AssertionError(f"no new session with {minimum} rows in {lake} after {timeout} s")


def port_closed(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


def test_make_run_twin_collects_stops_cleanly_and_resumes(tmp_path: Path) -> None:
    home = tmp_path / "twin"
    env = {**os.environ, "TWIN_HOME": str(home)}
    port = free_port()
    cmd = [PY, "-m", "edge_collector.local_twin", "--port", str(port), "--speed", "60"]
    lake = home / "lake"
    for run in range(2):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        before = rows(lake).height if run else 0
        wait_rows(lake, before + 500)
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=90)
        assert proc.returncode == 0, out[-3000:]
        assert "twin: stopped" in out and "stopped cleanly" in out
        assert port_closed(port)
    raw = rows(lake)
    # no replay stored twice; the restarted PLC's initial values may share the last stamp of the first run
    # with another value (a counter reset to 0): that is data, not a replay (defect 3)
    assert raw.select("line_id", "tag", "source_ts", "value", "value_text").is_duplicated().sum() == 0
    assert set(raw["line_id"]) == {"L1", "L2"}
    gaps = rows(lake, "gaps")
    assert "collector_down" in set(gaps["reason"])  # the restart left an explicit gap record
    assert rows(lake, "injected_events").height > 0  # the variability engine ran
    assert (home / "pki" / "collector" / "own" / "private" / "key.pem").stat().st_mode & 0o777 == 0o600


@pytest.mark.chaos
def test_collector_kill_9_keeps_tables_consistent_without_duplicates(tmp_path: Path) -> None:
    """D1 (RELIABILITY.md) on the whole collector: kill -9 at random points, restart, check the tables."""
    port = free_port()
    env = {**os.environ, "TWIN_HOME": str(tmp_path / "twin"), "TWIN_ENV": "dev"}
    plc = subprocess.Popen(
        [PY, "-m", "plc.cli", "serve", "--insecure", "--port", str(port), "--speed", "100", "--status-every", "0"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert plc.stdout is not None and "serving" in plc.stdout.readline().decode()
    config = tmp_path / "collector.toml"
    lake = tmp_path / "lake"
    config.write_text(f"""
[collector]
id = "chaos"
lake = "{lake}"
spool = "{tmp_path / "spool"}"
lab_mode = true
[opcua]
endpoint = "opc.tcp://127.0.0.1:{port}"
security_policy = "None"
[datalogger]
flush_interval_s = 0.3
[metrics]
port = 0
""")
    rng = random.Random(7)
    collector_cmd = [PY, "-m", "edge_collector.cli", "run", "--config", str(config), "--plain-logs"]
    kills = 0
    sessions: set[str] = set()
    try:
        for _ in range(6):
            proc = subprocess.Popen(collector_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # each life commits rows before it dies (whatever the machine's load), then dies at a random
            # moment of its steady state: mid-flush, mid-commit or idle
            sessions.add(wait_new_session_rows(lake, sessions, ROWS_PER_LIFE))
            time.sleep(rng.uniform(0.0, 1.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            kills += 1
        proc = subprocess.Popen(collector_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        sessions.add(wait_new_session_rows(lake, sessions, ROWS_PER_LIFE))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err[-2000:]
    finally:
        plc.send_signal(signal.SIGTERM)
        plc.wait(timeout=30)
    table = DeltaTable(str(edge_table_path(lake, "raw_samples")))
    versions = [h["version"] for h in table.history()]
    assert sorted(versions) == list(range(min(versions), max(versions) + 1))  # contiguous
    raw = rows(lake)
    assert raw.height >= (kills + 1) * ROWS_PER_LIFE > 1000
    assert raw.select("line_id", "tag", "source_ts").is_duplicated().sum() == 0
    # the counter series has holes only where a kill was (each at most ~ one flush interval of data)
    counts = raw.filter((pl.col("line_id") == "L1") & (pl.col("tag") == "Admin.ProdProcessedCount")).sort("value")
    values = counts["value"].cast(pl.Int64)
    holes = values.diff().drop_nulls().filter(values.diff().drop_nulls() > 1)
    assert holes.len() <= kills + 1
    # ... and every hole lies inside a gap record (the collector was down): loss is never silent
    gaps = rows(lake, "gaps").filter(pl.col("line_id") == "L1")
    stamps = counts["source_ts"].to_list()
    vals = values.to_list()
    for i in range(1, len(vals)):
        if vals[i] - vals[i - 1] > 1:
            covered = gaps.filter(
                (pl.col("source_ts_before") >= stamps[i - 1]) & (pl.col("source_ts_after") <= stamps[i])
            )
            assert covered.height >= 1, f"hole {vals[i - 1]}..{vals[i]} has no gap record"
    print(
        f"kill -9 x{kills}: {raw.height} rows, {holes.len()} holes in L1's counter, "
        f"{int((holes - 1).sum())} counter values lost"
    )
