"""Shared fixtures: real PLC servers and real asyncua clients over loopback."""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from asyncua import Client, Server
from asyncua.crypto.security_policies import SecurityPolicyAes256Sha256RsaPss

from plc.line_model import LineParams
from plc.plant_config import load_lines
from plc.security import PkiLayout, ensure_certificate, trust_certificate
from plc.server import ADDRESS_SPACE_CACHE_ENV, PlcServer, ServerOptions
from plc.sim_clock import SimClock

pytest_plugins = ["tests.support.file_order"]

T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)  # 06:00 in Berlin: a shift start
CLIENT_URI = "urn:industrial-twin:test-client"


@pytest.fixture(scope="session", autouse=True)
def address_space_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One shelf of the standard OPC UA address space for every simulator of the session, in-process or
    subprocess (it inherits the environment): 2-3 s less at each of about a hundred server starts.
    Built here, once, before any server runs, so no two processes ever write it."""
    inherited = os.environ.get(ADDRESS_SPACE_CACHE_ENV)
    if inherited:
        yield Path(inherited)
        return
    path = tmp_path_factory.mktemp("opcua") / "standard_address_space"
    asyncio.run(Server().init(path))  # writes the shelf
    path.touch()  # what asyncua looks for (see plc.server.ADDRESS_SPACE_CACHE_ENV)
    os.environ[ADDRESS_SPACE_CACHE_ENV] = str(path)
    try:
        yield path
    finally:
        os.environ.pop(ADDRESS_SPACE_CACHE_ENV, None)


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
        wait_for_subscriber: bool = False,
    ) -> AsyncIterator[PlcServer]:
        clock = SimClock(start=start, speed=speed, step_mode=step)
        options = ServerOptions(
            port=free_port(),
            insecure=insecure,
            pki_dir=tmp_path / "pki-server",
            users=users or {},
            wait_for_subscriber=wait_for_subscriber,
        )
        plc = PlcServer(lines or load_lines(["L1", "L2"]), clock, seed, options)
        # asyncua's 1 s ServerStatus.CurrentTime loop makes every stop wait up to 1 s for its sleep; no
        # test reads CurrentTime (the client's liveness probe reads ServerState), so the tests go without it
        plc.server.disable_clock()
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
        SecurityPolicyAes256Sha256RsaPss,
        certificate=str(pki.cert),
        private_key=str(pki.key),
        server_certificate=str(PkiLayout(plc.options.pki_dir).cert),
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password or "")
    return client
