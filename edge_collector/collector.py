"""The long-running collector: OPC UA subscriptions in, durable Delta rows out.

One asyncio loop: asyncua's client (auto-reconnect, session reactivation, republish) delivers
data changes into a bounded queue (overflow counted, never silent); a consumer task normalizes
each change, drops replays by (line, tag, source_ts, value), and hands rows to the datalogger, whose
writes run in a worker thread. Connection losses, stale or silent subscriptions and collector
downtime become gap records.
The variability engine runs beside it, driven by the PLC clock's notifications.

Opening the session (security, pinning, credentials, connect backoff) is `session.py`, the gap
bookkeeping `gap_records.py`, silent subscriptions `silence.py`, oversized messages (S7)
`oversized_nodes.py`, the server identity watch `opcua/server_identity.py`.
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

from plc.tagmap import TAGS, symbol

from . import silence
from .config import CollectorConfig
from .datalogger import Datalogger
from .dedupe import Deduper, Verdict, read_watermarks, value_key
from .gap_records import GapBook, last_gap_ends
from .manifest_writer import ManifestRecorder
from .normalize import NodeBinding, Normalizer
from .opcua import asyncua_compat as compat
from .opcua.message_limits import TooLargeObserver
from .opcua.server_identity import IdentityWatch
from .oversized_nodes import OversizedNodes
from .pruner import Pruner
from .session import KEEPALIVE_COUNT, POLICIES, SessionOpener

log = logging.getLogger("edge_collector")

CLOCK_TAG = "Clock.Now"
DRAIN_MAX = 10_000  # notifications stored per wake-up at most, so a burst cannot hold the event loop


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
        self.pruner = Pruner(config.lake(), dl.retention_days, dl.prune_every_s) if dl.retention_days else None
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
        self.quarantined = 0
        self.session = SessionOpener(config, environ, self._wire_client)
        self.identity = IdentityWatch(config.opcua.endpoint)
        self.gaps = GapBook(self.session_id, self.normalizer.next_seq, self.datalogger.add)
        self.silence: silence.SilenceWatch | None = None
        self.oversized = OversizedNodes(config.opcua, self.bindings, self._quarantine_oversized)
        self.sim_now: datetime | None = None
        self._clock_changed = asyncio.Event()
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

    # ------------------------------------------------------------------ state read by tests and /metrics
    @property
    def gaps_written(self) -> int:
        return self.gaps.written

    @property
    def too_large_messages(self) -> int:
        return self.oversized.too_large_messages

    @property
    def oversized_nodes(self) -> int:
        return self.oversized.oversized_nodes

    @property
    def cert_days_left(self) -> float | None:
        return self.session.cert_days_left

    @property
    def cert_mismatches(self) -> int:
        return self.identity.mismatches

    @property
    def cert_mismatch_active(self) -> bool:
        return self.identity.active

    async def _watch_identity(self, pinned: Path) -> None:
        """S3: while not connected, compare what the endpoint presents with the pin (IdentityWatch)."""
        cfg = self.config.opcua
        await self.identity.run(
            pinned,
            POLICIES[cfg.security_policy].URI,
            getattr(ua.MessageSecurityMode, cfg.security_mode),
            min(cfg.timeout_s, 5.0),
            max(0.5, min(cfg.reconnect_max_delay_s, 5.0)),
            self.connected,
        )

    # ------------------------------------------------------------------ the client's hooks
    def _wire_client(self, client: Client) -> None:
        """The collector's hooks on a new client (before its security is set, on every attempt)."""
        client.uaclient.observer = TooLargeObserver(self.oversized.on_too_large)
        self.oversized.guard_restore(client)

        async def finalize_and_record(finalize: compat.FinalizeReconnect, reused: bool) -> None:
            # A new session means the server had forgotten ours and whatever it still held for us (R4);
            # the subscription id alone cannot tell, since a restarted server may hand out the same one.
            if not reused:
                self.gaps.relabel("session_lost", ("disconnected", "subscription_stale"))
            await finalize(reused)

        compat.wrap_finalize_reconnect(client, finalize_and_record)
        compat.observe_monitored_items(client, self.manifest.observe)

    def _quarantine_oversized(self, binding: NodeBinding | None, nodeid: ua.NodeId, detail: str) -> None:
        row = self.normalizer.quarantine(
            binding, None, datetime.now(UTC), "too_large", detail, node_id=nodeid.to_string()
        )
        self._emit("quarantine", row.row)

    def _on_state(self, state: UaClientState) -> None:
        now = datetime.now(UTC)
        if state is UaClientState.CONNECTED:
            if not self.connected.is_set():
                self.connected.set()
                self.identity.note(None)  # a session over the pinned channel proves the identity
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
                self.gaps.open(line_id, now, "disconnected")
            self.gaps.relabel("disconnected", (silence.REASON,))  # the lost link explains the silence

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
            if self.oversized.force_recreate:
                # After a too-large message, asking for it again would cost the connection again, in
                # a loop: recreate the subscription instead (the gap is recorded as session_lost).
                self.oversized.force_recreate = False
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
                    self.gaps.open(line_id, now, "subscription_stale")
                self.gaps.relabel("subscription_stale", (silence.REASON,))  # a silence that lasted: now lost
            try:
                await recreate()
                self.manifest.write(datetime.now(UTC))  # a new subscription: its manifest
            except Exception:
                self.gaps.relabel("disconnected", ("subscription_stale",))  # it failed: the link is down
                if sub.subscription_id is None and old_id is not None:
                    compat.restore_subscription(sub, old_id, items)
                    log.warning("recreating subscription %s failed; kept it for the reconnect to transfer", old_id)
                raise

        compat.wrap_recreate(sub, recreate_or_keep)
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
        self.oversized.watch(sub)  # the nodes the size scan reads after a too-large message
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
        gaps, open_gaps, last_source = self.gaps, self.gaps.gaps, self.gaps.last_source
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
                gaps.close(received, "session_lost")  # recreated, not transferred: the server lost it
                self._subscription_id = sub.subscription_id
            elif open_gaps:
                gaps.close(received)
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
                    if line_id in open_gaps and open_gaps[line_id].closed:
                        gaps.write(line_id, row["source_ts"])
                    last_source[line_id] = row["source_ts"]
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
            "subscription_silences": self.silence.silences if self.silence is not None else 0,
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
            **(self.pruner.snapshot() if self.pruner is not None else {}),
        }

    async def run(self, stop: asyncio.Event, ready: Callable[[], Awaitable[None] | None] | None = None) -> int:
        """Collect until `stop` is set; flush everything and return 0."""
        self._loop = asyncio.get_running_loop()
        compat.check_asyncua_compat()  # before anything is written: an asyncua without our hooks fails here
        compat.quiet_repeated_tracebacks()
        self.config.check_environment(self.environ)
        self.session.check_certificates()
        report = await self.datalogger.start()
        log.info("datalogger ready: %s", report)
        marks, per_line = await asyncio.to_thread(read_watermarks, self.config.lake())
        self.deduper = Deduper(marks)
        ends = await asyncio.to_thread(last_gap_ends, self.config.lake())
        for line_id, (last_source, last_received) in per_line.items():
            if line_id in self.config.subscription.lines:  # open until data flows: continues the last gap row
                self.gaps.resume(line_id, last_source, last_received, ends.get(line_id))
        if self.config.metrics.port:
            from .metrics import serve_metrics

            self._metrics_server = serve_metrics(
                self.metrics_snapshot, self.config.metrics.host, self.config.metrics.port
            )
        if self.pruner is not None:  # retention_days > 0: landed old days go, beside the writer
            self._tasks.append(asyncio.create_task(self.pruner.run(), name="collector-retention"))
        sub = None
        pinned = self.session.server_certificate() if self.config.opcua.security_policy != "None" else None
        if pinned is not None:
            self._tasks.append(asyncio.create_task(self._watch_identity(pinned), name="collector-identity"))
        try:
            self.client = await self.session.connect(stop)
            compat.add_state_listener(self.client, self._on_state)
            self._on_state(self.client.state)
            sub = await self._subscribe(self.client)
            self._tasks.append(asyncio.create_task(self._consume(sub), name="collector-consume"))
            self.silence = silence.SilenceWatch(sub, self.gaps, self.config.subscription.lines, self.connected)
            self._tasks.append(asyncio.create_task(self.silence.run(), name="collector-silence"))
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
        self.gaps.end_at_stop(stopped)
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
        self.gaps.write_remaining()
        await self.datalogger.close()
        if self._metrics_server is not None:
            self._metrics_server.shutdown()
        log.info(
            "stopped: %d notifications received, %d committed, flushed in %.2f s",
            self.received,
            self.datalogger.stats.rows_committed,
            time.monotonic() - started,
        )
