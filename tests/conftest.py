"""Shared fixtures: real PLC servers and real asyncua clients over loopback."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path

import pytest
from asyncua import Client
from asyncua.crypto.security_policies import SecurityPolicyAes256Sha256RsaPss

from plc.line_model import LineParams
from plc.plant_config import load_lines
from plc.security import PkiLayout, ensure_certificate, trust_certificate
from plc.server import PlcServer, ServerOptions
from plc.sim_clock import SimClock

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=timezone.utc)  # 06:00 in Berlin: a shift start
CLIENT_URI = "urn:industrial-twin:test-client"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def start_plc(tmp_path: Path) -> Callable[..., object]:
    """Factory: `async with start_plc(lines=..., step=True, insecure=True, users=...) as plc:`."""

    @asynccontextmanager
    async def factory(
        lines: list[LineParams] | None = None,
        step: bool = True,
        speed: float = 1.0,
        insecure: bool = True,
        users: dict[str, str] | None = None,
        seed: int = 7,
        start: datetime | None = T0,
    ) -> AsyncIterator[PlcServer]:
        clock = SimClock(start=start, speed=speed, step_mode=step)
        options = ServerOptions(port=free_port(), insecure=insecure, pki_dir=tmp_path / "pki-server", users=users or {})
        plc = PlcServer(lines or load_lines(["L1", "L2"]), clock, seed, options)
        async with plc:
            yield plc

    return factory


@asynccontextmanager
async def insecure_client(plc: PlcServer) -> AsyncIterator[Client]:
    client = Client(plc.options.endpoint, timeout=10)
    async with client:
        yield client


def client_pki(tmp_path: Path, trusted_by: PlcServer | None = None) -> PkiLayout:
    """A client certificate; trusted by the server when `trusted_by` is given."""
    pki = PkiLayout(tmp_path / "pki-client")
    ensure_certificate(pki, CLIENT_URI, "twin test client", server=False)
    if trusted_by is not None:
        trust_certificate(PkiLayout(trusted_by.options.pki_dir), pki.cert)
    return pki


async def secure_client(plc: PlcServer, pki: PkiLayout, user: str | None = None, password: str | None = None) -> Client:
    client = Client(plc.options.endpoint, timeout=10)
    client.application_uri = CLIENT_URI
    await client.set_security(
        SecurityPolicyAes256Sha256RsaPss, certificate=str(pki.cert), private_key=str(pki.key),
        server_certificate=str(PkiLayout(plc.options.pki_dir).cert),
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    return client
