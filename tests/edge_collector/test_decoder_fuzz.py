"""F2 (RELIABILITY.md): decoder fuzz smoke, time-boxed, and corrupt chunks from a fake server.

asyncua decodes what a server sends; a rogue or broken server must cost a connection, never the
collector. Part 1 mutates valid encodings of ReadResponse and PublishResponse (flipped bytes,
truncation, trailing garbage) and decodes them: every input ends in bounded time, in a result or an
ordinary exception. Part 2 puts a fake endpoint in front of a real PLC that answers the first
connections with hand-made corrupt chunks (zero length, a header longer than its body, a chunk
above any size limit); the collector must survive each and then collect through the same endpoint.
"""

from __future__ import annotations

import asyncio
import random
import struct
import time
from collections import Counter
from typing import Any

import pytest
from asyncua import ua
from asyncua.common.utils import Buffer
from asyncua.ua.ua_binary import struct_from_binary, struct_to_binary

from edge_collector.collector import Collector
from tests.conftest import free_port
from tests.edge_collector.conftest import LAB_ENV, clock_seen, lab_config, read_table, running

#: What asyncua 2.x's decoder raises on garbage (seen here): NotEnoughData, ValueError and UaError as the
#: case expects, and also struct.error, TypeError and IndexError. The client's protocol catches any
#: Exception while parsing and drops the connection (asyncua/client/ua_client.py), so what matters is
#: that nothing else escapes (no RecursionError, MemoryError, SystemExit) and nothing hangs.
EXPECTED = (Exception,)
UNEXPECTED = (RecursionError, MemoryError)


def seeds() -> dict[type, bytes]:
    read = ua.ReadResponse()
    read.Results = [
        ua.DataValue(ua.Variant(1.5)),
        ua.DataValue(ua.Variant("text")),
        ua.DataValue(ua.Variant([1, 2, 3], ua.VariantType.Int32)),
        ua.DataValue(ua.Variant(None), ua.StatusCode(ua.StatusCodes.BadNodeIdUnknown)),
    ]
    publish = ua.PublishResponse()
    publish.Parameters.AvailableSequenceNumbers = [1, 2]
    notification = ua.DataChangeNotification()
    item = ua.MonitoredItemNotification()
    item.ClientHandle, item.Value = 7, ua.DataValue(ua.Variant(42.0))
    notification.MonitoredItems = [item]
    publish.Parameters.NotificationMessage.NotificationData = [notification]
    return {ua.ReadResponse: struct_to_binary(read), ua.PublishResponse: struct_to_binary(publish)}


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 8)):
        op = rng.random()
        if op < 0.5 and out:
            out[rng.randrange(len(out))] = rng.randrange(256)
        elif op < 0.7:
            del out[rng.randrange(len(out) + 1) :]
        elif op < 0.85:
            out += rng.randbytes(rng.randint(1, 16))
        elif len(out) >= 4:  # a length or count field set to something absurd
            at = rng.randrange(len(out) - 3)
            out[at : at + 4] = struct.pack("<i", rng.choice([-2, 0x7FFFFFFF, 1 << 24]))
    return bytes(out)


def test_the_decoder_ends_every_mutated_message_in_bounded_time() -> None:
    rng = random.Random(2026)
    outcomes: Counter[str] = Counter()
    slowest = 0.0
    deadline = time.monotonic() + 20.0  # time box (the case's 60 s, shortened for CI)
    n, valid_messages = 0, seeds()
    while n < 5000 and time.monotonic() < deadline:
        for typ, valid in valid_messages.items():
            data = mutate(valid, rng)
            t0 = time.perf_counter()
            try:
                struct_from_binary(typ, Buffer(data))
                outcomes["decoded"] += 1
            except UNEXPECTED as exc:
                pytest.fail(f"{type(exc).__name__} decoding {data!r}")
            except EXPECTED as exc:
                outcomes[type(exc).__name__] += 1
            slowest = max(slowest, time.perf_counter() - t0)
            n += 1
    print(f"\n{n} mutated messages: {dict(outcomes.most_common())}; slowest {slowest * 1000:.1f} ms")
    assert n >= 1000 and outcomes["decoded"] > 0 and sum(outcomes.values()) == n
    assert {"NotEnoughData", "ValueError"} <= set(outcomes)  # the mutations reach the decoder's checks
    assert slowest < 1.0


#: Hand-made replies to the client's Hello: what a broken or rogue endpoint might send.
CORRUPT = {
    "zero length": b"ACKF" + struct.pack("<I", 0),
    "header longer than body": b"ACKF" + struct.pack("<I", 1000) + b"\x00" * 12,
    "chunk above any limit": b"MSGF" + struct.pack("<I", 0x7FFFFFF0) + b"\x01\x00\x00\x00" * 4,
    "garbage": bytes(range(256)),
}


class CorruptFirst:
    """A loopback endpoint that answers the first connections with one corrupt chunk each (in `CORRUPT`
    order), then relays every later connection to the real server."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port, self.port = upstream_port, free_port()
        self.connections = 0
        self.server: asyncio.base_events.Server | None = None
        self.served: list[tuple[str, float]] = []  # (variant, seconds until the client hung up)

    async def __aenter__(self) -> CorruptFirst:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        n, self.connections = self.connections, self.connections + 1
        variants = list(CORRUPT)
        try:
            if n < len(variants):
                t0 = time.monotonic()
                await reader.read(4096)  # the client's Hello
                writer.write(CORRUPT[variants[n]])
                await writer.drain()
                try:  # the client must hang up by itself: parsing failed, or it timed out waiting
                    await asyncio.wait_for(reader.read(), timeout=30)
                except TimeoutError:
                    pass
                self.served.append((variants[n], time.monotonic() - t0))
                return
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)

            async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                try:
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                finally:
                    dst.close()

            await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer), return_exceptions=True)
        finally:
            writer.close()


async def test_corrupt_chunks_cost_a_connection_not_the_collector(start_plc: Any, tmp_path: Any) -> None:
    async with start_plc() as plc:
        async with CorruptFirst(int(plc.options.endpoint.rsplit(":", 1)[1])) as fake:
            config = lab_config(plc, tmp_path, opcua={"endpoint": f"opc.tcp://127.0.0.1:{fake.port}", "timeout_s": 3.0})
            t0 = time.monotonic()
            async with running(Collector(config, environ=LAB_ENV), timeout=120) as collector:
                ready_s = time.monotonic() - t0
                for _ in range(10):
                    await plc.step(10.0)
                    await asyncio.sleep(0.05)
                await clock_seen(collector, plc)
                await collector.datalogger.flush()
        print(f"\ncorrupt replies: {[(v, round(s, 1)) for v, s in fake.served]}; collecting after {ready_s:.1f} s")
        assert [v for v, _ in fake.served] == list(CORRUPT)  # every corrupt reply was met, one connection each
        # none left the client hanging beyond its request timeout (3 s) and a little scheduling slack
        assert all(seconds < config.opcua.timeout_s + 2.0 for _, seconds in fake.served), fake.served
        assert fake.connections > len(CORRUPT)
        raw = read_table(config.lake(), "raw_samples")
        assert raw.height > 0 and set(raw["line_id"]) == {"L1", "L2"}
