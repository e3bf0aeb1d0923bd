"""Oversized messages from the server (RELIABILITY.md S7): counted, the node found and dropped.

asyncua refuses a message beyond the receive limits (`opcua.max_message_size`, `max_chunk_count`)
and loses the connection over it. The server would send the same value again on every reconnect
(republish, or the restored subscription's first values), so before the reconnect restores the
subscription, each monitored node is read on its own: the read answered by a too-large message
names the node. It is no longer monitored, gets a quarantine row and an ERROR says what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from asyncua import Client, ua

from .config import OpcUaSection
from .normalize import NodeBinding
from .opcua import asyncua_compat as compat
from .opcua.message_limits import is_too_large

log = logging.getLogger("edge_collector")


class OversizedNodes:
    """The collector's S7 handling: `on_too_large` is the client observer's callback,
    `guard_restore` wraps asyncua's restore of the subscription, `watch` names the subscription."""

    def __init__(
        self,
        opcua: OpcUaSection,
        bindings: dict[ua.NodeId, NodeBinding],
        quarantine: Callable[[NodeBinding | None, ua.NodeId, str], None],
    ) -> None:
        self.opcua = opcua
        self.bindings = bindings  # the collector's: a dropped node is no longer stored
        self.quarantine = quarantine
        self.too_large_messages = 0
        self.oversized_nodes = 0
        self.force_recreate = False  # the next restore recreates rather than republishes (see collector.py)
        self.sub: Any = None
        self.items: dict[int, Any] = {}
        self._handled = 0
        self._scanning = False

    def watch(self, sub: Any) -> None:
        """The subscription whose monitored items the size scan reads after a too-large message."""
        self.sub = sub
        self.items = compat.monitored_items(sub)

    def on_too_large(self, request_type: str, exc: BaseException) -> None:
        if self._scanning:
            return  # provoked by the size scan, which names the node itself
        self.too_large_messages += 1
        log.error(
            "the server sent a message larger than opcua.max_message_size (%d bytes, at most %d chunks) in "
            "answer to %s: %s; the connection is dropped and re-established, and the node with the oversized "
            "value is looked for and no longer monitored. If values that large are expected, raise "
            "opcua.max_message_size",
            self.opcua.max_message_size,
            self.opcua.max_chunk_count,
            request_type,
            exc.__class__.__name__,
            extra={"status": exc.__class__.__name__},
        )

    def guard_restore(self, client: Client) -> None:
        """After a too-large message, find the oversized node before asyncua restores the subscription
        on the next reconnect (Client._recreate_subscriptions), so the restore does not ask for it again."""

        async def restore_guarded(restore: compat.AsyncStep) -> None:
            if self.too_large_messages > self._handled:
                seen = self.too_large_messages
                await self._stop_monitoring(client)
                self._handled = seen
                self.force_recreate = True  # the unacknowledged message is likely the oversized one
            try:
                await restore()
            finally:
                self.force_recreate = False

        compat.wrap_restore_subscriptions(client, restore_guarded)

    async def _stop_monitoring(self, client: Client) -> None:
        """Read each monitored node on its own: a read answered by a too-large message names the node
        whose value exceeds the limit. That node is no longer monitored (a new subscription is made
        without it), gets a quarantine row with the reason, and an ERROR says what to do. Raises
        ConnectionError when it found one, since that answer cost the connection."""
        self._scanning = True
        try:
            for handle, item in list(self.items.items()):
                try:
                    await client.get_node(item.node.nodeid).read_data_value(raise_on_bad_status=False)
                except ua.UaStatusCodeError as exc:
                    if is_too_large(exc):
                        self._forget(handle, item.node.nodeid)
                        raise ConnectionError("an oversized value cost the connection; reconnecting") from exc
                    log.debug("size scan: %s not readable (%s)", item.node.nodeid, exc)  # not the oversized one
                except TimeoutError:
                    log.debug("size scan: reading %s timed out", item.node.nodeid)
        finally:
            self._scanning = False

    def _forget(self, handle: int, nodeid: ua.NodeId) -> None:
        self.items.pop(handle, None)
        if self.sub is not None:
            compat.forget_monitored_item(self.sub, handle)
        self.oversized_nodes += 1
        binding = self.bindings.pop(nodeid, None)
        limit = self.opcua.max_message_size
        detail = (
            f"value larger than opcua.max_message_size ({limit} bytes): no longer monitored; raise the limit "
            f"if such values are expected, or fix the server's value"
        )
        self.quarantine(binding, nodeid, detail)
        log.error(
            "node %s (%s) has a value larger than opcua.max_message_size (%d bytes); it is no longer monitored "
            "until the collector restarts; the other nodes keep flowing. Raise opcua.max_message_size if such "
            "values are expected, or fix the value on the server",
            nodeid.to_string(),
            binding.tag if binding else "?",
            limit,
            extra={"node_id": nodeid.to_string()},
        )
