"""A TCP proxy on loopback that passes traffic to a target port and can break it on purpose: cut the
connection after N bytes from the client, reset every open connection now (`cut()`: an RST to both
sides, a transport drop), drop the server's next response (the request arrives
and takes effect, the client never hears), blackhole every connection (a half-open link: bytes in
both directions are discarded, no FIN or RST reaches either side, until `restore()`), or add latency
per chunk (`delay_s`). Runs its own asyncio loop in a thread, so synchronous
clients (the Azure SDK) can go through it."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

from tests.conftest import free_port


@dataclass
class FaultProxy:
    target_port: int
    port: int = field(default_factory=free_port)
    cut_after_bytes: int | None = None  # upstream bytes after which every connection is cut (once)
    drop_responses: int = 0  # this many server responses are swallowed (the client's connection is closed) ...
    pass_responses: int = 0  # ... after letting this many through (a response = one read from the server)
    delay_s: float = 0.0  # latency added before each chunk is forwarded (either direction)
    upstream_bytes: int = 0
    cuts: int = 0  # cut_after_bytes triggers plus cut() calls
    blackholed_bytes: int = 0  # bytes discarded while blackholed (both directions)
    blackholed_at: float | None = None  # time.monotonic() of the last blackhole() / restore()
    restored_at: float | None = None

    def __post_init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._blackholed = False
        self._restored = asyncio.Event()  # set by restore(); a close seen while blackholed waits for it
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter]] = set()  # (client side, server side)

    @property
    def connections(self) -> int:
        """Connections currently open through the proxy."""
        return len(self._open)

    def cut(self, timeout: float = 10.0) -> int:
        """Reset every open connection now, both sides (SO_LINGER 0, so each peer gets an RST, not a
        FIN), as when a NAT or firewall drops the flow; new connections are accepted as before.
        Returns how many connections were cut."""
        return asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(timeout)

    async def _cut(self) -> int:
        pairs = list(self._open)
        self._open.clear()
        for pair in pairs:
            for w in pair:
                sock = w.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                w.transport.abort()
        self.cuts += 1
        return len(pairs)

    def blackhole(self) -> None:
        """From now on, discard bytes in both directions on every connection (new ones are accepted
        and blackholed too) and keep both sockets open: neither side sees a FIN or a reset, as when
        a link dies. A close from either side is held back until `restore()`."""
        self._blackholed = True
        self.blackholed_at = time.monotonic()
        self._loop.call_soon_threadsafe(self._restored.clear)

    def restore(self) -> None:
        """Forward bytes again (what was discarded stays lost) and deliver held-back closes."""
        self._blackholed = False
        self.restored_at = time.monotonic()
        self._loop.call_soon_threadsafe(self._restored.set)

    @property
    def blackholed(self) -> bool:
        return self._blackholed

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._handle, "127.0.0.1", self.port))
        self._ready.set()
        try:
            self._loop.run_forever()
        finally:
            server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        pair = (writer, up_writer)
        self._open.add(pair)

        async def forward(data: bytes) -> bool:
            """False if `data` is to be discarded (blackholed)."""
            if self.delay_s > 0:
                await asyncio.sleep(self.delay_s)
            if self._blackholed:
                self.blackholed_bytes += len(data)
                return False
            return True

        async def hold_close() -> None:
            if self._blackholed:  # a dead link does not carry the FIN either
                await self._restored.wait()

        async def upstream() -> None:
            while data := await reader.read(65536):
                if not await forward(data):
                    continue
                if self.cut_after_bytes is not None and self.upstream_bytes + len(data) >= self.cut_after_bytes:
                    self.cut_after_bytes, self.cuts = None, self.cuts + 1
                    raise ConnectionAbortedError("cut")
                self.upstream_bytes += len(data)
                up_writer.write(data)
                await up_writer.drain()
            await hold_close()

        async def downstream() -> None:
            while data := await up_reader.read(65536):
                if not await forward(data):
                    continue
                if self.pass_responses > 0:
                    self.pass_responses -= 1
                elif self.drop_responses > 0:
                    self.drop_responses -= 1
                    raise ConnectionAbortedError("response dropped")
                writer.write(data)
                await writer.drain()
            await hold_close()

        tasks = [asyncio.ensure_future(upstream()), asyncio.ensure_future(downstream())]
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        self._open.discard(pair)
        for w in (writer, up_writer):
            w.transport.abort()
