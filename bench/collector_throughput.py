"""Collector cost and durability latency, against a bare asyncua consumer measured in the same run.

A `plc-sim serve --speed K` subprocess (2 lines by default, security None so both clients pay the same
transport cost) produces data changes in real time. For the same number of wall seconds:
1. a bare asyncua client subscribes to the same nodes and discards every notification;
2. the edge collector (in this process) subscribes, normalizes, dedupes and commits to Delta.
The bare client runs twice: as a plain script (Python's default GC) and after the collector's
process set-up (`tune_gc`, as `edge-collector run` does), which the collector then runs under.
Printed: samples/s each received, samples/s the collector committed durably, CPU seconds per
sample of each and their ratio (target <= 1.5), and sample-to-durable latency p50/p99 (from the
OPC UA notification's arrival to the fsync of the spool batch that holds it) plus Delta commit
latency p50/p99.

    python bench/collector_throughput.py [--speed 600] [--seconds 15] [--lines 2]

The throughput target (>= 20,000 samples/s) needs a source that produces that many: e.g.
`--lines 8 --speed 600` (the simulator's own cost then shares the 2 cores with both clients).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asyncua import Client, ua
from common import free_port

from edge_collector.collector import Collector, tune_gc
from edge_collector.config import CollectorConfig
from plc.tagmap import TAGS, symbol

SIM_START = "2026-01-05T06:00:00+00:00"  # a Monday morning shift: both clients see the same production


def quantile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


async def bare(endpoint: str, lines: list[str], seconds: float) -> tuple[int, float]:
    """Subscribe to the collector's default nodes and discard; returns (notifications, cpu s)."""
    client = Client(endpoint, timeout=30)
    await client.connect()
    ns = await client.get_namespace_index(TAGS.namespace_uri)
    sub = await client.create_subscription(100, None, queue_maxsize=1_000_000)
    nodes = [
        client.get_node(ua.NodeId(symbol(TAGS.default_runtime, line, t.path), ns))
        for line in lines
        for t in TAGS.subscribed_line_tags()
    ]
    await sub.subscribe_data_change(nodes, queuesize=10_000)
    count = 0

    async def consume() -> None:
        nonlocal count
        while True:
            if await sub.next_event() is None:
                return
            count += 1

    await asyncio.sleep(1.0)
    task = asyncio.create_task(consume())
    await asyncio.sleep(0.5)
    n0, c0 = count, time.process_time()
    await asyncio.sleep(seconds)
    n1, c1 = count, time.process_time()
    task.cancel()
    await client.disconnect()
    return n1 - n0, c1 - c0


async def collector(endpoint: str, lines: list[str], seconds: float, tmp: Path) -> dict[str, Any]:
    config = CollectorConfig.model_validate(
        {
            "collector": {"id": "bench", "lake": str(tmp / "lake"), "spool": str(tmp / "spool"), "lab_mode": True},
            "opcua": {"endpoint": endpoint, "security_policy": "None"},
            "subscription": {"lines": lines},
            "metrics": {"port": 0},
        }
    )
    c = Collector(config, environ={"TWIN_ENV": "dev"})
    durable_latency: list[float] = []

    def acknowledged(ack: Any) -> None:
        if ack.table != "raw_samples":
            return
        now = datetime.now(UTC)
        column = ack.data.column("received_ts")  # a sample of up to ~200 rows: the bench must not cost the collector
        received = column.take(list(range(0, len(column), max(1, len(column) // 200)))).to_pylist()
        durable_latency.extend((now - r).total_seconds() for r in received)

    c.datalogger.on_acknowledged = acknowledged
    stop = asyncio.Event()
    ready = asyncio.Event()
    task = asyncio.create_task(c.run(stop, ready=ready.set))
    await ready.wait()
    await asyncio.sleep(1.5)
    r0, k0, c0 = c.received, c.datalogger.stats.rows_committed, time.process_time()
    await asyncio.sleep(seconds)
    r1, k1, c1 = c.received, c.datalogger.stats.rows_committed, time.process_time()
    stop.set()
    await task
    stats = c.datalogger.stats
    return {
        "received": r1 - r0,
        "committed": k1 - k0,
        "cpu": c1 - c0,
        "durable_latency": durable_latency,
        "commit_latency": list(stats.commit_latencies),
        "dropped": c.dropped_notifications + stats.dropped_rows,
    }


@contextmanager
def plc_sim(lines: list[str], speed: float) -> Iterator[str]:
    """`plc-sim serve` in its own process (seed 1, a fixed simulated start); yields its endpoint."""
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plc.cli",
            "serve",
            "--insecure",
            "--port",
            str(port),
            "--speed",
            str(speed),
            "--status-every",
            "0",
            "--lines",
            ",".join(lines),
            "--seed",
            "1",
            "--start",
            SIM_START,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert server.stdout is not None and "serving" in server.stdout.readline().decode()
        yield f"opc.tcp://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--speed", type=float, default=600.0, help="PLC speed, simulated s per wall s (default 600)")
    parser.add_argument("--seconds", type=float, default=15.0, help="wall seconds measured per client (default 15)")
    parser.add_argument("--lines", type=int, default=2, help="lines the PLC simulates, L1..Ln (default 2)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    lines = [f"L{i}" for i in range(1, args.lines + 1)]
    with tempfile.TemporaryDirectory() as tmpdir:
        # A fresh simulator per client, same seed and simulated start: both see the same changes.
        with plc_sim(lines, args.speed) as endpoint:
            n_plain, cpu_plain = asyncio.run(bare(endpoint, lines, args.seconds))  # Python's default GC
        tune_gc()  # the collector's process set-up, as `edge-collector run` does; irreversible, so after the plain run
        with plc_sim(lines, args.speed) as endpoint:
            n_bare, cpu_bare = asyncio.run(bare(endpoint, lines, args.seconds))
        with plc_sim(lines, args.speed) as endpoint:
            col = asyncio.run(collector(endpoint, lines, args.seconds, Path(tmpdir)))
    s = args.seconds
    per_bare = cpu_bare / max(n_bare, 1)
    per_col = col["cpu"] / max(col["received"], 1)
    print(
        f"collector throughput ({os.cpu_count()} cores, plc-sim {len(lines)} lines at {args.speed:g}x "
        "in its own process, "
        f"{s:g} s each)"
    )
    print(f"{'client':<28}{'received/s':>12}{'committed/s':>13}{'CPU us/sample':>15}")
    per_plain = cpu_plain / max(n_plain, 1)
    print(f"{'bare asyncua, default GC':<28}{n_plain / s:>12,.0f}{'-':>13}{per_plain * 1e6:>15.1f}")
    print(f"{'bare asyncua, tuned GC':<28}{n_bare / s:>12,.0f}{'-':>13}{per_bare * 1e6:>15.1f}")
    print(
        f"{'edge collector (durable)':<28}{col['received'] / s:>12,.0f}{col['committed'] / s:>13,.0f}"
        f"{per_col * 1e6:>15.1f}"
    )
    print(
        f"CPU per sample, collector / bare: {per_col / per_plain:.2f}x against a plain asyncua script (target <= 1.5), "
        f"{per_col / per_bare:.2f}x against one with the collector's GC setting"
    )
    print(
        f"sample-to-durable latency p50 {quantile(col['durable_latency'], 0.5):.3f} s, "
        f"p99 {quantile(col['durable_latency'], 0.99):.3f} s; Delta commit p50 "
        f"{quantile(col['commit_latency'], 0.5) * 1000:.1f} ms, "
        f"p99 {quantile(col['commit_latency'], 0.99) * 1000:.1f} ms; "
        f"dropped {col['dropped']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
