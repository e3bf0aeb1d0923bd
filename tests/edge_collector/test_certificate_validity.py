"""S5 (RELIABILITY.md): certificate validity. A real PLC server and a real collector over loopback
with SignAndEncrypt; the certificates are written with the project's conventions (subject
`O=industrial-twin`, SubjectAltName with the application URI, localhost and 127.0.0.1) but with
chosen validity periods: expired, or expiring in fewer days than the warning threshold."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import urllib.request
from datetime import UTC, datetime, timedelta
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import pytest
from asyncua.crypto import cert_gen
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

import plc.server
from edge_collector.collector import Collector
from edge_collector.config import CollectorConfig
from edge_collector.opcua.certificates import CERT_WARN_DAYS, CertificateInvalid
from edge_collector.session import app_uri
from plc.security import PkiLayout, trust_certificate
from tests.conftest import free_port
from tests.edge_collector.conftest import clock_seen, lab_config, read_table, running

COLLECTOR_ID = "test-edge"


def write_certificate(
    pki: PkiLayout, uri: str, common_name: str, not_before: datetime, not_after: datetime, server: bool = False
) -> tuple[Path, Path]:
    """A self-signed application certificate with the given validity period, laid out like
    plc.security.ensure_certificate (key 0600, DER certificate); reuses the PKI's key if present."""
    pki.create()
    if pki.key.exists():
        key: Any = serialization.load_pem_private_key(pki.key.read_bytes(), password=None)
    else:
        key = cert_gen.generate_private_key()
        fd = os.open(pki.key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(cert_gen.dump_private_key_as_pem(key))
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "industrial-twin"),
        ]
    )
    usage = (
        [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
        if server
        else [ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .serial_number(x509.random_serial_number())
        .public_key(key.public_key())
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.UniformResourceIdentifier(uri),
                    x509.DNSName("localhost"),
                    x509.DNSName(socket.gethostname()),
                    x509.IPAddress(ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=True,
                data_encipherment=True,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage(usage), critical=False)
        .sign(key, hashes.SHA256())
    )
    pki.cert.write_bytes(cert.public_bytes(serialization.Encoding.DER))
    return pki.cert, pki.key


def own_certificate(tmp_path: Path, days_left: float, trusted_by: Any) -> PkiLayout:
    """The collector's PKI with a certificate that ends `days_left` days from now (negative: expired),
    trusted by the PLC so that only its dates can make the connection fail."""
    pki = PkiLayout(tmp_path / "pki-collector")
    now = datetime.now(UTC)
    cert, _ = write_certificate(
        pki,
        app_uri(COLLECTOR_ID),
        f"edge-collector {COLLECTOR_ID}",
        now - timedelta(days=400),
        now + timedelta(days=days_left),
    )
    trust_certificate(PkiLayout(trusted_by.options.pki_dir), cert)
    return pki


def secure_config(plc: Any, tmp_path: Path, **opcua: Any) -> CollectorConfig:
    raw = lab_config(plc, tmp_path).model_dump()
    raw["collector"]["lab_mode"] = False
    raw["opcua"].update(security_policy="Aes256Sha256RsaPss", pki=str(tmp_path / "pki-collector"), **opcua)
    return CollectorConfig.model_validate(raw)


def expired_server_certificate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The PLC simulator renews its own expired certificate at start (plc/security.py), so the PLC
    is handed an expired one by replacing only that provisioning step; the server, its secure
    channel and the collector are real."""
    now = datetime.now(UTC)
    cert, key = write_certificate(
        PkiLayout(tmp_path / "pki-expired-plc"),
        plc.server.APP_URI,
        "industrial-twin SoftPLC",
        now - timedelta(days=800),
        now - timedelta(days=2),
        server=True,
    )
    monkeypatch.setattr(plc.server, "ensure_certificate", lambda pki, uri, cn, server=True: (cert, key))
    return cert


async def test_expired_own_certificate_stops_the_collector_at_start(start_plc: Any, tmp_path: Path) -> None:
    """S5a: the collector's own certificate is expired (even though the PLC trusts it): the pre-flight
    refuses to start with an error that names the expiry and says to delete it so it is recreated;
    the certificate is not silently replaced and no rows are written."""
    async with start_plc(insecure=False) as server:
        pki = own_certificate(tmp_path, days_left=-3, trusted_by=server)
        before = pki.cert.read_bytes()
        config = secure_config(server, tmp_path, server_certificate=str(PkiLayout(server.options.pki_dir).cert))
        collector = Collector(config, environ={})
        with pytest.raises(CertificateInvalid) as err:
            await asyncio.wait_for(collector.run(asyncio.Event()), timeout=30)
        message = str(err.value)
        assert "collector certificate" in message and "expired on" in message and str(pki.cert) in message
        assert "delete" in message and "BadCertificateTimeInvalid" in message
        assert pki.cert.read_bytes() == before
        assert collector.client is None
        assert read_table(config.lake(), "raw_samples").height == 0
        assert server.validator is not None and server.validator.rejections == 0  # never reached the server


async def test_expired_pinned_server_certificate_is_refused(
    start_plc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S5b (pinned): the PLC presents an expired certificate, which the collector pins: asyncua would
    connect (a pinned certificate is only compared, not validated), the pre-flight refuses."""
    expired = expired_server_certificate(tmp_path, monkeypatch)
    async with start_plc(insecure=False) as server:
        own_certificate(tmp_path, days_left=365, trusted_by=server)
        config = secure_config(server, tmp_path, server_certificate=str(expired))
        collector = Collector(config, environ={})
        with pytest.raises(CertificateInvalid) as err:
            await asyncio.wait_for(collector.run(asyncio.Event()), timeout=30)
        message = str(err.value)
        assert "pinned server certificate" in message and "expired on" in message and str(expired) in message
        assert "renew the PLC's certificate" in message
        assert collector.client is None
        assert read_table(config.lake(), "raw_samples").height == 0


async def test_expired_trusted_server_certificate_is_refused(
    start_plc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """S5b (trust list): the PLC presents an expired certificate that is in the collector's trust
    list: every connect attempt fails with BadCertificateTimeInvalid (logged, retried with backoff),
    the collector never connects and writes no rows."""
    expired = expired_server_certificate(tmp_path, monkeypatch)
    trust = tmp_path / "trusted-servers"
    trust.mkdir()
    (trust / "plc.der").write_bytes(expired.read_bytes())
    async with start_plc(insecure=False) as server:
        own_certificate(tmp_path, days_left=365, trusted_by=server)
        config = secure_config(server, tmp_path, trust_list=str(trust))
        collector = Collector(config, environ={})
        stop = asyncio.Event()
        with caplog.at_level(logging.INFO, logger="edge_collector"):
            task = asyncio.create_task(collector.run(stop))
            await asyncio.sleep(3.5)
            assert not collector.connected.is_set()
            stop.set()
            assert await asyncio.wait_for(task, 30) == 0
        attempts = [r.getMessage() for r in caplog.records if "cannot connect" in r.getMessage()]
        assert 1 <= len(attempts) <= 3 and all("BadCertificateTimeInvalid" in a for a in attempts), attempts
        assert collector.metrics_snapshot()["connected"] == 0.0
        assert read_table(config.lake(), "raw_samples").height == 0


async def test_own_certificate_near_expiry_warns_and_exports_days_left(
    start_plc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """S5c: the collector's certificate expires in fewer days than CERT_WARN_DAYS: the collector starts
    and collects, logs a WARNING naming the certificate and the days left, and exports
    edge_collector_cert_days_left with that value."""
    days_left = 5.0
    assert days_left < CERT_WARN_DAYS
    port = free_port()
    async with start_plc(insecure=False) as server:
        pki = own_certificate(tmp_path, days_left=days_left, trusted_by=server)
        before = pki.cert.read_bytes()
        config = secure_config(server, tmp_path, server_certificate=str(PkiLayout(server.options.pki_dir).cert))
        config = CollectorConfig.model_validate({**config.model_dump(), "metrics": {"port": port}})
        with caplog.at_level(logging.INFO, logger="edge_collector"):
            async with running(Collector(config, environ={})) as collector:
                for _ in range(6):
                    await server.step(10.0)
                    await asyncio.sleep(0.01)
                await clock_seen(collector, server)
                await collector.datalogger.flush()
                body = await asyncio.to_thread(
                    lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
                )
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in body.decode().splitlines()
            if line and not line.startswith("#")
        }
        assert values["edge_collector_cert_days_left"] == pytest.approx(days_left, abs=0.01)
        assert collector.cert_days_left == pytest.approx(days_left, abs=0.01)
        assert values["edge_collector_connected"] == 1.0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "expires in" in r.getMessage()]
        assert warnings and str(pki.cert) in warnings[0].getMessage() and "5.0 days" in warnings[0].getMessage()
        assert pki.cert.read_bytes() == before  # not renewed behind the operator's back
        assert read_table(config.lake(), "raw_samples").height > 10
