"""The pinned server identity, and what the server at the endpoint presents now (RELIABILITY.md S3).

asyncua keeps the pinned certificate for every reconnect: the OpenSecureChannel request is
encrypted to the pinned key and CreateSession compares the server's certificate with it ("Server
certificate mismatch"), so a server with another certificate never gets a session. What asyncua
does not do is say so: its supervisor retries quietly at WARNING, and a server that cannot decrypt
the request just leaves it unanswered until the request timeout. So while the collector is not
connected it asks the endpoint which certificate it presents (GetEndpoints, which OPC UA allows
without security) and compares it with the pin, to raise an alert that names both fingerprints.
The answer is unauthenticated: it explains a refusal, it never grants trust.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from pathlib import Path

from asyncua import Client, ua
from cryptography.hazmat.primitives import serialization

from plc.security import load_certificate

from .message_limits import enforce_receive_limits

log = logging.getLogger("edge_collector")

#: A GetEndpoints answer is a few certificates long; the probe accepts no more than this (S7).
PROBE_MAX_MESSAGE = 1024 * 1024
PROBE_MAX_CHUNKS = 32


def pinned_der(path: Path) -> bytes:
    """The pinned certificate (DER or PEM file) as DER bytes, the form the server sends."""
    return load_certificate(path).public_bytes(serialization.Encoding.DER)


def fingerprint(der: bytes) -> str:
    """SHA-256 fingerprint, colon-separated, as `openssl x509 -fingerprint -sha256` prints it."""
    digest = hashlib.sha256(der).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


async def presented_certificate(
    endpoint: str, policy_uri: str, mode: ua.MessageSecurityMode, timeout: float
) -> bytes | None:
    """The certificate the server at `endpoint` presents for `policy_uri`/`mode`, as DER; None if
    the server cannot be reached or offers no such endpoint (then nothing can be said)."""
    client = Client(endpoint, timeout=timeout)
    enforce_receive_limits(client, PROBE_MAX_MESSAGE, PROBE_MAX_CHUNKS)
    try:
        endpoints = await client.connect_and_get_server_endpoints()
    except Exception:  # noqa: BLE001 - unreachable or refusing: no verdict, the caller retries later
        return None
    for ep in endpoints:
        if ep.SecurityPolicyUri == policy_uri and ep.SecurityMode == mode and ep.ServerCertificate:
            return _first_der(ep.ServerCertificate)
    return None


def _first_der(chain: bytes) -> bytes:
    """The application certificate: a ServerCertificate field may hold a chain, which is the DER
    certificates concatenated, the application's first (a SEQUENCE; its length says where it ends)."""
    if len(chain) < 4 or chain[0] != 0x30:
        return chain
    size = chain[1]
    if size < 0x80:
        return chain[: 2 + size]
    n = size & 0x7F
    return chain[: 2 + n + int.from_bytes(chain[2 : 2 + n], "big")]


class IdentityWatch:
    """While not connected, compare the certificate the endpoint presents with the pin, so that a
    refused reconnect to a different server raises an alert instead of a quiet retry."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.mismatches = 0
        self.active = False
        self._seen: bytes | None = None

    async def run(
        self,
        pinned: Path,
        policy_uri: str,
        mode: ua.MessageSecurityMode,
        timeout: float,
        interval: float,
        connected: asyncio.Event,
    ) -> None:
        pin = pinned_der(pinned)
        while True:
            if connected.is_set():
                self.note(None)  # a session over the pinned channel proves the identity
            else:
                try:
                    presented = await presented_certificate(self.endpoint, policy_uri, mode, timeout)
                except Exception:  # a failed probe says nothing; asyncua keeps retrying
                    log.debug("server identity probe failed", exc_info=True)
                    presented = None
                if presented is not None:
                    self.note(None if presented == pin else presented, pinned)
            await asyncio.sleep(interval)

    def note(self, mismatch: bytes | None, pinned: Path | None = None) -> None:
        if mismatch is None:
            if self.active:
                log.warning("the server at %s presents the pinned certificate again", self.endpoint)
            self.active = False
            self._seen = None
            return
        assert pinned is not None  # noqa: S101 - an invariant, stated for the type checker
        self.active = True
        if mismatch == self._seen:
            return
        self._seen = mismatch
        self.mismatches += 1
        log.error(
            "Server certificate mismatch: %s presents a certificate with SHA-256 fingerprint %s, not the pinned "
            "opcua.server_certificate %s (%s); the collector does not connect to it and writes nothing "
            "(possible man-in-the-middle). If the PLC's certificate was replaced on purpose, compare this "
            "fingerprint with the one shown on the PLC itself, then pin the new certificate "
            "(opcua.server_certificate) and restart the collector; otherwise find out what answers on "
            "this endpoint",
            self.endpoint,
            fingerprint(mismatch),
            pinned,
            fingerprint(pinned_der(pinned)),
            extra={"alert": "server_certificate_mismatch"},
        )
