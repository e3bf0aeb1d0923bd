"""S7 (RELIABILITY.md): a rogue server's oversized message is refused with bounded memory.

The collector runs as operators run it (`edge-collector run`, a subprocess), so its RSS is its
own; the server is the real PLC simulator in the test process, made rogue: it acknowledges "no
limit" in its Hello answer (asyncua's client would adopt that) and a subscribed extra node gets a
64 MB ByteString while the lines keep running."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from asyncua import ua
from asyncua.common.connection import TransportLimits

from edge_collector.collector import Collector
from edge_collector.config import OpcUaSection
from edge_collector.opcua.message_limits import enforce_receive_limits
from tests.conftest import free_port
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running

BLOB_BYTES = 64 * 1024 * 1024
RSS_BOUND_MB = 50.0  # RELIABILITY.md S7: collector RSS at most +50 MB over its baseline
ROGUE_NODE = "Rogue.Blob"


def status_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {pid}")


def scrape(port: int) -> dict[str, float]:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    return {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines() if line and not line.startswith("#")
    }


def acknowledge_no_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (this process only; the collector is another) answers every Hello with
    MaxMessageSize = MaxChunkCount = 0, i.e. "no limit"."""
    original = TransportLimits.create_acknowledge_and_set_limits

    def rogue(self: TransportLimits, msg: ua.Hello) -> ua.Acknowledge:
        ack = original(self, msg)
        ack.MaxMessageSize = ack.MaxChunkCount = 0
        self.max_message_size = self.max_chunk_count = 0
        return ack

    monkeypatch.setattr(TransportLimits, "create_acknowledge_and_set_limits", rogue)


def test_the_receive_limits_are_finite_and_zero_is_refused() -> None:
    """S7: the configured limits are finite by default and 0 ("no limit" to asyncua) is refused."""
    defaults = OpcUaSection()
    assert 0 < defaults.max_message_size <= 64 * 1024 * 1024 and 0 < defaults.max_chunk_count <= 1024
    from asyncua import Client

    with pytest.raises(ValueError):
        enforce_receive_limits(Client("opc.tcp://127.0.0.1:4840"), 0, 256)


@pytest.mark.chaos
async def test_a_64_mb_value_is_refused_counted_and_the_other_tags_keep_flowing(
    start_plc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S7: the 64 MB ByteString costs one connection (BadRequestTooLarge), is counted on /metrics
    (too_large_messages, oversized_nodes) and quarantined with its reason; collector RSS stays
    within +50 MB of its baseline, and rows of the line's tags keep arriving after the event."""
    acknowledge_no_limits(monkeypatch)
    metrics_port = free_port()
    lake = tmp_path / "lake"
    async with start_plc(lines=None, step=False, speed=30.0) as plc:
        ns = await plc.server.register_namespace("urn:industrial-twin:rogue")
        blob = await plc.server.nodes.objects.add_variable(
            ua.NodeId(ROGUE_NODE, ns), ROGUE_NODE, ua.Variant(b"small", ua.VariantType.ByteString)
        )
        config = tmp_path / "collector.toml"
        config.write_text(f"""
[collector]
id = "rogue"
lake = "{lake}"
spool = "{tmp_path / "spool"}"
lab_mode = true
[opcua]
endpoint = "{plc.options.endpoint}"
security_policy = "None"
reconnect_max_delay_s = 1.0
[subscription]
lines = ["L1"]
publishing_interval_ms = 50
[[subscription.nodes]]
line = "L1"
tag = "{ROGUE_NODE}"
node_id = "ns={ns};s={ROGUE_NODE}"
[datalogger]
flush_interval_s = 0.3
[metrics]
port = {metrics_port}
""")
        env = {**os.environ, "TWIN_ENV": "dev"}
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge_collector.cli", "run", "--config", str(config), "--plain-logs"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        output: list[str] = []
        reader = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
        reader.start()
        try:

            async def until(predicate: Any, limit: float) -> bool:
                end = time.monotonic() + limit
                while time.monotonic() < end:
                    if await asyncio.to_thread(predicate):
                        return True
                    await asyncio.sleep(0.2)
                return False

            assert await until(
                lambda: scrape(metrics_port).get("edge_collector_samples_committed_total", 0) > 50, 60
            ), "".join(output)[-3000:]
            await asyncio.sleep(2.0)  # settle: imports done, buffers warm
            baseline = status_mb(proc.pid, "VmRSS")
            samples: list[float] = []
            sampling = True

            def sample() -> None:
                while sampling and proc.poll() is None:
                    samples.append(status_mb(proc.pid, "VmRSS"))
                    time.sleep(0.02)

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            event = datetime.now(UTC)
            await plc.server.write_attribute_value(
                blob.nodeid, ua.DataValue(ua.Variant(os.urandom(BLOB_BYTES), ua.VariantType.ByteString))
            )
            assert await until(lambda: scrape(metrics_port).get("edge_collector_oversized_nodes", 0) >= 1, 30), "".join(
                output
            )[-3000:]
            # rows of the line's own tags after the event, delivered over the re-established connection
            after = lambda: (
                read_table(lake, "raw_samples")
                .filter((pl.col("received_ts") > event) & (pl.col("tag") != ROGUE_NODE))
                .height
            )
            assert await until(lambda: after() > 20, 20), "no rows of the other tags after the event"
            await asyncio.sleep(1.0)
            counted = await asyncio.to_thread(scrape, metrics_port)
            sampling = False
            sampler.join()
            peak_hwm = status_mb(proc.pid, "VmHWM")
            final = status_mb(proc.pid, "VmRSS")
            assert proc.poll() is None, "the collector died"
            rows_after = after()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            finally:
                reader.join(timeout=5)
    log = "".join(output)
    peak = max(samples)
    refused_at = re.findall(r"Message size: (\d+) is > configured max message size", log)
    print(
        f"\nS7: {counted['edge_collector_too_large_messages_total']:.0f} too-large message(s) "
        f"(BadRequestTooLarge, refused after {int(refused_at[0]) / 2**20 if refused_at else float('nan'):.1f} MiB "
        f"of the 64 MiB value), {counted['edge_collector_oversized_nodes']:.0f} node unmonitored and quarantined; "
        f"collector RSS baseline {baseline:.1f} MB, peak {peak:.1f} MB (+{peak - baseline:.1f}; VmHWM "
        f"{peak_hwm:.1f}), after {final:.1f} MB; {rows_after} rows of the other tags after the event; "
        f"{len(samples)} RSS samples"
    )
    assert proc.returncode == 0, log[-3000:]
    assert peak - baseline < RSS_BOUND_MB, f"RSS {baseline:.0f} -> peak {peak:.0f} MB"
    assert counted["edge_collector_too_large_messages_total"] >= 1
    assert counted["edge_collector_oversized_nodes"] == 1
    assert counted["edge_collector_connected"] == 1.0
    assert "BadRequestTooLarge" in log and "larger than opcua.max_message_size (16777216 bytes" in log
    quarantine = read_table(lake, "quarantine").filter(pl.col("reason") == "too_large")
    assert quarantine.height == 1 and quarantine["node_id"][0] == f"ns={ns};s={ROGUE_NODE}"


@pytest.mark.chaos
async def test_a_value_oversized_before_the_collector_starts_is_dropped_and_collection_goes_on(
    start_plc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S7, the value is already 64 MB when the collector subscribes (in-process, so no RSS figure):
    the first publish is refused, the node is found and no longer monitored, the line's tags flow."""
    acknowledge_no_limits(monkeypatch)
    async with start_plc(step=False, speed=30.0) as plc:
        ns = await plc.server.register_namespace("urn:industrial-twin:rogue")
        blob = await plc.server.nodes.objects.add_variable(
            ua.NodeId(ROGUE_NODE, ns), ROGUE_NODE, ua.Variant(b"small", ua.VariantType.ByteString)
        )
        await plc.server.write_attribute_value(
            blob.nodeid, ua.DataValue(ua.Variant(os.urandom(BLOB_BYTES), ua.VariantType.ByteString))
        )
        config = lab_config(
            plc,
            tmp_path,
            subscription={
                "lines": ["L1"],
                "nodes": [{"line": "L1", "tag": ROGUE_NODE, "node_id": f"ns={ns};s={ROGUE_NODE}"}],
            },
        )
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            end = time.monotonic() + 30
            while time.monotonic() < end and not (
                collector.oversized_nodes and collector.connected.is_set() and collector.received > 50
            ):
                await asyncio.sleep(0.2)
            await collector.datalogger.flush()
        raw = read_table(config.lake(), "raw_samples")
        print(
            f"\nS7 (oversized from the start): {collector.too_large_messages} too-large message(s), "
            f"{collector.oversized_nodes} node unmonitored, {raw.height} rows of the line's tags, "
            f"{collector.reconnects} reconnect(s)"
        )
        assert collector.too_large_messages >= 1 and collector.oversized_nodes == 1
        assert raw.filter(pl.col("tag") != ROGUE_NODE).height > 20
        assert read_table(config.lake(), "quarantine").filter(pl.col("reason") == "too_large").height == 1
