"""Opening the collector's OPC UA session: the asyncua client with its security, pinned server
certificate, credentials and limits, and the connect loop with backoff.

Kept apart from `collector.py` (which runs the subscription, stores rows and keeps the gap records):
everything here happens before a session exists, and its refusals (an expired or missing
certificate, a password the server would receive in clear) must fail before anything is collected.
The collector's own hooks on the client (gap labels, oversized messages, the manifest) are attached
by the `wire` callback, at the same point of the client's set-up for every (re)connect attempt.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto import security_policies
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

from plc.security import PkiLayout, ensure_certificate

from .config import CollectorConfig, ConfigError
from .opcua import asyncua_compat as compat
from .opcua.certificates import CERT_WARN_DAYS, certificate_days_left
from .opcua.message_limits import enforce_receive_limits

log = logging.getLogger("edge_collector")

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}
KEEPALIVE_COUNT = 20  # publishing intervals without data before the server sends a keep-alive
NONE_POLICY_URI = "http://opcfoundation.org/UA/SecurityPolicy#None"


class SecurityRefused(RuntimeError):
    """The connection would be insecure in a way the configuration does not allow."""


def app_uri(collector_id: str) -> str:
    return f"urn:industrial-twin:edge-collector:{collector_id}"


def keepalive_period_s(config: CollectorConfig) -> float:
    """Seconds between the server's keep-alives of an idle subscription, as requested."""
    return config.subscription.publishing_interval_ms / 1000 * KEEPALIVE_COUNT


class SessionOpener:
    """Makes and connects the collector's asyncua client (see the module docstring)."""

    def __init__(self, config: CollectorConfig, environ: dict[str, str] | None, wire: Callable[[Client], None]) -> None:
        self.config = config
        self.environ = environ
        self.wire = wire
        self.cert_days_left: float | None = None

    def server_certificate(self) -> Path | None:
        pinned = self.config.opcua.server_certificate
        if pinned is not None:
            if not pinned.exists():
                raise ConfigError(f"opcua.server_certificate {pinned} does not exist")
            return pinned
        if self.config.opcua.trust_list is not None:
            return None
        local = self.config.twin_home() / "pki" / "plc" / "own" / "certs" / "cert.der"
        if local.exists():
            return local  # the embedded local default: pin the local plc-sim's certificate
        raise ConfigError(
            "no server certificate to pin and no trust list: set opcua.server_certificate (the PLC's "
            "certificate file) or opcua.trust_list (a folder of trusted server certificates)"
        )

    def check_certificates(self, warn: bool = False) -> None:
        """Pre-flight (RELIABILITY.md S5): raise CertificateInvalid for an expired or not yet valid own
        or pinned server certificate; set `cert_days_left` and, if `warn`, log a WARNING below
        CERT_WARN_DAYS. A missing own certificate is created later by ensure_certificate."""
        if self.config.opcua.security_policy == "None":
            return
        own = PkiLayout(self.config.pki()).cert
        if own.exists():
            self.cert_days_left = certificate_days_left(
                own,
                "collector certificate",
                f"renew it: delete {own} so the collector creates a new one at the next start, then trust the new "
                f"certificate on the PLC (e.g. plc-sim trust {own})",
            )
            if warn and self.cert_days_left < CERT_WARN_DAYS:
                log.warning(
                    "collector certificate %s expires in %.1f days; renew it: delete it so the collector "
                    "creates a new one, then trust the new certificate on the PLC",
                    own,
                    self.cert_days_left,
                    extra={"cert_days_left": self.cert_days_left},
                )
        pinned = self.server_certificate()
        if pinned is not None:
            certificate_days_left(
                pinned,
                "pinned server certificate",
                "renew the PLC's certificate and pin the new one (opcua.server_certificate)",
            )

    async def make_client(self) -> Client:
        cfg = self.config.opcua
        client = Client(
            cfg.endpoint,
            timeout=cfg.timeout_s,
            watchdog_intervall=cfg.watchdog_interval_s,
            auto_reconnect=True,
            reconnect_max_delay=cfg.reconnect_max_delay_s,
        )
        client.session_timeout = int(cfg.session_timeout_s * 1000)
        # asyncua's stale-subscription watchdog recreates a subscription after 1.5 keep-alive periods
        # without a publish response (3 s at 100 ms). A server busy encoding a burst takes longer than
        # that; the recreate then discards the burst it was sending ("data for unknown subscription").
        keepalive_s = keepalive_period_s(self.config)
        compat.set_stale_margin(client, max(self.config.subscription.stale_after_s, 2 * keepalive_s) / keepalive_s)
        enforce_receive_limits(client, cfg.max_message_size, cfg.max_chunk_count)
        self.wire(client)
        client.name = f"industrial-twin edge-collector {self.config.collector.id}"
        client.application_uri = app_uri(self.config.collector.id)
        user, password = self.config.credentials(self.environ)
        if cfg.security_policy != "None":
            pki = PkiLayout(self.config.pki())
            cert, key = ensure_certificate(
                pki, client.application_uri, f"edge-collector {self.config.collector.id}", server=False
            )
            self.check_certificates(warn=True)
            server_cert = self.server_certificate()
            mode = getattr(ua.MessageSecurityMode, cfg.security_mode)
            await client.set_security(
                POLICIES[cfg.security_policy],
                certificate=str(cert),
                private_key=str(key),
                server_certificate=str(server_cert) if server_cert else None,
                mode=mode,
            )
            if cfg.trust_list is not None:
                store = TrustStore([cfg.trust_list], [])
                await store.load()
                client.certificate_validator = CertificateValidator(
                    CertificateValidatorOptions.TRUSTED_VALIDATION | CertificateValidatorOptions.PEER_SERVER, store
                )
        if user:
            if cfg.security_mode != "SignAndEncrypt" or cfg.security_policy == "None":
                await self.refuse_plaintext_password(client)
            client.set_user(user)
            client.set_password(password or "")
        return client

    async def refuse_plaintext_password(self, client: Client) -> None:
        """asyncua sends a password in clear when the token policy is None on an unencrypted channel."""
        cfg = self.config.opcua
        policy_uri = POLICIES[cfg.security_policy].URI if cfg.security_policy != "None" else NONE_POLICY_URI
        for ep in await client.connect_and_get_server_endpoints():
            if ep.SecurityPolicyUri != policy_uri:
                continue
            for token in ep.UserIdentityTokens:
                if token.TokenType == ua.UserTokenType.UserName and token.SecurityPolicyUri in (
                    None,
                    "",
                    NONE_POLICY_URI,
                ):
                    raise SecurityRefused(
                        f"the server would receive the password in clear text (endpoint {ep.SecurityPolicyUri} "
                        f"{ep.SecurityMode.name}, user token policy None); use security_mode = 'SignAndEncrypt'"
                    )

    async def connect(self, stop: asyncio.Event) -> Client:
        delay = 1.0
        attempt = 0
        while not stop.is_set():
            attempt += 1
            client = await self.make_client()
            try:
                await client.connect()
                return client
            except SecurityRefused:
                raise
            except Exception as exc:  # noqa: BLE001 - every failure is retried with backoff and logged
                try:
                    await client.disconnect()
                except Exception:  # noqa: BLE001, S110 - closing after a failed connect, whose error is logged below
                    pass
                hint = ""
                if "No matching endpoints" in str(exc):
                    hint = (
                        " (the server offers no endpoint with this opcua.security_policy and security_mode: "
                        "set them to one it lists)"
                    )
                log.error(
                    "cannot connect to %s (attempt %d): %r%s; retrying in %.0f s",
                    self.config.opcua.endpoint,
                    attempt,
                    exc,
                    hint,
                    delay,
                    extra={"attempt": attempt},
                )
                try:
                    await asyncio.wait_for(stop.wait(), timeout=delay)
                except TimeoutError:
                    pass
                delay = min(delay * 2, max(self.config.opcua.reconnect_max_delay_s, 30.0))
        raise asyncio.CancelledError
