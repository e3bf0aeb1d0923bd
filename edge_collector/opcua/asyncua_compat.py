"""Every use of an asyncua private API, in one place, each with the reason it is needed.

asyncua's public API has no hook for what the collector must do when a connection is lost and
re-established, when a subscription goes stale or when a message is too large (RELIABILITY.md
R1-R5, S3, S7), so the collector reaches into asyncua's internals. Each such access is a small
named function below; the collector's modules call these, never the private names.

This module was written against asyncua 2.1 (`ASYNCUA_SERIES`), the minor version pyproject.toml
pins. A private name can vanish or change meaning in any release, and the failure would be silent
(a reconnect that restores an empty subscription stores nothing, without an error), so
`check_asyncua_compat()` runs when the collector starts: it fails with the missing names and the
pinned version if any attribute or method relied on here no longer exists. To move to a newer
asyncua, re-read each function against that version's source, then move the pin and the series.

One public but undocumented attribute is read (`Subscription.last_publish_at`): what is relied on
there is that asyncua stamps it on every publish response, keep-alives included.

Two public methods are replaced on the instance too (`Client.send_hello`, `Subscription.recreate`):
what is relied on there is that asyncua's reconnect calls them, which no public contract promises,
so they are wrapped here as well.

(`plc/server.py` patches asyncua's *server* side; that is the simulator's business, not this module's.)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib.metadata import version
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState, UASocketProtocol
from asyncua.client.ua_session import UaSession
from asyncua.common.subscription import Subscription

log = logging.getLogger("edge_collector")

#: The asyncua minor version this module was written against; pyproject.toml pins asyncua to it.
ASYNCUA_SERIES = "2.1"
PIN = "asyncua>=2.1,<2.2"

AsyncStep = Callable[[], Awaitable[None]]
FinalizeReconnect = Callable[[bool], Awaitable[None]]
Republish = Callable[[list[int]], Awaitable[bool]]
OnOverflow = Callable[[Any], None]


class AsyncuaIncompatible(RuntimeError):
    """The installed asyncua lacks a private attribute or method the collector relies on."""


# ------------------------------------------------------------------------------------ the client


def set_stale_margin(client: Client, margin: float) -> None:
    """How many keep-alive periods without a publish response asyncua's stale-subscription watchdog
    waits before it recreates a subscription (asyncua's default 1.5: 3 s at 100 ms). A server busy
    encoding a burst takes longer, and the recreate discards that burst (R5). No public setting."""
    client._stale_check_margin = margin


def wrap_finalize_reconnect(client: Client, fn: Callable[[FinalizeReconnect, bool], Awaitable[None]]) -> None:
    """Make asyncua's last step of a reconnect `fn(original, reused)`. Only there does asyncua know
    whether the server still held our session (`reused`); it only logs it, and the collector needs
    it to label the gap `session_lost` (R4): a restarted server may hand out the same subscription id."""
    original = client._finalize_reconnect

    async def finalize(reused: bool) -> None:
        await fn(original, reused)

    client._finalize_reconnect = finalize


def wrap_restore_subscriptions(client: Client, fn: Callable[[AsyncStep], Awaitable[None]]) -> None:
    """Make asyncua's restore of the subscriptions after a reconnect (`Client._recreate_subscriptions`)
    `fn(original)`: after a too-large message the collector must find and drop the oversized node
    before the restore asks the server for it again and loses the connection again (S7)."""
    original = client._recreate_subscriptions

    async def restore() -> None:
        await fn(original)

    client._recreate_subscriptions = restore


def wrap_send_hello(client: Client, fn: Callable[[AsyncStep], Awaitable[None]]) -> None:
    """Make the Hello asyncua sends on connect and on every reconnect `fn(original)` (public method,
    but relied on being the one asyncua's reconnect calls): the receive limits are re-applied after
    each Hello (S7, see `set_receive_limits`)."""
    original = client.send_hello

    async def send_hello() -> None:
        await fn(original)

    client.send_hello = send_hello


def set_receive_limits(client: Client, max_message_size: int, max_chunk_count: int) -> None:
    """Bound the messages the open connection accepts. asyncua copies the server's Acknowledge into
    the connection's limits, so a server acknowledging 0 ("no limit") lifts them, and its receive
    checks read `UASocketProtocol._connection._limits` with no public way to set them (S7)."""
    protocol = client.uaclient.protocol
    if protocol is not None:
        limits = protocol._connection._limits
        limits.max_message_size = max_message_size
        limits.max_chunk_count = max_chunk_count


def observe_monitored_items(
    client: Client, fn: Callable[[list[ua.MonitoredItemCreateRequest], list[ua.MonitoredItemCreateResult]], None]
) -> None:
    """Call `fn(requests, results)` after every CreateMonitoredItems answer on this client's session
    (public method, but relied on being the one both `subscribe_data_change` and asyncua's
    `Subscription.recreate` call): `subscribe_data_change` keeps only the handles and `recreate` only
    logs a failure, and the subscriptions manifest needs each item's status and revised sampling
    interval every time the subscription is (re)created."""
    session = client.uaclient.session
    original = session.create_monitored_items

    async def create_monitored_items(params: ua.CreateMonitoredItemsParameters) -> list[ua.MonitoredItemCreateResult]:
        results = await original(params)
        fn(list(params.ItemsToCreate), list(results))
        return results

    session.create_monitored_items = create_monitored_items


def add_state_listener(client: Client, callback: Callable[[UaClientState], None]) -> None:
    """Call `callback` synchronously on every connection state change. The public alternative
    (`subscribe_state()`) hands states over through a queue, later: the collector stamps a gap's
    start at the moment of the loss and must see every transition, even when its loop is busy."""
    client.uaclient._add_state_listener(callback)


# ------------------------------------------------------------------------------------ a subscription


def wrap_handle_overflow(sub: Subscription, fn: Callable[[OnOverflow, Any], None]) -> None:
    """Make asyncua's handling of an event that does not fit the subscription's queue
    (`Subscription._handle_overflow`, with OverflowPolicy.WARN it only logs) `fn(original, event)`:
    the collector counts every dropped notification exactly (R5: never silent)."""
    original = sub._handle_overflow

    def handle_overflow(event: Any) -> None:
        fn(original, event)

    sub._handle_overflow = handle_overflow


def wrap_republish_gaps(sub: Subscription, fn: Callable[[Republish, list[int]], Awaitable[bool]]) -> None:
    """Make asyncua's fetch of the messages a reconnect missed (`Subscription._republish_gaps`,
    given the sequence numbers the server still holds) `fn(original, available)`: the collector asks
    for every unacknowledged message (at-least-once, R2) and, after a too-large message, for none (S7)."""
    original = sub._republish_gaps

    async def republish_gaps(available: list[int]) -> bool:
        return await fn(original, available)

    sub._republish_gaps = republish_gaps


def wrap_recreate(sub: Subscription, fn: Callable[[AsyncStep], Awaitable[None]]) -> None:
    """Make `Subscription.recreate` `fn(original)` (public method, but relied on being the one
    asyncua's reconnect and stale-subscription watchdog call): when it fails, the collector undoes
    what it forgot first (`restore_subscription`, R3) and records a stale subscription as a gap."""
    original = sub.recreate

    async def recreate() -> None:
        await fn(original)

    sub.recreate = recreate


def monitored_items(sub: Subscription) -> dict[int, Any]:
    """A copy of the subscription's monitored items by server handle (`Subscription._monitored_items`:
    asyncua keeps them, with their nodes, only there): what a failed recreate must put back and what
    the size scan reads after a too-large message (S7)."""
    return dict(sub._monitored_items)


def forget_monitored_item(sub: Subscription, handle: int) -> None:
    """Take an item out of what asyncua recreates after a reconnect: the oversized node (S7)."""
    sub._monitored_items.pop(handle, None)


def restore_subscription(sub: Subscription, subscription_id: int, items: dict[int, Any]) -> None:
    """Undo what a failed `Subscription.recreate()` forgot before it asked the server: the id, the
    monitored items and the session's publish callback for that id. Otherwise the reconnect
    "restores" an empty subscription while the server keeps publishing to the old id (R3)."""
    session = sub.server
    if not isinstance(session, UaSession):
        raise TypeError(f"a client's subscription is served by its UaSession, not {type(session).__name__}")
    sub.subscription_id = subscription_id
    sub._monitored_items.update(items)
    session._subscription_callbacks[subscription_id] = sub.publish_callback


def last_publish_at(sub: Subscription) -> float | None:
    """When the subscription's last publish response arrived, data or keep-alive (`time.monotonic()`),
    or None before the first. The only trace of a keep-alive's receipt: asyncua 2.1 stamps
    `Subscription.last_publish_at` in `publish_callback` before it drops an empty (keep-alive) message,
    for its stale-subscription watchdog; no callback or event says a keep-alive arrived. The collector
    needs it to tell a silent subscription (issue 14) from a quiet line. `recreate()` and `restore()`
    reset it too (a new start, not a receipt)."""
    return sub.last_publish_at


def event_queue(sub: Subscription) -> asyncio.Queue[Any]:
    """The subscription's notification queue (`Subscription._event_queue`): `next_event()` takes one
    event per await; the collector drains everything queued at once, its hot path."""
    queue = sub._event_queue
    if queue is None:
        raise TypeError("the subscription was created with a handler, not as an event queue")
    return queue


# ------------------------------------------------------------------------------------ log noise

#: asyncua's client loggers that log a full traceback on every retry while a server is down (the
#: publish loop: "Publish iteration crashed; retrying in 1s" at ERROR, every second).
NOISY_LOGGERS = (
    "asyncua.client.ua_session.UaSession",
    "asyncua.client.client",
    "asyncua.client.ua_client.UaClient",
    "asyncua.client.ua_client.UASocketProtocol",
    "asyncua.common.subscription",
)


class RepeatedTracebacks(logging.Filter):
    """One line per outage instead of a traceback a second: the first record with an exception from a
    given logger, message and exception type passes, as one line (the exception's type and text, no
    traceback); its repeats are dropped until `reset()` (the collector resets it when connected again).
    Records without an exception pass untouched."""

    def __init__(self) -> None:
        super().__init__()
        self._seen: set[tuple[str, object, str]] = set()
        self.suppressed = 0

    def reset(self) -> None:
        self._seen.clear()

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is None:
            return True
        key = (record.name, record.msg, type(exc).__name__)
        if key in self._seen:
            self.suppressed += 1
            return False
        self._seen.add(key)
        record.msg = f"{record.getMessage()} ({type(exc).__name__}: {exc}; repeats are not logged until reconnected)"
        record.args = None
        record.exc_info = None
        record.exc_text = None
        return True


_QUIET = RepeatedTracebacks()


def quiet_repeated_tracebacks() -> RepeatedTracebacks:
    """Install (once) the `RepeatedTracebacks` filter on asyncua's noisy client loggers; returns it."""
    for name in NOISY_LOGGERS:
        logger = logging.getLogger(name)
        if _QUIET not in logger.filters:
            logger.addFilter(_QUIET)
    return _QUIET


# ------------------------------------------------------------------------------------ start-up check


@dataclass(frozen=True)
class Requirement:
    """A private name (dotted from an instance of `owner`) that `used_by` relies on."""

    owner: str
    path: str
    used_by: str


REQUIREMENTS: tuple[Requirement, ...] = (
    Requirement("Client", "_stale_check_margin", "set_stale_margin"),
    Requirement("Client", "_finalize_reconnect", "wrap_finalize_reconnect"),
    Requirement("Client", "_recreate_subscriptions", "wrap_restore_subscriptions"),
    Requirement("Client", "send_hello", "wrap_send_hello"),
    Requirement("UaClient", "_add_state_listener", "add_state_listener"),
    Requirement("UaSession", "_subscription_callbacks", "restore_subscription"),
    Requirement("UaSession", "create_monitored_items", "observe_monitored_items"),
    Requirement("UASocketProtocol", "_connection._limits.max_message_size", "set_receive_limits"),
    Requirement("UASocketProtocol", "_connection._limits.max_chunk_count", "set_receive_limits"),
    Requirement("Subscription", "_handle_overflow", "wrap_handle_overflow"),
    Requirement("Subscription", "_republish_gaps", "wrap_republish_gaps"),
    Requirement("Subscription", "recreate", "wrap_recreate"),
    Requirement("Subscription", "_monitored_items", "monitored_items, forget_monitored_item, restore_subscription"),
    Requirement("Subscription", "_event_queue", "event_queue"),
    Requirement("Subscription", "last_publish_at", "last_publish_at"),
)


def _instances() -> dict[str, object]:
    """Throwaway instances (no connection is made): most names relied on are set in `__init__`."""
    client = Client("opc.tcp://127.0.0.1:4840")
    session = client.uaclient.session
    return {
        "Client": client,
        "UaClient": client.uaclient,
        "UaSession": session,
        "Subscription": Subscription(session, ua.CreateSubscriptionParameters()),
        "UASocketProtocol": UASocketProtocol(),
    }


def _missing(obj: object, path: str) -> str | None:
    """The first missing segment of `path` on `obj` (e.g. `_connection._limits`), or None."""
    done: list[str] = []
    for name in path.split("."):
        done.append(name)
        if not hasattr(obj, name):
            return ".".join(done)
        obj = getattr(obj, name)
    return None


def check_asyncua_compat(requirements: tuple[Requirement, ...] = REQUIREMENTS) -> str:
    """Fail with AsyncuaIncompatible, naming every missing name and the pinned version, unless each
    private attribute or method this module relies on exists in the installed asyncua. Returns the
    installed version; logs a WARNING when it is outside `ASYNCUA_SERIES` but the names exist."""
    installed = version("asyncua")
    instances = _instances()
    missing = sorted(
        {
            f"{r.owner}.{name} (used by {r.used_by})"
            for r in requirements
            if (name := _missing(instances[r.owner], r.path)) is not None
        }
    )
    if missing:
        raise AsyncuaIncompatible(
            f"asyncua {installed} lacks {', '.join(missing)}: edge_collector/opcua/asyncua_compat.py relies on them "
            f"and was written against asyncua {ASYNCUA_SERIES} (pyproject.toml pins {PIN}); install the pinned "
            f"version (uv sync --frozen) or port that module to asyncua {installed}"
        )
    if installed.split(".")[:2] != ASYNCUA_SERIES.split("."):
        log.warning(
            "asyncua %s is installed, but the collector was written against asyncua %s (%s): the private "
            "names it relies on exist, their behaviour may not; reconnects may break",
            installed,
            ASYNCUA_SERIES,
            PIN,
        )
    return installed
