"""The variability engine's view of the PLC: three operations, so the engine can be driven by a real
OPC UA client, a real CODESYS runtime, or an in-memory fake in tests.

`AsyncuaPlcPort` resolves tags through the tag map (`plc/tagmap.toml`) to CODESYS symbolic node ids
and always sends the tag map's variant type: a bare Python int written to a Double tag is refused
with BadTypeMismatch by real servers (CODESYS included), and so is it by `plc-sim`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from asyncua import Client, ua
from asyncua.ua.uaerrors import UaStatusCodeError

from plc.tagmap import TAGS, PackMLCommand, Tag, symbol

_INT_RANGES = {"Int32": (-(2**31), 2**31 - 1), "UInt32": (0, 2**32 - 1)}


@dataclass(frozen=True)
class LineState:
    """PackML state of a line and the PLC time it was entered (source timestamp of StateCurrent).

    `since` lets the engine count time to failure from the exact instant the line re-entered
    Execute, not from when it happened to look; None when the server sends no source timestamp."""

    state: int
    since: datetime | None


class PlcPort(Protocol):
    """What the variability engine needs from a PLC."""

    async def write(self, line: str, path: str, value: Any) -> None:
        """Write one writable line tag (path as in the tag map, e.g. `Sim.FeedRate`)."""

    async def command(self, line: str, cmd: int) -> None:
        """PackML command handshake: Command.CntrlCmd = cmd, then Command.CmdChangeRequest = True."""

    async def state(self, line: str) -> LineState:
        """Current Status.StateCurrent and when it was entered."""


def to_variant(tag: Tag, value: Any) -> ua.Variant:
    """`value` as a Variant of the tag's declared type; a clear error instead of a server refusal."""
    where = f"{tag.path} ({tag.type})"
    if tag.type == "Boolean":
        if not isinstance(value, bool | int) or value not in (0, 1):
            raise TypeError(f"{where} needs a bool, got {value!r}")
        return ua.Variant(bool(value), ua.VariantType.Boolean)
    if tag.type in _INT_RANGES:
        if isinstance(value, float):
            if not value.is_integer():
                raise TypeError(f"{where} needs an integer, got {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise TypeError(f"{where} needs an integer, got {value!r}")
        lo, hi = _INT_RANGES[tag.type]
        if not lo <= value <= hi:
            raise ValueError(f"{where} must be in {lo}..{hi}, got {value}")
        return ua.Variant(int(value), tag.variant_type)
    if tag.type == "Double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError(f"{where} needs a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{where} must be finite, got {value!r}")
        return ua.Variant(float(value), ua.VariantType.Double)
    if tag.type == "String":
        return ua.Variant(str(value), ua.VariantType.String)
    if tag.type == "DateTime":
        if not isinstance(value, datetime):
            raise TypeError(f"{where} needs a datetime, got {value!r}")
        return ua.Variant(value, ua.VariantType.DateTime)
    raise TypeError(f"{where}: unsupported tag type")


class AsyncuaPlcPort:
    """`PlcPort` over an asyncua client, addressed like a CODESYS runtime."""

    def __init__(self, client: Client, runtime: str = TAGS.default_runtime) -> None:
        self.client = client
        self.runtime = runtime
        self._ns: int | None = None

    async def _nodeid(self, line: str, path: str) -> ua.NodeId:
        if self._ns is None:
            self._ns = await self.client.get_namespace_index(TAGS.namespace_uri)
        return ua.NodeId(symbol(self.runtime, line, path), self._ns)

    def _forget_namespace_on(self, exc: UaStatusCodeError) -> None:
        # A restarted server may have renumbered its namespaces: look the index up again next time.
        if exc.code == ua.StatusCodes.BadNodeIdUnknown:
            self._ns = None

    async def write(self, line: str, path: str, value: Any) -> None:
        tag = TAGS.line_tag(path)
        if not tag.writable:
            raise ValueError(f"{path} is read-only in the tag map; the engine may only write 'rw' tags")
        variant = to_variant(tag, value)
        node = self.client.get_node(await self._nodeid(line, path))
        try:
            # No source timestamp: CODESYS refuses client-stamped writes, and the PLC stamps its own time.
            await node.write_attribute(ua.AttributeIds.Value, ua.DataValue(variant))
        except UaStatusCodeError as exc:
            self._forget_namespace_on(exc)
            raise

    async def command(self, line: str, cmd: int) -> None:
        await self.write(line, "Command.CntrlCmd", int(PackMLCommand(cmd)))
        await self.write(line, "Command.CmdChangeRequest", True)

    async def state(self, line: str) -> LineState:
        node = self.client.get_node(await self._nodeid(line, "Status.StateCurrent"))
        try:
            dv = await node.read_data_value()
        except UaStatusCodeError as exc:
            self._forget_namespace_on(exc)
            raise
        if dv.Value is None or dv.Value.Value is None:
            raise ValueError(f"{line} Status.StateCurrent has no value")
        since = dv.SourceTimestamp
        if since is not None and since.tzinfo is None:
            since = since.replace(tzinfo=UTC)
        return LineState(int(dv.Value.Value), since)
