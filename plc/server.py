"""The SoftPLC's OPC UA server: the line models behind a CODESYS-style address space.

The scan loop is the PLC cycle: read the inputs clients wrote (each stamped with the simulated
time it arrived), advance every line to the clock's now, and write every change the lines
emitted to its node with the simulated source timestamp. Writes are guarded here rather than by
asyncua's defaults: read-only tags answer BadNotWritable, wrong types BadTypeMismatch, values out
of range BadOutOfRange, whatever the user's role.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from asyncua import Server, ua
from asyncua.common.utils import ServiceError
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.monitored_item_service import MonitoredItemValues

from .line_model import Line, LineParams, validate_input
from .pacing import Pacer
from .security import PkiLayout, TrustListValidator, UserDirectory, ensure_certificate
from .sim_clock import SimClock
from .tagmap import TAGS, Tag, symbol

log = logging.getLogger(__name__)

_IMMUTABLE = (bool, int, float, str, bytes, datetime, type(None))


def _keep_immutable_datavalue(self: MonitoredItemValues, value: ua.DataValue) -> None:
    """asyncua deep-copies every written value for every monitored item, so that an in-place change of
    a mutable value cannot alter the previous value it compares the next one with: half of the
    simulator's CPU went there (py-spy, 2 lines at 600x). The address space replaces DataValues, never
    changes them in place, so a scalar of an immutable type needs no copy; anything else is copied."""
    self.old_dvalue = self.current_dvalue
    variant = value.Value
    if variant is None or (not variant.is_array and type(variant.Value) in _IMMUTABLE):
        self.current_dvalue = value
    else:
        self.current_dvalue = copy.deepcopy(value)


MonitoredItemValues.set_current_datavalue = _keep_immutable_datavalue

#: Who writes when asyncua calls the write service without a session user (the server's own writes).
ADMIN = User(role=UserRole.Admin)
SIM_NAMESPACE = "urn:industrial-twin:plc-sim"
UNECE_UNITS_URI = "http://www.opcfoundation.org/UA/units/un/cefact"
APP_URI = "urn:industrial-twin:plc-sim"
#: A file asyncua keeps the standard OPC UA address space in (a `shelve`, written on first use, read-only
#: after): building that space from code takes 2-3 s at every start, loading it lazily a few ms. The test
#: suite points this at one file per session, since it starts a simulator in almost every test.
ADDRESS_SPACE_CACHE_ENV = "PLC_SIM_ADDRESS_SPACE_CACHE"

INSECURE_BANNER = """
###########################################################################
#  INSECURE MODE: security None, anonymous access, no certificates.       #
#  Anyone who reaches this port can read and WRITE the PLC. Lab use only. #
###########################################################################"""


@dataclass
class ServerOptions:
    """How the server listens and who may connect."""

    host: str = "127.0.0.1"
    port: int = 4840
    runtime: str = TAGS.default_runtime
    insecure: bool = False
    pki_dir: Path = Path(".twin/pki/plc")
    users: dict[str, str] = field(default_factory=dict)
    scan_interval_s: float = 0.02
    #: At most this many wall seconds of simulated time per scan (plc/pacing.py): an overloaded simulator slows down.
    max_scan_wall_s: float = 0.1
    #: Share of the event loop the scans may take; the rest serves the OPC UA clients.
    busy_fraction: float = 0.5
    #: An accelerated clock stands still until a client monitors a value (`--wait-for-subscriber`): at 600x the
    #: collector's 15 s start-up would otherwise be 2.5 plant hours nobody recorded.
    wait_for_subscriber: bool = False
    max_message_size: int = 16 * 1024 * 1024
    max_chunk_count: int = 256

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}"


@dataclass(frozen=True)
class _Binding:
    line: int  # index into lines; -1 for plant tags
    tag: Tag
    nodeid: ua.NodeId


def _unit_id(code: str) -> int:
    """OPC UA UnitId of a UNECE common code (OPC 10000-8 §5.6.3)."""
    value = 0
    for ch in code:
        value = (value << 8) | ord(ch)
    return value


def _ts(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: --wait-for-subscriber: the clock starts once a client's monitored items stopped growing for this long.
SUBSCRIBED_SETTLE_S = 0.5


class PlcServer:
    """A plant of lines behind one OPC UA server."""

    def __init__(self, lines: Sequence[LineParams], clock: SimClock, seed: int, options: ServerOptions) -> None:
        if not lines:
            raise ValueError("at least one line is needed")
        ids = [p.line_id for p in lines]
        if len(set(ids)) != len(ids):
            raise ValueError(f"duplicate line ids in {ids}")
        self.options = options
        self.clock = clock
        self.seed = seed
        self.params = list(lines)
        self.server = Server()
        self.lines: list[Line] = []
        self._pending_emits: list[tuple[int, str, Any, float]] = []
        self._inputs: list[tuple[float, int, str, Any]] = []
        self._by_nodeid: dict[ua.NodeId, _Binding] = {}
        self._by_path: list[dict[str, ua.NodeId]] = []
        self._plant: dict[str, ua.NodeId] = {}
        self._last_us: dict[ua.NodeId, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.users = UserDirectory(options.users, allow_anonymous=options.insecure or not options.users)
        self.validator: TrustListValidator | None = None
        self.ns = 0
        self.notifications_written = 0
        self.pacer = Pacer(clock, options.scan_interval_s, options.max_scan_wall_s, options.busy_fraction)
        self.waiting_for_subscriber = options.wait_for_subscriber and not clock.step_mode and clock.speed > 1
        self._monitored = (0, 0.0)  # (monitored items, since when): --wait-for-subscriber
        if self.waiting_for_subscriber:
            clock.pause(at=clock.start)  # no plant time passes while the server starts and the collector subscribes

    # ---------------------------------------------------------------- set-up
    async def start(self) -> None:
        opts = self.options
        srv = self.server
        shelf = Path(os.environ[ADDRESS_SPACE_CACHE_ENV]) if os.environ.get(ADDRESS_SPACE_CACHE_ENV) else None
        await srv.init(shelf)
        if shelf is not None and not shelf.exists():
            shelf.touch()  # asyncua looks for this name; the dbm.dumb backend writes only <name>.dat/.dir/.bak
        srv.set_endpoint(opts.endpoint)
        srv.set_server_name(f"industrial-twin SoftPLC ({opts.runtime})")
        await srv.set_application_uri(APP_URI)
        srv.product_uri = "urn:industrial-twin"
        srv.manufacturer_name = "industrial-twin"
        srv.limits.max_message_size = opts.max_message_size
        srv.limits.max_chunk_count = opts.max_chunk_count
        srv.iserver.set_user_manager(self.users)
        srv.allow_remote_admin(False)
        if opts.insecure:
            srv.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            srv.set_identity_tokens([ua.AnonymousIdentityToken])
            for line in INSECURE_BANNER.strip().splitlines():
                log.warning(line)
            if opts.users:
                log.warning("users are ignored in --insecure mode: every client is anonymous")
        else:
            pki = PkiLayout(opts.pki_dir)
            cert, key = ensure_certificate(pki, APP_URI, "industrial-twin SoftPLC")
            await srv.load_certificate(str(cert))
            await srv.load_private_key(str(key))
            srv.set_security_policy(
                [
                    ua.SecurityPolicyType.Aes256Sha256RsaPss_SignAndEncrypt,
                    ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
                ]
            )
            self.validator = TrustListValidator(pki)
            srv.set_certificate_validator(self.validator)
            if opts.users:
                srv.set_identity_tokens([ua.UserNameIdentityToken])
            else:
                srv.set_identity_tokens([ua.AnonymousIdentityToken])
                log.warning(
                    "no OPC UA users configured (PLC_SIM_USER/PLC_SIM_PASSWORD or --users-file): any client whose "
                    "certificate is in %s may connect anonymously",
                    pki.trusted,
                )
        await self._build_address_space()
        self._guard_writes()
        self._strict_republish()
        t0 = self.clock.now()
        for i, params in enumerate(self.params):
            self.lines.append(Line(params, self.seed, t0, self._emitter(i)))
        await self._flush(t0)
        self.pacer.done(t0)  # the first scan is bounded too, however long the server took to start
        await srv.start()
        log.info(
            "PLC simulator listening on %s (%s), lines %s",
            opts.endpoint,
            "INSECURE" if opts.insecure else "SignAndEncrypt",
            ",".join(p.line_id for p in self.params),
        )

    async def _build_address_space(self) -> None:
        srv, rt = self.server, self.options.runtime
        self.ns = await srv.register_namespace(TAGS.namespace_uri)
        ns = self.ns
        objects = srv.nodes.objects
        device = await objects.add_object(ua.NodeId(f"|plc|{rt}", ns), ua.QualifiedName(rt, ns))
        app = await device.add_object(ua.NodeId(f"|var|{rt}.Application", ns), ua.QualifiedName("Application", ns))
        folders: dict[str, Any] = {f"|var|{rt}.Application": app}

        async def parent_of(node_str: str) -> Any:
            parent_str, _, _name = node_str.rpartition(".")
            if parent_str not in folders:
                grand = await parent_of(parent_str)
                folders[parent_str] = await grand.add_object(
                    ua.NodeId(parent_str, ns), ua.QualifiedName(parent_str.rpartition(".")[2], ns)
                )
            return folders[parent_str]

        async def add(line_index: int, line_id: str | None, tag: Tag) -> ua.NodeId:
            node_str = symbol(rt, line_id, tag.path)
            parent = await parent_of(node_str)
            nodeid = ua.NodeId(node_str, ns)
            initial = tag.default_value()
            if tag.type == "DateTime" and initial is None:
                initial = _ts(self.clock.now())
            var = await parent.add_variable(
                nodeid,
                ua.QualifiedName(tag.path.rpartition(".")[2], ns),
                ua.Variant(initial, tag.variant_type),
            )
            # Until the PLC program writes a value, clients see it as an initial value, not a measurement.
            await srv.write_attribute_value(
                nodeid,
                ua.DataValue(
                    ua.Variant(initial, tag.variant_type),
                    StatusCode=ua.StatusCode(ua.StatusCodes.UncertainInitialValue),
                    SourceTimestamp=self._stamp(nodeid, self.clock.now()),
                    ServerTimestamp=datetime.now(UTC),
                ),
            )
            await var.write_attribute(
                ua.AttributeIds.Description, ua.DataValue(ua.Variant(ua.LocalizedText(tag.description)))
            )
            if tag.unit:
                eu = ua.EUInformation(
                    NamespaceUri=UNECE_UNITS_URI,
                    UnitId=_unit_id(tag.unit[0]),
                    DisplayName=ua.LocalizedText(tag.unit[1]),
                    Description=ua.LocalizedText(tag.unit[1]),
                )
                await var.add_property(
                    ua.NodeId(f"{node_str}.EngineeringUnits", ns),
                    ua.QualifiedName("EngineeringUnits", 0),
                    ua.Variant(eu),
                    datatype=ua.NodeId(ua.ObjectIds.EUInformation),
                )
            if tag.writable:
                await var.set_writable(True)
            self._by_nodeid[nodeid] = _Binding(line_index, tag, nodeid)
            return nodeid

        for tag in TAGS.plant_tags:
            self._plant[tag.path] = await add(-1, None, tag)
        for i, params in enumerate(self.params):
            paths: dict[str, ua.NodeId] = {}
            for tag in TAGS.line_tags:
                paths[tag.path] = await add(i, params.line_id, tag)
            self._by_path.append(paths)
        # Twin-only controls, outside the CODESYS tree so a real PLC's address space stays comparable.
        sim_ns = await srv.register_namespace(SIM_NAMESPACE)
        sim = await objects.add_object(ua.NodeId("Simulation", sim_ns), ua.QualifiedName("Simulation", sim_ns))
        await sim.add_method(
            ua.NodeId("Simulation.Step", sim_ns),
            ua.QualifiedName("Step", sim_ns),
            self._step_method,
            [ua.VariantType.Double],
            [ua.VariantType.DateTime],
        )
        await sim.add_property(
            ua.NodeId("Simulation.Seed", sim_ns),
            ua.QualifiedName("Seed", sim_ns),
            ua.Variant(self.seed, ua.VariantType.Int64),
        )
        await sim.add_property(
            ua.NodeId("Simulation.StepMode", sim_ns),
            ua.QualifiedName("StepMode", sim_ns),
            ua.Variant(self.clock.step_mode, ua.VariantType.Boolean),
        )

    def _emitter(self, index: int) -> Any:
        pending = self._pending_emits

        def emit(path: str, value: Any, t: float) -> None:
            pending.append((index, path, value, t))

        return emit

    def _stamp(self, nodeid: ua.NodeId, t: float) -> datetime:
        """Source timestamp of a change: simulated time in whole microseconds, strictly increasing per
        node. Two changes of one variable in the same simulated instant (Idle -> Starting on
        autostart, a request bit set and reset) are stamped 1 us apart, as a PLC's scans would
        separate them, so (line, tag, source_ts) identifies every change."""
        us = round(t * 1e6)
        last = self._last_us.get(nodeid)
        if last is not None and us <= last:
            us = last + 1
        self._last_us[nodeid] = us
        return _EPOCH + timedelta(microseconds=us)

    # ---------------------------------------------------------------- writes from clients
    def _guard_writes(self) -> None:
        service = self.server.iserver.attribute_service
        original = service.write

        async def write(params: ua.WriteParameters, user: User = ADMIN) -> list[ua.StatusCode]:
            results: list[ua.StatusCode | None] = [None] * len(params.NodesToWrite)
            passthrough: list[int] = []
            for i, wv in enumerate(params.NodesToWrite):
                binding = self._by_nodeid.get(wv.NodeId)
                if binding is None:
                    passthrough.append(i)
                    continue
                results[i] = await self._write_tag(binding, wv, user)
            if passthrough:
                sub = ua.WriteParameters(NodesToWrite=[params.NodesToWrite[i] for i in passthrough])
                for i, status in zip(passthrough, await original(sub, user=user)):
                    results[i] = status
            return [r if r is not None else ua.StatusCode(ua.StatusCodes.BadInternalError) for r in results]

        service.write = write

    def _strict_republish(self) -> None:
        """Republish of a message the server no longer holds must fail with Bad_MessageNotAvailable
        (OPC 10000-4 §5.13.6). asyncua's server answers an empty message instead, and a client
        reconnecting with Republish then loops on empty messages and loses the notifications that
        arrive meanwhile; this restores the specified answer."""
        service = self.server.iserver.subscription_service
        original = service.republish

        def republish(params: ua.RepublishParameters) -> ua.NotificationMessage:
            sub = service.subscriptions.get(params.SubscriptionId)
            if sub is None:
                raise ServiceError(ua.StatusCodes.BadSubscriptionIdInvalid)
            if params.RetransmitSequenceNumber not in sub._not_acknowledged_results:
                raise ServiceError(ua.StatusCodes.BadMessageNotAvailable)
            return original(params)

        service.republish = republish

    async def _write_tag(self, binding: _Binding, wv: ua.WriteValue, user: User) -> ua.StatusCode:
        tag = binding.tag
        if wv.AttributeId != ua.AttributeIds.Value or not tag.writable:
            return ua.StatusCode(ua.StatusCodes.BadNotWritable)
        if user.role == UserRole.Anonymous:
            return ua.StatusCode(ua.StatusCodes.BadUserAccessDenied)
        if wv.IndexRange:
            return ua.StatusCode(ua.StatusCodes.BadIndexRangeInvalid)
        variant = wv.Value.Value if wv.Value is not None else None
        if variant is None or variant.VariantType != tag.variant_type or variant.is_array:
            return ua.StatusCode(ua.StatusCodes.BadTypeMismatch)
        reason = validate_input(tag.path, variant.Value)
        if reason is not None:
            log.warning(
                "refused write %s=%r from %s: %s",
                symbol(self.options.runtime, self.params[binding.line].line_id, tag.path),
                variant.Value,
                user.name,
                reason,
            )
            return ua.StatusCode(ua.StatusCodes.BadOutOfRange)
        t = self.clock.now()
        await self.server.write_attribute_value(
            binding.nodeid,
            ua.DataValue(variant, SourceTimestamp=self._stamp(binding.nodeid, t), ServerTimestamp=datetime.now(UTC)),
        )
        self._inputs.append((t, binding.line, tag.path, variant.Value))
        return ua.StatusCode(ua.StatusCodes.Good)

    # ---------------------------------------------------------------- the PLC cycle
    async def scan(self) -> float:
        """One PLC cycle up to the clock's now: apply inputs in arrival order, advance, publish."""
        async with self._lock:
            if self.waiting_for_subscriber:
                self._wait_for_subscriber()
            target = self.pacer.target()
            inputs, self._inputs = self._inputs, []
            for t_in, index, path, value in inputs:
                line = self.lines[index]
                line.advance(max(t_in, line.now))
                line.apply_input(path, value)
            for line in self.lines:
                line.advance(target)
            await self._flush(target)
            self.pacer.done(target)
            return target

    def _wait_for_subscriber(self) -> None:
        """Keep the clock paused until a client monitors values and added none for SUBSCRIBED_SETTLE_S (asyncua
        keeps no public list of a subscription's monitored items: `_monitored_datachange` is read, never changed)."""
        service = self.server.iserver.subscription_service
        count = sum(len(sub.monitored_item_srv._monitored_datachange) for sub in service.subscriptions.values())
        now = time.monotonic()
        if count != self._monitored[0]:  # a client is still adding items: wait until the count settles
            self._monitored = (count, now)
        elif count and now - self._monitored[1] >= SUBSCRIBED_SETTLE_S:
            self.waiting_for_subscriber = False
            self.clock.resume()
            self.pacer.forget()
            log.info("a client monitors values: the plant clock runs from %s", _ts(self.clock.now()).isoformat())

    async def _flush(self, now: float) -> None:
        pending = self._pending_emits
        write = self.server.write_attribute_value
        wall = datetime.now(UTC)
        good = ua.StatusCode(ua.StatusCodes.Good)
        for index, path, value, t in pending:
            nodeid = self._by_path[index][path]
            vtype = self._by_nodeid[nodeid].tag.variant_type
            await write(
                nodeid,
                ua.DataValue(
                    ua.Variant(value, vtype),
                    StatusCode=good,
                    SourceTimestamp=self._stamp(nodeid, t),
                    ServerTimestamp=wall,
                ),
            )
        self.notifications_written += len(pending)
        pending.clear()
        src = self._stamp(self._plant["Clock.Now"], now)
        await write(
            self._plant["Clock.Now"],
            ua.DataValue(ua.Variant(_ts(now), ua.VariantType.DateTime), SourceTimestamp=src, ServerTimestamp=wall),
        )
        speed = self.pacer.achieved_speed()
        await write(
            self._plant["Clock.Speed"],
            ua.DataValue(ua.Variant(speed, ua.VariantType.Double), SourceTimestamp=src, ServerTimestamp=wall),
        )

    async def step(self, seconds: float) -> float:
        """Step mode: advance simulated time by `seconds` and publish everything that happened."""
        self.clock.step(seconds)
        return await self.scan()

    async def _step_method(self, parent: ua.NodeId, seconds: ua.Variant) -> list[ua.Variant]:
        if not self.clock.step_mode:
            raise ua.UaStatusCodeError(ua.StatusCodes.BadInvalidState)
        value = seconds.Value if isinstance(seconds, ua.Variant) else seconds
        if not (isinstance(value, float) and 0 <= value <= 366 * 86400):
            raise ua.UaStatusCodeError(ua.StatusCodes.BadOutOfRange)
        t = await self.step(value)
        return [ua.Variant(_ts(t), ua.VariantType.DateTime)]

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.scan()
            except Exception:  # a bug in one cycle must not stop the PLC; it is logged loudly
                log.exception("PLC scan failed; continuing with the next cycle")
            rest = self.pacer.rest_s(loop.time() - started)
            resting = loop.time()
            await asyncio.sleep(rest)
            self.pacer.woke(loop.time() - resting - rest)

    def run_in_background(self) -> None:
        """Start the scan loop (not used in step mode: there time moves only on `step`)."""
        if self.clock.step_mode:
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="plc-scan")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        await self.server.stop()

    async def __aenter__(self) -> PlcServer:
        await self.start()
        self.run_in_background()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # ---------------------------------------------------------------- helpers for tools and tests
    def nodeid(self, line_id: str, path: str) -> ua.NodeId:
        index = [p.line_id for p in self.params].index(line_id)
        return self._by_path[index][path]

    def line(self, line_id: str) -> Line:
        return self.lines[[p.line_id for p in self.params].index(line_id)]
