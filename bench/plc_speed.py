"""How fast the twin runs through its OPC UA server, measured side by side in one run.

For 1 and 2 lines, a `plc-sim serve --step` subprocess (SignAndEncrypt, like production) is
stepped as fast as a client can drive it while that client subscribes to every default tag and
must receive every change. Reported per configuration:

- sim s / wall s through OPC UA (target >= 100 x per line), with the model alone in-process as
  the baseline it is compared against (the ratio shows what the server costs);
- notifications per second the subscribing client received;
- a real-time check: `--speed 100` for a few seconds, achieved simulated/wall ratio.

    python bench/plc_speed.py [--seconds 8] [--insecure]
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyAes256Sha256RsaPss
from common import free_port

from plc.line_model import Line
from plc.plant_config import load_lines
from plc.security import PkiLayout, ensure_certificate, trust_certificate
from plc.server import SIM_NAMESPACE
from plc.tagmap import TAGS, symbol

CLIENT_URI = "urn:industrial-twin:bench"
START = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def model_only(lines: list[str], sim_seconds: float) -> tuple[float, int]:
    """Baseline: the same lines advanced in-process with no server. Returns (sim/wall, changes)."""
    count = 0

    def emit(path: str, value: Any, t: float) -> None:
        nonlocal count
        count += 1

    models = [Line(p, 1, START.timestamp(), emit) for p in load_lines(lines)]
    t = time.perf_counter()
    step = 5.0
    now = START.timestamp()
    while now < START.timestamp() + sim_seconds:
        now += step
        for m in models:
            m.advance(now)
    return sim_seconds / (time.perf_counter() - t), count


class Counter:
    def __init__(self) -> None:
        self.n = 0
        self.last: dict[str, Any] = {}

    def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
        self.n += 1
        self.last[node.nodeid.Identifier] = val


def start_server(tmp: Path, lines: list[str], port: int, insecure: bool, extra: list[str]) -> subprocess.Popen[bytes]:
    cmd = [
        sys.executable,
        "-m",
        "plc.cli",
        "serve",
        "--lines",
        ",".join(lines),
        "--port",
        str(port),
        "--status-every",
        "0",
        "--pki",
        str(tmp / "server-pki"),
        "--start",
        START.isoformat(),
        *extra,
    ]
    if insecure:
        cmd.append("--insecure")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT)
    assert proc.stdout is not None
    line = proc.stdout.readline().decode()
    if "serving" not in line:
        raise RuntimeError(f"plc-sim did not start: {line!r}")
    return proc


async def connect(tmp: Path, port: int, insecure: bool) -> Client:
    client = Client(f"opc.tcp://127.0.0.1:{port}", timeout=30)
    if not insecure:
        pki = PkiLayout(tmp / "client-pki")
        ensure_certificate(pki, CLIENT_URI, "bench client", server=False)
        trust_certificate(PkiLayout(tmp / "server-pki"), pki.cert)
        client.application_uri = CLIENT_URI
        await client.set_security(
            SecurityPolicyAes256Sha256RsaPss,
            certificate=str(pki.cert),
            private_key=str(pki.key),
            server_certificate=str(PkiLayout(tmp / "server-pki").cert),
        )
    await client.connect()
    return client


async def subscribe_all(client: Client, lines: list[str]) -> tuple[Counter, Any]:
    ns = await client.get_namespace_index(TAGS.namespace_uri)
    handler = Counter()
    sub = await client.create_subscription(50, handler)
    nodes = [
        client.get_node(ua.NodeId(symbol(TAGS.default_runtime, line, t.path), ns))
        for line in lines
        for t in TAGS.subscribed_line_tags()
    ]
    await sub.subscribe_data_change(nodes, queuesize=10000)
    return handler, ns


async def stepped(lines: list[str], seconds: float, insecure: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        proc = start_server(tmp, lines, port, insecure, ["--step"])
        try:
            client = await connect(tmp, port, insecure)
            handler, ns = await subscribe_all(client, lines)
            sim_ns = await client.get_namespace_index(SIM_NAMESPACE)
            sim = client.get_node(ua.NodeId("Simulation", sim_ns))
            step_id = ua.NodeId("Simulation.Step", sim_ns)
            await asyncio.sleep(0.5)
            base = handler.n
            step = 10.0
            simulated = 0.0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < seconds:
                await sim.call_method(step_id, ua.Variant(step, ua.VariantType.Double))
                simulated += step
            # every change must have arrived before the clock stops: compare the counters
            counters = [
                client.get_node(ua.NodeId(symbol(TAGS.default_runtime, line, "Admin.ProdProcessedCount"), ns))
                for line in lines
            ]
            finals = [await n.read_value() for n in counters]
            while [handler.last.get(n.nodeid.Identifier) for n in counters] != finals:
                await asyncio.sleep(0.01)
            wall = time.perf_counter() - t0
            received = handler.n - base
            await client.disconnect()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {
        "sim_per_wall": simulated / wall,
        "notifications_per_s": received / wall,
        "notifications": received,
        "parts": float(sum(finals)),
    }


async def realtime(lines: list[str], speed: float, seconds: float, insecure: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        port = free_port()
        proc = start_server(tmp, lines, port, insecure, ["--speed", str(speed)])
        try:
            client = await connect(tmp, port, insecure)
            handler, ns = await subscribe_all(client, lines)
            clock = client.get_node(ua.NodeId(f"|var|{TAGS.default_runtime}.Application.Clock.Now", ns))
            await asyncio.sleep(0.5)
            n0, sim0, w0 = handler.n, (await clock.read_value()).timestamp(), time.perf_counter()
            await asyncio.sleep(seconds)
            n1, sim1, w1 = handler.n, (await clock.read_value()).timestamp(), time.perf_counter()
            await client.disconnect()
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return {"sim_per_wall": (sim1 - sim0) / (w1 - w0), "notifications_per_s": (n1 - n0) / (w1 - w0)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="wall seconds per measurement (default 8)")
    parser.add_argument("--insecure", action="store_true", help="measure without encryption")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    security = "security None" if args.insecure else "SignAndEncrypt Aes256Sha256RsaPss"
    print(f"plc speed benchmark ({security}, {os.cpu_count()} cores), {args.seconds:g} s per measurement")
    print(
        f"{'lines':<7}{'model only':>14}{'via OPC UA':>14}{'ratio':>8}{'notif/s':>10}{'@100x real':>12}{'notif/s':>10}"
    )
    for lines in (["L1"], ["L1", "L2"]):
        base, _ = model_only(lines, 7 * 86400)
        step = asyncio.run(stepped(lines, args.seconds, args.insecure))
        real = asyncio.run(realtime(lines, 100.0, min(args.seconds, 5.0), args.insecure))
        print(
            f"{len(lines):<7}{base:>13,.0f}x{step['sim_per_wall']:>13,.0f}x{step['sim_per_wall'] / base:>8.4f}"
            f"{step['notifications_per_s']:>10,.0f}{real['sim_per_wall']:>11.1f}x"
            f"{real['notifications_per_s']:>10,.0f}"
        )
    print(
        "model only = in-process line models with no server (baseline); via OPC UA = stepped through the server "
        "while a client receives every change; ratio = via OPC UA / model only; @100x real = --speed 100 achieved rate"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
