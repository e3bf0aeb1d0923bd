"""The long-running collector: OPC UA subscriptions in, durable Delta rows out.

One asyncio loop: asyncua's client (auto-reconnect, session reactivation, republish) delivers
data changes into a bounded queue (overflow counted, never silent); a consumer task normalizes
each change, drops replays by (line, tag, source_ts, value), and hands rows to the datalogger, whose
writes run in a worker thread. Connection losses and collector downtime become gap records.
The variability engine runs beside it, driven by the PLC clock's notifications.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeEvent, OverflowPolicy, StatusChangeEvent
from asyncua.crypto import security_policies
from asyncua.crypto.truststore import TrustStore
from asyncua.crypto.validator import CertificateValidator, CertificateValidatorOptions

from plc.security import PkiLayout, ensure_certificate
from plc.tagmap import TAGS, symbol

from .config import CollectorConfig, ConfigError
from .datalogger import Datalogger
from .dedupe import Deduper, Verdict, read_watermarks, value_key
from .gap_records import OpenGap, downtime_gap, end_open_gaps, last_gap_ends
from .manifest_writer import ManifestRecorder
from .normalize import NodeBinding, Normalizer
from .opcua import asyncua_compat as compat
from .opcua.certificates import CERT_WARN_DAYS, certificate_days_left
from .opcua.message_limits import TooLargeObserver, enforce_receive_limits, is_too_large
from .opcua.server_identity import fingerprint, pinned_der, presented_certificate

log = logging.getLogger("edge_collector")

POLICIES: dict[str, type[security_policies.SecurityPolicy]] = {
    "Aes256Sha256RsaPss": security_policies.SecurityPolicyAes256Sha256RsaPss,
    "Aes128Sha256RsaOaep": security_policies.SecurityPolicyAes128Sha256RsaOaep,
    "Basic256Sha256": security_policies.SecurityPolicyBasic256Sha256,
}
CLOCK_TAG = "Clock.Now"
KEEPALIVE_COUNT = 20  # publishing intervals without data before the server sends a keep-alive
DRAIN_MAX = 10_000  # notifications stored per wake-up at most, so a burst cannot hold the event loop
NONE_POLICY_URI = "http://opcfoundation.org/UA/SecurityPolicy#None"


class SecurityRefused(RuntimeError):
    """The connection would be insecure in a way the configuration does not allow."""


def app_uri(collector_id: str) -> str:
    return f"urn:industrial-twin:edge-collector:{collector_id}"


EngineFactory = Callable[[Client, Callable[[dict[str, Any]], None], str], Any]


def tune_gc(gen0_threshold: int = 50_000) -> None:
    """Process set-up for a long-running collector: freeze what start-up allocated (modules, config,
    caches) out of the cyclic GC's reach, and collect the youngest generation every 50,000 container
    allocations instead of 700. Each sample allocates a dozen short-lived containers (decoded
    notifications, rows) that reference counting frees; with the defaults, the collections that walk
    the buffered rows cost 6 us of a collector's 24 us per sample (bench/collector_throughput.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(gen0_threshold, *gc.get_threshold()[1:])


class Collector:
    """Owns the OPC UA client, the subscription, the datalogger and the variability engine."""

    def __init__(
        self,
        config: CollectorConfig,
        environ: dict[str, str] | None = None,
        engine_factory: EngineFactory | None = None,
    ) -> None:
        self.config = config
        self.environ = environ
        self.session_id = f"{datetime.now(UTC):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:8]}"
        dl = config.datalogger
        self.datalogger = Datalogger(
            config.lake(),
            config.spool(),
            config.collector.id,
            flush_interval_s=dl.flush_interval_s,
            max_batch_rows=dl.max_batch_rows,
            max_buffer_rows=dl.max_buffer_rows,
            compact_every_s=dl.compact_every_s,
            checkpoint_every_commits=dl.checkpoint_every_commits,
            compact_every_commits=dl.compact_every_commits,
        )
        self.normalizer = Normalizer(self.session_id)
        self.deduper = Deduper()
        self.manifest = ManifestRecorder(
            self.session_id, self.normalizer.next_seq, lambda rows: self.datalogger.add_many("subscriptions", rows)
        )
        self.client: Client | None = None
        self.bindings: dict[ua.NodeId, NodeBinding] = {}
        self.engine_factory = engine_factory
        self.engine: Any = None
        self.connected = asyncio.Event()
        self.received = 0
        self.dropped_notifications = 0
        self.reconnects = 0
        self.gaps_written = 0
        self.quarantined = 0
        self.cert_days_left: float | None = None
        self.too_large_messages = 0
        self.oversized_nodes = 0
        self.cert_mismatches = 0
        self.cert_mismatch_active = False
        self._mismatch_seen: bytes | None = None
        self._too_large_handled = 0
        self._scanning_sizes = False
        self._force_recreate = False
        self._sub: Any = None
        self._items: dict[int, Any] = {}
        self.sim_now: datetime | None = None
        self._clock_changed = asyncio.Event()
        self._last_source: dict[str, datetime] = {}
        self._gaps: dict[str, OpenGap] = {}
        self._connected_once = False
        self._subscription_id: int | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._metrics_server: Any = None
        self._engine_started = False
        self._stopping = False
        self._loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------------ rows
    def _emit(self, table: str, row: dict[str, Any]) -> None:
        if table == "quarantine":
            self.quarantined += 1
        self.datalogger.add(table, row)

    def _emit_event(self, row: dict[str, Any]) -> None:
        """Sink of the variability engine: one injected_events row per injection."""
        self.datalogger.add("injected_events", row)

    def _open_gap(self, line_id: str, start: datetime, reason: str) -> None:
        if line_id in self._gaps:
            return  # one open gap per line; the earliest start wins
        self._gaps[line_id] = OpenGap(
            {
                "line_id": line_id,
                "gap_start": start,
                "gap_end": None,
                "reason": reason,
                "session_id": self.session_id,
                "source_ts_before": self._last_source.get(line_id),
                "source_ts_after": None,
            }
        )

    def _relabel_gaps(self, reason: str, replacing: tuple[str, ...]) -> None:
        """Give the open gaps whose reason is one of `replacing` the better-known `reason`."""
        for gap in self._gaps.values():
            if gap.row["reason"] in replacing:
                gap.row["reason"] = reason

    def _close_gaps(self, end: datetime, reason: str | None = None) -> None:
        for gap in self._gaps.values():
            if not gap.closed:
                gap.row["gap_end"] = end
                if reason and gap.row["reason"] == "disconnected":
                    gap.row["reason"] = reason
                gap.closed = True

    def _write_gap(self, line_id: str, source_after: datetime | None) -> None:
        gap = self._gaps.pop(line_id)
        row = dict(gap.row)
        row["gap_end"] = row["gap_end"] or datetime.now(UTC)
        row["source_ts_after"] = source_after
        row["seq"] = self.normalizer.next_seq(line_id)
        row["day"] = row["gap_start"].strftime("%Y-%m-%d")
        self.datalogger.add("gaps", row)
        self.gaps_written += 1
        log.warning(
            "gap on %s from %s to %s (%s)",
            line_id,
            row["gap_start"],
            row["gap_end"],
            row["reason"],
            extra={"line_id": line_id, "reason": row["reason"]},
        )

    # ------------------------------------------------------------------ connection
    def _server_certificate(self) -> Path | None:
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

    def _check_certificates(self, warn: bool = False) -> None:
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
        pinned = self._server_certificate()
        if pinned is not None:
            certificate_days_left(
                pinned,
                "pinned server certificate",
                "renew the PLC's certificate and pin the new one (opcua.server_certificate)",
            )

    async def _make_client(self) -> Client:
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
        keepalive_s = self.config.subscription.publishing_interval_ms / 1000 * KEEPALIVE_COUNT
        compat.set_stale_margin(client, max(self.config.subscription.stale_after_s, 2 * keepalive_s) / keepalive_s)
        enforce_receive_limits(client, cfg.max_message_size, cfg.max_chunk_count)
        client.uaclient.observer = TooLargeObserver(self._on_too_large)
        self._guard_subscription_restore(client)

        async def finalize_and_record(finalize: compat.FinalizeReconnect, reused: bool) -> None:
            # A new session means the server had forgotten ours and whatever it still held for us (R4);
            # the subscription id alone cannot tell, since a restarted server may hand out the same one.
            if not reused:
                self._relabel_gaps("session_lost", ("disconnected", "subscription_stale"))
            await finalize(reused)

        compat.wrap_finalize_reconnect(client, finalize_and_record)
        compat.observe_monitored_items(client, self.manifest.observe)
        client.name = f"industrial-twin edge-collector {self.config.collector.id}"
        client.application_uri = app_uri(self.config.collector.id)
        user, password = self.config.credentials(self.environ)
        if cfg.security_policy != "None":
            pki = PkiLayout(self.config.pki())
            cert, key = ensure_certificate(
                pki, client.application_uri, f"edge-collector {self.config.collector.id}", server=False
            )
            self._check_certificates(warn=True)
            server_cert = self._server_certificate()
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
                await self._refuse_plaintext_password(client)
            client.set_user(user)
            client.set_password(password or "")
        return client

    async def _refuse_plaintext_password(self, client: Client) -> None:
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

    async def _connect(self, stop: asyncio.Event) -> Client:
        delay = 1.0
        attempt = 0
        while not stop.is_set():
            attempt += 1
            client = await self._make_client()
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

    # ------------------------------------------------------------------ server identity (S3)
    async def _watch_identity(self, pinned: Path) -> None:
        """While not connected, compare the certificate the endpoint presents with the pin, so that a
        refused reconnect to a different server raises an alert instead of a quiet retry."""
        cfg = self.config.opcua
        pin = pinned_der(pinned)
        policy_uri = POLICIES[cfg.security_policy].URI
        mode = getattr(ua.MessageSecurityMode, cfg.security_mode)
        interval = max(0.5, min(cfg.reconnect_max_delay_s, 5.0))
        while True:
            if self.connected.is_set():
                self._note_identity(None)  # a session over the pinned channel proves the identity
            else:
                try:
                    presented = await presented_certificate(cfg.endpoint, policy_uri, mode, min(cfg.timeout_s, 5.0))
                except Exception:  # a failed probe says nothing; asyncua keeps retrying
                    log.debug("server identity probe failed", exc_info=True)
                    presented = None
                if presented is not None:
                    self._note_identity(None if presented == pin else presented, pinned)
            await asyncio.sleep(interval)

    def _note_identity(self, mismatch: bytes | None, pinned: Path | None = None) -> None:
        if mismatch is None:
            if self.cert_mismatch_active:
                log.warning("the server at %s presents the pinned certificate again", self.config.opcua.endpoint)
            self.cert_mismatch_active = False
            self._mismatch_seen = None
            return
        assert pinned is not None  # noqa: S101 - an invariant, stated for the type checker
        self.cert_mismatch_active = True
        if mismatch == self._mismatch_seen:
            return
        self._mismatch_seen = mismatch
        self.cert_mismatches += 1
        log.error(
            "Server certificate mismatch: %s presents a certificate with SHA-256 fingerprint %s, not the pinned "
            "opcua.server_certificate %s (%s); the collector does not connect to it and writes nothing "
            "(possible man-in-the-middle). If the PLC's certificate was replaced on purpose, compare this "
            "fingerprint with the one shown on the PLC itself, then pin the new certificate "
            "(opcua.server_certificate) and restart the collector; otherwise find out what answers on "
            "this endpoint",
            self.config.opcua.endpoint,
            fingerprint(mismatch),
            pinned,
            fingerprint(pinned_der(pinned)),
            extra={"alert": "server_certificate_mismatch"},
        )

    # ------------------------------------------------------------------ oversized messages (S7)
    def _on_too_large(self, request_type: str, exc: BaseException) -> None:
        if self._scanning_sizes:
            return  # provoked by the size scan, which names the node itself
        self.too_large_messages += 1
        log.error(
            "the server sent a message larger than opcua.max_message_size (%d bytes, at most %d chunks) in "
            "answer to %s: %s; the connection is dropped and re-established, and the node with the oversized "
            "value is looked for and no longer monitored. If values that large are expected, raise "
            "opcua.max_message_size",
            self.config.opcua.max_message_size,
            self.config.opcua.max_chunk_count,
            request_type,
            exc.__class__.__name__,
            extra={"status": exc.__class__.__name__},
        )

    def _guard_subscription_restore(self, client: Client) -> None:
        """After a too-large message, find the oversized node before asyncua restores the subscription
        on the next reconnect (Client._recreate_subscriptions), so the restore does not ask for it again."""

        async def restore_guarded(restore: compat.AsyncStep) -> None:
            if self.too_large_messages > self._too_large_handled:
                seen = self.too_large_messages
                await self._stop_monitoring_oversized(client)
                self._too_large_handled = seen
                self._force_recreate = True  # the unacknowledged message is likely the oversized one
            try:
                await restore()
            finally:
                self._force_recreate = False

        compat.wrap_restore_subscriptions(client, restore_guarded)

    async def _stop_monitoring_oversized(self, client: Client) -> None:
        """Read each monitored node on its own: a read answered by a too-large message names the node
        whose value exceeds the limit. That node is no longer monitored (a new subscription is made
        without it), gets a quarantine row with the reason, and an ERROR says what to do. Raises
        ConnectionError when it found one, since that answer cost the connection."""
        self._scanning_sizes = True
        try:
            for handle, item in list(self._items.items()):
                try:
                    await client.get_node(item.node.nodeid).read_data_value(raise_on_bad_status=False)
                except ua.UaStatusCodeError as exc:
                    if is_too_large(exc):
                        self._forget_oversized(handle, item.node.nodeid)
                        raise ConnectionError("an oversized value cost the connection; reconnecting") from exc
                    log.debug("size scan: %s not readable (%s)", item.node.nodeid, exc)  # not the oversized one
                except TimeoutError:
                    log.debug("size scan: reading %s timed out", item.node.nodeid)
        finally:
            self._scanning_sizes = False

    def _forget_oversized(self, handle: int, nodeid: ua.NodeId) -> None:
        self._items.pop(handle, None)
        if self._sub is not None:
            compat.forget_monitored_item(self._sub, handle)
        self.oversized_nodes += 1
        binding = self.bindings.pop(nodeid, None)
        limit = self.config.opcua.max_message_size
        detail = (
            f"value larger than opcua.max_message_size ({limit} bytes): no longer monitored; raise the limit "
            f"if such values are expected, or fix the server's value"
        )
        self._emit(
            "quarantine",
            self.normalizer.quarantine(
                binding, None, datetime.now(UTC), "too_large", detail, node_id=nodeid.to_string()
            ).row,
        )
        log.error(
            "node %s (%s) has a value larger than opcua.max_message_size (%d bytes); it is no longer monitored "
            "until the collector restarts; the other nodes keep flowing. Raise opcua.max_message_size if such "
            "values are expected, or fix the value on the server",
            nodeid.to_string(),
            binding.tag if binding else "?",
            limit,
            extra={"node_id": nodeid.to_string()},
        )

    def _on_state(self, state: UaClientState) -> None:
        now = datetime.now(UTC)
        if state is UaClientState.CONNECTED:
            if not self.connected.is_set():
                self.connected.set()
                self._note_identity(None)  # a session over the pinned channel proves the identity
                compat.quiet_repeated_tracebacks().reset()  # the next outage logs its first error again
                if self._connected_once:
                    self.reconnects += 1
                self._connected_once = True
        elif self.connected.is_set():
            self.connected.clear()
            if self._stopping:
                return  # our own disconnect: not an outage
            log.warning("connection to %s lost (%s)", self.config.opcua.endpoint, state.value)
            for line_id in self.config.subscription.lines:
                self._open_gap(line_id, now, "disconnected")

    # ------------------------------------------------------------------ subscription
    def _bind_nodes(self, ns: int) -> list[ua.NodeId]:
        sub = self.config.subscription
        runtime = self.config.opcua.runtime
        tags = TAGS.subscribed_line_tags() if sub.tags == "default" else tuple(TAGS.line_tag(t) for t in sub.tags)
        for line_id in sub.lines:
            for tag in tags:
                nodeid = ua.NodeId(symbol(runtime, line_id, tag.path), ns)
                self.bindings[nodeid] = NodeBinding(line_id, tag.path, nodeid.to_string(), tag.variant_type)
        for spec in sub.nodes:
            nodeid = ua.NodeId.from_string(spec.node_id)
            self.bindings[nodeid] = NodeBinding(spec.line, spec.tag, spec.node_id)
        if self.engine_factory is not None:
            clock = ua.NodeId(symbol(runtime, None, CLOCK_TAG), ns)
            self.bindings[clock] = NodeBinding(
                "_plant", CLOCK_TAG, clock.to_string(), ua.VariantType.DateTime, store=False
            )
        return list(self.bindings)

    async def _subscribe(self, client: Client) -> Any:
        cfg = self.config.subscription
        ns = await client.get_namespace_index(self.config.opcua.namespace_uri)
        nodeids = self._bind_nodes(ns)
        self.manifest.configure(self.bindings.values())
        params = ua.CreateSubscriptionParameters(
            RequestedPublishingInterval=cfg.publishing_interval_ms,
            RequestedLifetimeCount=600,
            RequestedMaxKeepAliveCount=KEEPALIVE_COUNT,
            MaxNotificationsPerPublish=0,
            PublishingEnabled=True,
            Priority=0,
        )
        sub = await client.create_subscription(
            params, None, queue_maxsize=cfg.buffer_events, overflow=OverflowPolicy.WARN
        )

        def counting_overflow(original: compat.OnOverflow, event: Any) -> None:
            # never silent: count exactly, log rate-limited
            self.dropped_notifications += 1
            if self.dropped_notifications == 1 or self.dropped_notifications % 10_000 == 0:
                log.error(
                    "notification queue full (%d events): %d notifications dropped so far; raise "
                    "subscription.buffer_events or reduce the subscribed tags",
                    cfg.buffer_events,
                    self.dropped_notifications,
                )
            original(event)

        compat.wrap_handle_overflow(sub, counting_overflow)

        async def republish_unacknowledged(republish_gaps: compat.Republish, available: list[int]) -> bool:
            # At-least-once: after a reconnect, ask again for every message the server still holds
            # unacknowledged, not only those after the last sequence number asyncua recorded (it
            # records a number before the notifications are safely handed over, so a message in
            # flight when the transport broke would be skipped). Replays are dropped by the deduper.
            if self._force_recreate:
                # After a too-large message, asking for it again would cost the connection again, in
                # a loop: recreate the subscription instead (the gap is recorded as session_lost).
                self._force_recreate = False
                return False
            if available and sub.last_sequence_number is not None:
                sub.last_sequence_number = min(sub.last_sequence_number, min(available) - 1)
            return await republish_gaps(available)

        compat.wrap_republish_gaps(sub, republish_unacknowledged)

        async def recreate_or_keep(recreate: compat.AsyncStep) -> None:
            # asyncua's recreate() forgets the subscription id and the monitored items *before* it asks
            # the server for a new subscription. When that request fails (its stale-subscription watchdog
            # fires while the link is half-open), the reconnect later "restores" an empty subscription:
            # connected, the server still publishing to the old id, and not one sample stored. Keep the
            # old id and items so the reconnect transfers the old subscription (or recreates it in full).
            old_id, items = sub.subscription_id, compat.monitored_items(sub)
            if self.connected.is_set():  # the stale watchdog: whatever the old subscription still held is lost
                now = datetime.now(UTC)
                log.warning(
                    "no publish response on subscription %s for %.0f s with the connection up: recreating "
                    "it; the interval is recorded as a gap",
                    old_id,
                    self.config.subscription.stale_after_s,
                )
                for line_id in self.config.subscription.lines:
                    self._open_gap(line_id, now, "subscription_stale")
            try:
                await recreate()
                self.manifest.write(datetime.now(UTC))  # a new subscription: its manifest
            except Exception:
                self._relabel_gaps("disconnected", ("subscription_stale",))  # it failed: the link is down
                if sub.subscription_id is None and old_id is not None:
                    compat.restore_subscription(sub, old_id, items)
                    log.warning("recreating subscription %s failed; kept it for the reconnect to transfer", old_id)
                raise

        compat.wrap_recreate(sub, recreate_or_keep)
        self._sub = sub
        results = await sub.subscribe_data_change(
            [client.get_node(n) for n in nodeids],
            queuesize=cfg.queue_size,
            sampling_interval=cfg.sampling_interval_ms,
        )
        for nodeid, handle in zip(nodeids, results if isinstance(results, list) else [results]):
            if isinstance(handle, ua.StatusCode) and not handle.is_good():
                self.bindings.pop(nodeid)  # missing or rejected: logged and recorded by the manifest below
        if cfg.deadband_abs > 0:
            for nodeid, binding in self.bindings.items():
                if binding.expected == ua.VariantType.Double:
                    await sub.deadband_monitor(client.get_node(nodeid), cfg.deadband_abs)
        self.manifest.write(datetime.now(UTC))
        self._items = compat.monitored_items(sub)  # the nodes the size scan reads after a too-large message
        log.info(
            "subscribed %d nodes (publishing interval revised to %s ms)",
            len(self.bindings),
            sub.parameters.RequestedPublishingInterval,
        )
        self._subscription_id = sub.subscription_id
        return sub

    async def _consume(self, sub: Any) -> None:
        """Take every notification queued since the last wake-up, then store them as one batch.

        One clock reading and one buffer hand-over per batch instead of per sample: this loop is the
        collector's hot path (RELIABILITY R5 accounting is unchanged: nothing is dropped here)."""
        while True:
            ev = await sub.next_event()
            if ev is None:
                return
            events = [ev]
            queue = compat.event_queue(sub)
            closed = False
            while len(events) < DRAIN_MAX:
                try:
                    ev = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                if ev is None:  # the subscription closed: hand the sentinel back to next_event()
                    closed = True
                    break
                events.append(ev)
            self._store(sub, events)
            if closed:
                queue.put_nowait(None)

    def _store(self, sub: Any, events: list[Any]) -> None:
        bindings, normalizer, deduper = self.bindings, self.normalizer, self.deduper
        received = datetime.now(UTC)
        samples: list[dict[str, Any]] = []
        for ev in events:
            if not isinstance(ev, DataChangeEvent):
                if isinstance(ev, StatusChangeEvent):
                    log.warning("subscription status change: %s", ev.notification.Status)
                continue
            self.received += 1
            dv = ev.data.monitored_item.Value
            binding = bindings.get(ev.node.nodeid)
            if binding is None:
                self._emit(
                    "quarantine",
                    normalizer.quarantine(
                        None, dv, received, "unknown_node", "not subscribed", node_id=ev.node.nodeid.to_string()
                    ).row,
                )
                continue
            if not binding.store:
                value = dv.Value.Value if dv.Value is not None else None
                if isinstance(value, datetime):
                    self.sim_now = value if value.tzinfo else value.replace(tzinfo=UTC)
                    self._clock_changed.set()
                continue
            if self._subscription_id is not None and sub.subscription_id != self._subscription_id:
                self._close_gaps(received, "session_lost")  # recreated, not transferred: the server lost it
                self._subscription_id = sub.subscription_id
            elif self._gaps:
                self._close_gaps(received)
            n = normalizer.normalize(binding, dv, received)
            if n.table == "raw_samples":
                row = n.row
                line_id = binding.line_id
                verdict = deduper.check(
                    line_id,
                    binding.tag,
                    row["source_ts"],
                    value_key(row["value"], row["value_text"], row["status_code"]),
                )
                if verdict is Verdict.NEW:
                    if line_id in self._gaps and self._gaps[line_id].closed:
                        self._write_gap(line_id, row["source_ts"])
                    self._last_source[line_id] = row["source_ts"]
                    samples.append(row)
                    continue
                if verdict is Verdict.DUPLICATE:
                    continue
                n = normalizer.quarantine(
                    binding,
                    dv,
                    received,
                    "out_of_order",
                    f"older than stored {deduper.watermark(line_id, binding.tag)}",
                )
            self._emit(n.table, n.row)
        self.datalogger.add_many("raw_samples", samples)

    async def _drive_engine(self) -> None:
        while True:
            await self._clock_changed.wait()
            self._clock_changed.clear()
            if self.sim_now is None or not self.connected.is_set():
                continue
            try:
                if not self._engine_started:
                    await self.engine.start(self.sim_now)
                    self._engine_started = True
                await self.engine.on_clock(self.sim_now)
            except Exception:  # a failed injection is logged; collection goes on
                log.exception("variability engine failed at %s; it retries on the next clock tick", self.sim_now)

    # ------------------------------------------------------------------ lifecycle
    def metrics_snapshot(self) -> dict[str, Any]:
        stats = self.datalogger.stats
        lat = sorted(stats.commit_latencies) if stats.commit_latencies else []
        pick = (lambda q: lat[min(len(lat) - 1, int(q * len(lat)))]) if lat else (lambda q: 0.0)
        return {
            "samples_received": self.received,
            "samples_committed": stats.rows_committed,
            "rows_acknowledged": stats.rows_acknowledged,
            "notifications_dropped": self.dropped_notifications,
            "rows_dropped": stats.dropped_rows,
            "duplicates": self.deduper.duplicates,
            "quarantined_rows": self.quarantined,
            "reconnects": self.reconnects,
            "gaps": self.gaps_written,
            "injections": getattr(self.engine, "injections", 0) if self.engine else 0,
            "buffer_depth": stats.buffer_rows,
            "commit_latency_p50_seconds": pick(0.5),
            "commit_latency_p99_seconds": pick(0.99),
            "connected": 1.0 if self.connected.is_set() else 0.0,
            "cert_days_left": self.cert_days_left if self.cert_days_left is not None else 0.0,
            "too_large_messages": self.too_large_messages,
            "oversized_nodes": self.oversized_nodes,
            "server_certificate_mismatch": self.cert_mismatches,
            "server_certificate_mismatch_active": 1.0 if self.cert_mismatch_active else 0.0,
            # read from the metrics thread too: all_tasks(loop) copes with a set changing under it
            "asyncio_tasks": len(asyncio.all_tasks(self._loop)) if self._loop is not None else 0,
            "delta_versions": dict(stats.last_version),
        }

    async def run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None] | None] | None = None) -> int:
        """Collect until `stop` is set; flush everything and return 0."""
        self._loop = asyncio.get_running_loop()
        compat.check_asyncua_compat()  # before anything is written: an asyncua without our hooks fails here
        compat.quiet_repeated_tracebacks()
        self.config.check_environment(self.environ)
        self._check_certificates()
        report = await self.datalogger.start()
        log.info("datalogger ready: %s", report)
        marks, per_line = await asyncio.to_thread(read_watermarks, self.config.lake())
        self.deduper = Deduper(marks)
        ends = await asyncio.to_thread(last_gap_ends, self.config.lake())
        for line_id, (last_source, last_received) in per_line.items():
            if line_id in self.config.subscription.lines:  # open until data flows: continues the last gap row
                self._last_source[line_id] = last_source
                self._gaps[line_id] = downtime_gap(
                    line_id, last_received, ends.get(line_id), last_source, self.session_id
                )
        if self.config.metrics.port:
            from .metrics import serve_metrics

            self._metrics_server = serve_metrics(
                self.metrics_snapshot, self.config.metrics.host, self.config.metrics.port
            )
        sub = None
        pinned = self._server_certificate() if self.config.opcua.security_policy != "None" else None
        if pinned is not None:
            self._tasks.append(asyncio.create_task(self._watch_identity(pinned), name="collector-identity"))
        try:
            self.client = await self._connect(stop)
            compat.add_state_listener(self.client, self._on_state)
            self._on_state(self.client.state)
            sub = await self._subscribe(self.client)
            self._tasks.append(asyncio.create_task(self._consume(sub), name="collector-consume"))
            if self.engine_factory is not None:
                self.engine = self.engine_factory(self.client, self._emit_event, self.session_id)
                self._tasks.append(asyncio.create_task(self._drive_engine(), name="collector-engine"))
            log.info(
                "collecting %d nodes from %s into %s (session %s)",
                len(self.bindings),
                self.config.opcua.endpoint,
                self.config.lake(),
                self.session_id,
            )
            if ready is not None:
                result = ready()
                if asyncio.iscoroutine(result):
                    await result
            waiter = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]  # checked not None just above; mypy cannot narrow a call
            waiter.cancel()
        except asyncio.CancelledError:
            pass
        finally:
            await self._shutdown(sub)
        return 0

    async def _shutdown(self, sub: Any) -> None:
        started, stopped = time.monotonic(), datetime.now(UTC)
        self._stopping = True
        for line_id in end_open_gaps(self._gaps, stopped):  # an outage open at stop is a gap (continued at start)
            log.warning("line %s: outage still open at stop; its gap ends at the stop", line_id)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001, S110 - stopping: run() already raised a failed task's error
                pass
        if self.client is not None:
            try:
                await asyncio.wait_for(self.client.disconnect(), timeout=5)
            except Exception:  # noqa: BLE001 - stopping anyway: a failed goodbye must not stop the shutdown
                log.warning("disconnect from the server did not complete cleanly")
        for line_id in list(self._gaps):
            self._write_gap(line_id, None)
        await self.datalogger.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        log.info(
            "stopped: %d notifications received, %d committed, flushed in %.2f s",
            self.received,
            self.datalogger.stats.rows_committed,
            time.monotonic() - started,
        )
