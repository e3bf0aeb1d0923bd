"""From an OPC UA data change to a row: a `raw_samples` row, or a `quarantine` row with a reason.

Bad input never vanishes and never stops collection: NaN/Inf, type changes, unsupported types,
oversized strings and absurd timestamps become quarantine rows; a Bad status code is kept in
`raw_samples` with a null value and its status (the pipeline treats it as "value unknown").

A missing source timestamp (absent, or the OPC UA null DateTime 1601-01-01) is not an absurd one:
some servers send none. The sample is kept, stamped with the server timestamp, else the received
time (`source_ts` is not nullable); `server_ts` keeps what the server sent. The collector says so
once per node (a WARNING) and counts such samples (`source_ts_substituted`).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua

from .schemas import day_of

MAX_TEXT = 4096
log = logging.getLogger("edge_collector")

EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
OPC_NULL_DATETIME = datetime(1601, 1, 2, tzinfo=UTC)  # at or before: the OPC UA null DateTime (DateTime.min)
MAX_AHEAD = timedelta(days=1)
_UTC = UTC
_NUMERIC = {
    ua.VariantType.Boolean,
    ua.VariantType.SByte,
    ua.VariantType.Byte,
    ua.VariantType.Int16,
    ua.VariantType.UInt16,
    ua.VariantType.Int32,
    ua.VariantType.UInt32,
    ua.VariantType.Int64,
    ua.VariantType.UInt64,
    ua.VariantType.Float,
    ua.VariantType.Double,
}


@dataclass
class NodeBinding:
    """What the collector knows about one subscribed node."""

    line_id: str
    tag: str
    node_id: str
    expected: ua.VariantType | None = None  # from the tag map; None: learnt from the first value
    store: bool = True  # False for nodes read only for the collector itself (the PLC clock)


@dataclass(slots=True)
class Normalized:
    table: str  # "raw_samples" or "quarantine"
    row: dict[str, Any]


def _aware(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts if ts.tzinfo is not None else ts.replace(tzinfo=UTC)


@dataclass
class Normalizer:
    session_id: str
    max_text: int = MAX_TEXT
    _seq: dict[str, int] = field(default_factory=dict)
    substituted: int = 0  # samples without a source timestamp, stamped with the server's or the received time
    _unstamped: set[str] = field(default_factory=set)  # node ids already reported as sending none

    def next_seq(self, line_id: str) -> int:
        """Strictly increasing per session and line, across all edge tables."""
        value = self._seq.get(line_id, 0) + 1
        self._seq[line_id] = value
        return value

    def quarantine(
        self,
        binding: NodeBinding | None,
        dv: ua.DataValue | None,
        received: datetime,
        reason: str,
        detail: str,
        node_id: str | None = None,
    ) -> Normalized:
        variant = dv.Value if dv is not None else None
        raw = repr(variant.Value) if variant is not None else None
        line_id = binding.line_id if binding else None
        return Normalized(
            "quarantine",
            {
                "line_id": line_id,
                "tag": binding.tag if binding else None,
                "node_id": binding.node_id if binding else node_id,
                "source_ts": _aware(dv.SourceTimestamp) if dv is not None else None,
                "server_ts": _aware(dv.ServerTimestamp) if dv is not None else None,
                "received_ts": received,
                "raw_value": raw[:1000] if raw is not None else None,
                "variant_type": variant.VariantType.name if variant is not None else None,
                "status_code": int(dv.StatusCode.value) if dv is not None and dv.StatusCode is not None else None,
                "reason": reason,
                "detail": detail,
                "session_id": self.session_id,
                "seq": self.next_seq(line_id or "_collector"),
                "day": day_of(received),
            },
        )

    def normalize(self, binding: NodeBinding, dv: ua.DataValue, received: datetime) -> Normalized:
        # Fast path, the common case on the per-sample path: a Good/Uncertain finite number or date of
        # the expected type, timestamps already in UTC (asyncua decodes them so). Anything else takes the
        # general path below, which decides exactly as before.
        variant, sc, source = dv.Value, dv.StatusCode, dv.SourceTimestamp
        if (
            variant is not None
            and source is not None
            and source.tzinfo is _UTC
            and not variant.is_array
            and variant.VariantType is binding.expected
            and (sc is None or not sc.value & 0x80000000)
            and EARLIEST <= source <= received + MAX_AHEAD
        ):
            raw = variant.Value
            kind = type(raw)
            value: float | None = None
            if kind is float or kind is int or kind is bool:
                value = float(raw)
                if value - value == 0.0:  # finite: inf - inf and nan - nan are nan
                    return self._sample(binding, dv, source, received, value, None, sc.value if sc is not None else 0)
            elif kind is datetime and raw.tzinfo is _UTC:
                return self._sample(
                    binding, dv, source, received, raw.timestamp(), None, sc.value if sc is not None else 0
                )
        return self._normalize(binding, dv, received)

    def _sample(
        self,
        binding: NodeBinding,
        dv: ua.DataValue,
        source: datetime,
        received: datetime,
        value: float | None,
        text: str | None,
        status: int,
    ) -> Normalized:
        server = dv.ServerTimestamp
        return Normalized(
            "raw_samples",
            {
                "line_id": binding.line_id,
                "tag": binding.tag,
                "source_ts": source,
                "server_ts": server if server is None or server.tzinfo is not None else server.replace(tzinfo=_UTC),
                "received_ts": received,
                "value": value,
                "value_text": text,
                "status_code": status,
                "session_id": self.session_id,
                "seq": self.next_seq(binding.line_id),
                "day": day_of(source),
            },
        )

    def _substitute(self, binding: NodeBinding, dv: ua.DataValue, received: datetime) -> datetime:
        """The stamp of a sample without a source timestamp: the server's, else the received time."""
        server = _aware(dv.ServerTimestamp)
        stamp = server if server is not None and server >= EARLIEST else received
        self.substituted += 1
        if binding.node_id not in self._unstamped:
            self._unstamped.add(binding.node_id)
            log.warning(
                "line %s: node %s (%s) sends no source timestamp; its samples are stored with the %s as "
                "source_ts (ordered by server timestamp and sequence)",
                binding.line_id,
                binding.node_id,
                binding.tag,
                "server timestamp" if stamp is server else "received time",
                extra={"line_id": binding.line_id, "tag": binding.tag, "node_id": binding.node_id},
            )
        return stamp

    def _normalize(self, binding: NodeBinding, dv: ua.DataValue, received: datetime) -> Normalized:
        status = int(dv.StatusCode.value) if dv.StatusCode is not None else 0
        source = _aware(dv.SourceTimestamp)
        if source is None or source < OPC_NULL_DATETIME:
            source = self._substitute(binding, dv, received)
        if source is None or source < EARLIEST or source > received + MAX_AHEAD:
            return self.quarantine(
                binding,
                dv,
                received,
                "absurd_timestamp",
                f"source timestamp {source} outside {EARLIEST.date()} .. received + {MAX_AHEAD}",
            )
        variant = dv.Value
        value: float | None = None
        text: str | None = None
        if status & 0x80000000:  # Bad: the server says the value is not usable
            pass
        elif variant is None or variant.Value is None:
            return self.quarantine(binding, dv, received, "unsupported_type", "null value with a non-Bad status")
        else:
            vtype = variant.VariantType
            if variant.is_array or isinstance(variant.Value, (list, tuple)):
                return self.quarantine(binding, dv, received, "unsupported_type", f"array of {vtype.name}")
            if binding.expected is None:
                binding.expected = vtype
            elif vtype != binding.expected:
                return self.quarantine(
                    binding, dv, received, "type_changed", f"expected {binding.expected.name}, got {vtype.name}"
                )
            raw = variant.Value
            if vtype in _NUMERIC and isinstance(raw, (bool, int, float)):
                value = float(raw)
                if not math.isfinite(value):
                    return self.quarantine(binding, dv, received, "non_finite", f"{raw!r}")
            elif vtype == ua.VariantType.String and isinstance(raw, str):
                if len(raw) > self.max_text:
                    return self.quarantine(
                        binding, dv, received, "too_large", f"{len(raw)} characters > {self.max_text}"
                    )
                text = raw
            elif vtype == ua.VariantType.DateTime and isinstance(raw, datetime):
                value = _aware(raw).timestamp()  # type: ignore[union-attr]  # raw is a datetime (checked above)
            else:
                return self.quarantine(binding, dv, received, "unsupported_type", f"{vtype.name} cannot be stored")
        return self._sample(binding, dv, source, received, value, text, status)
