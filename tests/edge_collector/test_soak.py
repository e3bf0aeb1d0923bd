"""R6 (RELIABILITY.md): soak and leak. The collector runs as operators run it (`edge-collector run`,
a subprocess, so its memory, fds and tasks are its own) against an in-process PLC simulator with
18 lines (18 x 29 default tags = 522 monitored items, publishing interval 100 ms, the default),
through the fault proxy, which resets every connection (an RST, R2's transport drop) several
times. Each time the client reactivates its session and the server keeps the same subscription.

CI runs a scaled-down soak (60 s, 10 drops). The full case (10 min, 20 drops, RSS compared
with the value after the first minute) is the same test with other parameters:

    TWIN_SOAK_SECONDS=600 TWIN_SOAK_RECONNECTS=20 TWIN_SOAK_WARMUP_SECONDS=60 \\
        .venv/bin/python -m pytest tests/edge_collector/test_soak.py -s

Status (2026-11-26): the CI soak passes; the full case passes tasks, fds, subscriptions, loss and
duplicates but FAILS the RSS bound: 247 -> 280 MiB (+13 %, median of 20 s), RSS rising until about
4 min and then flat at 270-278 MiB with peaks to 308 MiB (likely the compaction every 200 commits).

TWIN_SOAK_SPEED sets simulated seconds per wall second (default 5: about 40 notifications/s per
line, the plant's counters and accumulators at 5x a real line's rate).
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from plc.plant_config import load_lines
from plc.server import PlcServer
from plc.tagmap import TAGS
from tests.conftest import free_port
from tests.edge_collector.conftest import read_table
from tests.support.fault_proxy import FaultProxy

SOAK_S = float(os.environ.get("TWIN_SOAK_SECONDS", "60"))
RECONNECTS = int(os.environ.get("TWIN_SOAK_RECONNECTS", "10"))
WARMUP_S = float(os.environ.get("TWIN_SOAK_WARMUP_SECONDS", "30"))
SPEED = float(os.environ.get("TWIN_SOAK_SPEED", "5"))
MIN_TAGS = 500
LINES = [f"L{i}" for i in range(1, math.ceil(MIN_TAGS / len(TAGS.subscribed_line_tags())) + 1)]
RSS_GROWTH_MAX = 0.10  # RELIABILITY.md R6
TOLERANCE = 5  # tasks and fds: baseline +- 5 once each reconnect has settled
SETTLE_S = 20.0  # how long a reconnect's transient fds and tasks may take to go away
TICK_S = 0.1  # the PLC is stepped every 100 ms of wall time
RSS_WINDOW_S = 20.0  # RSS is the median over this window: a compaction's transient peak is not growth


def proc_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {ln.split(" ")[0]: float(ln.split(" ")[1]) for ln in body.splitlines() if ln and not ln.startswith("#")}


@dataclass
class Sample:
    """One look at the collector process and the server, `t` wall seconds into the soak."""

    t: float
    rss: int
    fds: int
    tasks: int
    reconnects: int
    connected: bool
    received: int
    subscriptions: int
    items: int
    sessions: int
    subscription_ids: frozenset[int]


@dataclass
class Soak:
    plc: PlcServer
    pid: int
    metrics_port: int
    samples: list[Sample] = field(default_factory=list)

    async def sample(self, t: float) -> Sample:
        m = await asyncio.to_thread(scrape, self.metrics_port)
        iserver = self.plc.server.iserver
        subs = iserver.subscription_service.subscriptions
        s = Sample(
            t,
            proc_rss(self.pid),
            proc_fds(self.pid),
            int(m["edge_collector_asyncio_tasks"]),
            int(m["edge_collector_reconnects_total"]),
            m["edge_collector_connected"] == 1.0,
            int(m["edge_collector_samples_received_total"]),
            len(subs),
            sum(len(sub.monitored_item_srv._monitored_items) for sub in subs.values()),
            len(iserver._external_sessions),
            frozenset(subs),
        )
        self.samples.append(s)
        return s


async def drive(plc: PlcServer, stop: asyncio.Event) -> None:
    """The PLC's clock at SPEED x wall time, one scan every TICK_S."""
    loop = asyncio.get_running_loop()
    last = loop.time()
    while not stop.is_set():
        await asyncio.sleep(TICK_S)
        now = loop.time()
        await plc.step((now - last) * SPEED)
        last = now


def collector_config(tmp_path: Path, proxy_port: int, metrics_port: int) -> Path:
    path = tmp_path / "soak.toml"
    path.write_text(
        f"""
[collector]
id = "soak"
lake = "{tmp_path / "lake"}"
spool = "{tmp_path / "spool"}"
lab_mode = true
[opcua]
endpoint = "opc.tcp://127.0.0.1:{proxy_port}"
security_policy = "None"
[subscription]
lines = {LINES!r}
[metrics]
port = {metrics_port}
""".replace("'", '"')
    )
    return path


@pytest.mark.chaos
@pytest.mark.timeout(SOAK_S + 240)
async def test_soak_with_forced_reconnects_leaks_no_memory_tasks_fds_or_subscriptions(
    start_plc: Any, tmp_path: Path
) -> None:
    """R6: 522 tags at 100 ms for TWIN_SOAK_SECONDS with TWIN_SOAK_RECONNECTS transport drops (proxy RST).

    Asserted: collector RSS at the end < 1.10 x RSS after the warm-up (TWIN_SOAK_WARMUP_SECONDS,
    the case's "first minute"), each the median of the last 20 s (a transient peak, e.g. during a
    compaction, is not growth); asyncio tasks (the `edge_collector_asyncio_tasks` metric) and open
    fds (/proc/<pid>/fd) back within baseline (median of the warm-up's last 10 s) +- 5 within
    SETTLE_S after every drop and at the end (a reconnect's transient sockets and files are not a
    leak; a leak never comes back); server
    side exactly 1 subscription (same id), 1 session and 522 monitored items then; every drop
    reconnected; no duplicate (line, tag, source_ts) and no lost counter value on any line.
    """
    assert WARMUP_S < SOAK_S and RECONNECTS >= 1
    gap_s = (SOAK_S - WARMUP_S) / (RECONNECTS + 1)
    metrics_port = free_port()
    log_path = tmp_path / "collector.log"
    env = {**os.environ, "TWIN_HOME": str(tmp_path / "twin"), "TWIN_ENV": "dev"}
    async with start_plc(lines=load_lines(LINES)) as plc:
        with FaultProxy(plc.options.port) as proxy, log_path.open("w") as log_file:
            cmd = [
                sys.executable,
                "-m",
                "edge_collector.cli",
                "run",
                "--config",
                str(collector_config(tmp_path, proxy.port, metrics_port)),
                "--plain-logs",
                "--log-level",
                "WARNING",
            ]
            proc = subprocess.Popen(cmd, env=env, stdout=log_file, stderr=subprocess.STDOUT)
            soak = Soak(plc, proc.pid, metrics_port)
            stop_clock = asyncio.Event()
            clock: asyncio.Task[None] | None = None
            loop = asyncio.get_running_loop()
            try:
                start = loop.time()
                while True:  # ready: connected and the initial values in
                    assert proc.poll() is None, log_path.read_text()[-3000:]
                    assert loop.time() - start < 60, "collector not ready within 60 s"
                    try:
                        first = await soak.sample(0.0)
                        if first.connected and first.received >= first.items > 0:
                            break
                    except OSError:
                        pass
                    await asyncio.sleep(0.5)
                clock = asyncio.create_task(drive(plc, stop_clock))
                t0 = loop.time()

                async def run_until(t_end: float) -> Sample:
                    while loop.time() - t0 < t_end - 1.0:
                        await soak.sample(loop.time() - t0)
                        await asyncio.sleep(1.0)
                    await asyncio.sleep(max(0.0, t_end - (loop.time() - t0)))
                    return await soak.sample(loop.time() - t0)

                async def settled() -> Sample:
                    """The first sample after a reconnect whose tasks and fds are back within the tolerance.

                    A reconnect passes through transient states (the old and the new socket, a commit's
                    or a compaction's files open at that moment): a leak never comes back, a transient
                    does; a fixed instant would catch either."""
                    deadline = loop.time() + SETTLE_S
                    while True:
                        s = await soak.sample(loop.time() - t0)
                        steady = (s.subscriptions, s.sessions, s.items, s.subscription_ids) == (
                            1,
                            1,
                            base.items,
                            base.subscription_ids,
                        )
                        if (
                            steady and abs(s.fds - base_fds) <= TOLERANCE and abs(s.tasks - base_tasks) <= TOLERANCE
                        ) or loop.time() > deadline:
                            return s
                        await asyncio.sleep(0.2)

                base = await run_until(WARMUP_S)
                # the baseline is the median of the warm-up's last 10 s, not one instant (which may be transient)
                warm = [s for s in soak.samples if s.t >= WARMUP_S - 10.0]
                base_fds = sorted(s.fds for s in warm)[len(warm) // 2]
                base_tasks = sorted(s.tasks for s in warm)[len(warm) // 2]
                after: list[Sample] = []
                recovery: list[float] = []
                for k in range(1, RECONNECTS + 1):
                    assert proxy.cut() >= 1
                    cut_at = loop.time()
                    while True:
                        s = await soak.sample(loop.time() - t0)
                        if s.reconnects >= k and s.connected:
                            break
                        assert loop.time() - cut_at < 30, f"drop {k}: no reconnect within 30 s"
                        await asyncio.sleep(0.2)
                    recovery.append(loop.time() - cut_at)
                    after.append(await settled())
                    end = await run_until(WARMUP_S + (k + 1) * gap_s)  # just before the next drop / the end
                after.append(await settled())  # and at the end
            finally:
                stop_clock.set()
                if clock is not None:
                    await clock
            # quiet: nothing new for 2 s, so every change the PLC made is in the collector
            last, since = soak.samples[-1].received, loop.time()
            while loop.time() - since < 2.0:
                await asyncio.sleep(0.25)
                now_received = (await soak.sample(loop.time() - t0)).received
                if now_received != last:
                    last, since = now_received, loop.time()
            processed = {line_id: plc.line(line_id).processed for line_id in LINES}
            cpu_s = proc_cpu_s(proc.pid)
            proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(proc.wait, 120)
            assert code == 0, log_path.read_text()[-3000:]

    def rss_median(t_end: float) -> int:
        window = sorted(s.rss for s in soak.samples if t_end - RSS_WINDOW_S <= s.t <= t_end)
        return window[len(window) // 2]

    base_rss, end_rss = rss_median(base.t), rss_median(end.t)
    growth = end_rss / base_rss - 1
    dev_tasks = max(abs(s.tasks - base_tasks) for s in after)
    dev_fds = max(abs(s.fds - base_fds) for s in after)
    after_warmup = [s for s in soak.samples if s.t >= WARMUP_S]
    print(
        f"\nR6 soak: {base.items} tags ({len(LINES)} lines), {SOAK_S:.0f} s at speed {SPEED:g} "
        f"(warm-up {WARMUP_S:.0f} s), {RECONNECTS} drops every {gap_s:.1f} s, "
        f"{end.received} notifications, collector CPU {cpu_s:.0f} s"
    )
    print(
        f"R6 RSS (median of {RSS_WINDOW_S:.0f} s): start {first.rss / 2**20:.1f} MiB, after warm-up "
        f"{base_rss / 2**20:.1f} MiB, end {end_rss / 2**20:.1f} MiB (growth {growth:+.1%}), max after warm-up "
        f"{max(s.rss for s in after_warmup) / 2**20:.1f} MiB"
    )
    marks = [soak.samples[min(len(soak.samples) - 1, round(i * (len(soak.samples) - 1) / 10))] for i in range(11)]
    print("R6 RSS over time: " + ", ".join(f"{m.t:.0f}s {m.rss / 2**20:.0f}" for m in marks) + " MiB")
    print(f"R6 reconnect s: max {max(recovery):.2f}, median {sorted(recovery)[len(recovery) // 2]:.2f}")
    print(f"R6 tasks: baseline {base_tasks}, after each drop {[s.tasks for s in after]} (max dev {dev_tasks})")
    print(f"R6 fds: baseline {base_fds}, after each drop {[s.fds for s in after]} (max dev {dev_fds})")
    print(
        f"R6 server: subscriptions {base.subscriptions} -> {[s.subscriptions for s in after]}, sessions "
        f"{base.sessions} -> {end.sessions}, monitored items {base.items} -> {end.items}, subscription ids "
        f"{sorted(set().union(*(s.subscription_ids for s in soak.samples)))}"
    )

    assert base.items >= MIN_TAGS
    assert growth < RSS_GROWTH_MAX, f"collector RSS grew {growth:.1%} after the warm-up"
    assert dev_tasks <= TOLERANCE, [s.tasks for s in after]
    assert dev_fds <= TOLERANCE, [s.fds for s in after]
    for s in [base, *after]:  # the same one subscription: transferred to the new channel, not recreated
        assert (s.subscriptions, s.sessions, s.items, s.subscription_ids) == (
            1,
            1,
            base.items,
            base.subscription_ids,
        ), s

    raw = read_table(tmp_path / "lake", "raw_samples")
    duplicated = int(raw.select("line_id", "tag", "source_ts").is_duplicated().sum())
    counts = raw.filter(pl.col("tag") == "Admin.ProdProcessedCount")
    lost = 0
    for line_id in LINES:
        seen = {int(v) for v in counts.filter(pl.col("line_id") == line_id)["value"]}
        lost += len(set(range(processed[line_id] + 1)) - seen)
    print(
        f"R6 rows: {raw.height} raw_samples, {duplicated} duplicated; counter values lost {lost} of "
        f"{sum(processed.values()) + len(LINES)}"
    )
    assert duplicated == 0
    assert lost == 0
