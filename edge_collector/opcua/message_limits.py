"""Bounded messages from the server (RELIABILITY.md S7): a rogue or buggy server must not be able
to make the collector buffer a message of any size.

asyncua checks incoming messages against its transport limits and fails with BadRequestTooLarge
once a message passes them (it drops the connection, failing every pending request with that one
exception). But it takes those limits from the server's Acknowledge, so a server that acknowledges
0 ("no limit") lifts them. OPC 10000-6 §7.1.2 says the Hello's MaxMessageSize/MaxChunkCount are
what the client accepts in responses; `enforce_receive_limits` re-applies ours after every Hello.
`TooLargeObserver` reports each too-large message once, so the collector can count it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import Client, ua
from asyncua.observer import Observer

from .asyncua_compat import AsyncStep, set_receive_limits, wrap_send_hello

TOO_LARGE = frozenset({ua.StatusCodes.BadRequestTooLarge, ua.StatusCodes.BadResponseTooLarge})


def is_too_large(exc: BaseException | None) -> bool:
    return isinstance(exc, ua.UaStatusCodeError) and exc.code in TOO_LARGE


def enforce_receive_limits(client: Client, max_message_size: int, max_chunk_count: int) -> None:
    """After each Hello (first connect and every reconnect), bound received messages by our own
    limits, whatever the server acknowledged. Both must be finite (> 0): 0 means "no limit"."""
    if max_message_size <= 0 or max_chunk_count <= 0:
        raise ValueError("max_message_size and max_chunk_count must be > 0 (0 means no limit in asyncua)")
    client.max_messagesize = max_message_size
    client.max_chunkcount = max_chunk_count

    async def send_hello_and_bound(send_hello: AsyncStep) -> None:
        await send_hello()
        set_receive_limits(client, max_message_size, max_chunk_count)

    wrap_send_hello(client, send_hello_and_bound)


class TooLargeObserver(Observer):
    """asyncua request observer calling `on_too_large(request_type, exc)` once per too-large message
    (every request pending on the connection fails with the same exception object)."""

    def __init__(self, on_too_large: Callable[[str, BaseException], Any]) -> None:
        self._on_too_large = on_too_large
        self._last: BaseException | None = None

    def on_request(self, request_type: str, duration: float, error: BaseException | None) -> None:
        if error is not None and is_too_large(error) and error is not self._last:
            self._last = error
            self._on_too_large(request_type, error)
