"""S3 (RELIABILITY.md): the server's identity is pinned, and a swapped certificate is detected.

A real secure PLC server (certificate A, pinned by the collector) restarts on the same URL with a
self-signed certificate B made with a new key, as a man-in-the-middle would have; B's server even
trusts the collector's certificate, so only the collector's side can refuse. Then A comes back."""

from __future__ import annotations

import asyncio
import logging
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from edge_collector.config import CollectorConfig
from edge_collector.opcua.server_identity import fingerprint, pinned_der
from edge_collector.session import app_uri
from plc.security import PkiLayout, ensure_certificate, trust_certificate
from plc.server import PlcServer, ServerOptions
from plc.sim_clock import SimClock
from tests.conftest import T0, free_port
from tests.edge_collector.conftest import lab_config, read_table, running

R1_SLA_S = 15.0  # RELIABILITY.md R1: back to CONNECTED and receiving within 15 s


def scrape(port: int) -> dict[str, float]:
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    return {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in body.splitlines() if line and not line.startswith("#")
    }


async def wait_for(predicate: Any, limit: float, tick: Any = None) -> float | None:
    """Seconds until `predicate()` holds (None if not within `limit`); `tick()` runs every 0.1 s."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while loop.time() - start < limit:
        if predicate():
            return loop.time() - start
        if tick is not None:
            await tick()
        await asyncio.sleep(0.1)
    return None


@pytest.mark.parametrize("same_key", [False, True], ids=["new-key", "same-key"])
async def test_swapped_server_certificate_is_refused_alerted_and_recovered(
    start_plc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture, same_key: bool
) -> None:
    """S3: after the swap to certificate B the collector does not reconnect, raises
    edge_collector_server_certificate_mismatch(_active) on /metrics, logs an ERROR that names both
    fingerprints and says to re-pin if the change is legitimate, and writes no rows; when A is
    back it recovers within the R1 SLA and rows flow again. With a new key (a man-in-the-middle)
    the secure channel fails, since asyncua encrypts to the pinned key on every reconnect; with A's
    key in a new certificate the channel opens and asyncua's CreateSession comparison refuses."""
    metrics_port = free_port()
    async with start_plc(insecure=False) as plc_a:
        pki_a = PkiLayout(plc_a.options.pki_dir)
        own, _ = ensure_certificate(PkiLayout(tmp_path / "pki-collector"), app_uri("test-edge"), "edge", server=False)
        trust_certificate(pki_a, own)
        raw_cfg = lab_config(plc_a, tmp_path).model_dump()
        raw_cfg["collector"]["lab_mode"] = False
        raw_cfg["opcua"].update(
            security_policy="Aes256Sha256RsaPss",
            server_certificate=str(pki_a.cert),
            pki=str(tmp_path / "pki-collector"),
        )
        raw_cfg["metrics"] = {"port": metrics_port}
        config = CollectorConfig.model_validate(raw_cfg)
        # the identity probe runs every reconnect_max_delay_s and waits at most timeout_s (capped at 5 s)
        detect_bound = config.opcua.reconnect_max_delay_s + min(config.opcua.timeout_s, 5.0) + 1.0
        with (
            caplog.at_level(logging.INFO, logger="edge_collector"),
            caplog.at_level(logging.WARNING, logger="asyncua.client.client"),
        ):
            async with running(Collector(config, environ={})) as collector:
                for _ in range(3):
                    await plc_a.step(10.0)
                    await asyncio.sleep(0.05)
                assert await wait_for(lambda: read_table(config.lake(), "raw_samples").height > 0, 10) is not None

                # --- the swap: same URL, certificate B (new key, self-signed), collector trusted by B
                await plc_a.stop()
                plc_a.server.bserver = None  # already stopped; keep the fixture's exit quiet
                pki_b = PkiLayout(tmp_path / "pki-mitm")
                pki_b.create()
                if same_key:
                    pki_b.key.write_bytes(pki_a.key.read_bytes())
                    pki_b.key.chmod(0o600)
                trust_certificate(pki_b, own)
                plc_b = PlcServer(
                    plc_a.params,
                    SimClock(start=T0 + timedelta(minutes=10), step_mode=True),
                    plc_a.seed,
                    ServerOptions(port=plc_a.options.port, insecure=False, pki_dir=pki_b.root),
                )
                await plc_b.start()
                assert pki_b.cert.read_bytes() != pki_a.cert.read_bytes()
                swap = datetime.now(UTC)
                try:
                    detected = await wait_for(
                        lambda: collector.cert_mismatch_active, detect_bound, tick=lambda: plc_b.step(1.0)
                    )
                    assert detected is not None, f"mismatch not detected within {detect_bound} s"
                    # B keeps producing changes for a while: none may reach the lake
                    connected_seen = await wait_for(collector.connected.is_set, 4.0, tick=lambda: plc_b.step(1.0))
                    assert connected_seen is None
                    values = await asyncio.to_thread(scrape, metrics_port)
                    assert not plc_b.server.iserver.subscription_service.subscriptions  # no session got that far
                finally:
                    await plc_b.stop()
                assert values["edge_collector_server_certificate_mismatch_total"] == 1.0
                assert values["edge_collector_server_certificate_mismatch_active"] == 1.0
                assert values["edge_collector_connected"] == 0.0
                errors = [
                    r.getMessage()
                    for r in caplog.records
                    if r.levelno == logging.ERROR and "Server certificate mismatch" in r.getMessage()
                ]
                assert len(errors) == 1, errors  # one alert per episode, not one per retry
                assert (
                    fingerprint(pinned_der(pki_b.cert)) in errors[0]
                    and fingerprint(pki_a.cert.read_bytes()) in errors[0]
                )
                assert "pin the new certificate" in errors[0] and "opcua.server_certificate" in errors[0]
                refusals = [
                    r.getMessage()
                    for r in caplog.records
                    if r.name == "asyncua.client.client" and "Server certificate mismatch" in r.getMessage()
                ]
                if same_key:  # the channel opened: asyncua's own comparison in CreateSession refused
                    assert refusals, "asyncua's reconnect did not compare the certificate with the pin"

                # --- certificate A is back on the same URL
                plc_a2 = PlcServer(
                    plc_a.params, SimClock(start=T0 + timedelta(minutes=20), step_mode=True), plc_a.seed, plc_a.options
                )
                await plc_a2.start()
                restored = datetime.now(UTC)
                try:
                    recovered = await wait_for(
                        lambda: collector.connected.is_set() and collector.reconnects >= 1, R1_SLA_S
                    )
                    assert recovered is not None, f"not reconnected within {R1_SLA_S} s"
                    flowing = await wait_for(
                        lambda: (
                            read_table(config.lake(), "raw_samples")
                            .filter(pl.col("source_ts") >= T0 + timedelta(minutes=20))
                            .height
                            > 0
                        ),
                        R1_SLA_S - recovered,
                        tick=lambda: plc_a2.step(1.0),
                    )
                    assert flowing is not None, "no rows from the restored server within the R1 SLA"
                    assert not collector.cert_mismatch_active
                finally:
                    await plc_a2.stop()
                    await asyncio.sleep(0)
        raw = read_table(config.lake(), "raw_samples")
        during_swap = raw.filter((pl.col("received_ts") >= swap) & (pl.col("received_ts") < restored))
        from_b = raw.filter(
            (pl.col("source_ts") >= T0 + timedelta(minutes=10)) & (pl.col("source_ts") < T0 + timedelta(minutes=20))
        )
        assert during_swap.height == 0 and from_b.height == 0
        print(
            f"\nS3 ({'same' if same_key else 'new'} key): mismatch detected {detected:.2f} s after B started "
            f"(bound {detect_bound:.1f} s); "
            f"rows written after the swap: {during_swap.height} (by arrival), {from_b.height} (by source time); "
            f"recovered {recovered:.2f} s after A was restored, rows flowing {recovered + flowing:.2f} s after "
            f"(SLA {R1_SLA_S:.0f} s); {raw.height} rows in all"
        )


def test_a_chain_is_compared_by_its_application_certificate_and_pem_pins_work(tmp_path: Path) -> None:
    """S3: a ServerCertificate field may carry a chain (application certificate first); a pin may be
    a PEM file. Both reduce to the same DER bytes the comparison uses."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    from edge_collector.opcua.server_identity import _first_der

    a, _ = ensure_certificate(PkiLayout(tmp_path / "a"), "urn:test:a", "a")
    b, _ = ensure_certificate(PkiLayout(tmp_path / "b"), "urn:test:b", "b")
    der_a, der_b = a.read_bytes(), b.read_bytes()
    assert _first_der(der_a + der_b) == der_a and _first_der(der_a) == der_a
    pem = tmp_path / "a.pem"
    pem.write_bytes(x509.load_der_x509_certificate(der_a).public_bytes(serialization.Encoding.PEM))
    assert pinned_der(pem) == der_a and pinned_der(a) == der_a
    assert fingerprint(der_a) != fingerprint(der_b) and len(fingerprint(der_a)) == 95
