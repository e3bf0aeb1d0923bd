"""Rows -> Arrow for the edge tables, strictly: a row that does not fit its schema is diverted to
`quarantine` with a reason instead of being cast (RELIABILITY.md D6).

`build_batch` converts column-wise (one C-level pass for the collector's rows) and checks value by
value only in a column that fails; `quarantine_row` describes a rejected row using only the fields
that fit, and `last_resort_row` when not even those do.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from operator import itemgetter
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from ..schemas import EVENT_TIME, TABLES, day_of

_INT64 = (-(2**63), 2**63 - 1)
_NONE = type(None)


@lru_cache(maxsize=256)
def _accepts(arrow_type: pa.DataType, py_type: type) -> bool:
    """Python types a column takes without a lossy cast (pyarrow alone would truncate 1.5 into int64)."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return issubclass(py_type, str)
    if pa.types.is_floating(arrow_type):
        return issubclass(py_type, numbers.Real)  # int and bool (0/1) included
    if pa.types.is_integer(arrow_type):
        return issubclass(py_type, numbers.Integral) and not issubclass(py_type, bool)
    if pa.types.is_timestamp(arrow_type):
        return issubclass(py_type, datetime)
    return False


def _reason(value: Any) -> str:
    """`type_changed` for a plain scalar of the wrong type; `unsupported_type` for what no column stores."""
    if value is None or isinstance(value, (bytes, bytearray, memoryview, list, tuple, dict, set)):
        return "unsupported_type"
    if isinstance(value, (str, numbers.Number, datetime)):
        return "type_changed"
    return "unsupported_type"


@dataclass(frozen=True)
class Rejected:
    """A row that does not fit its table's schema: the first column that failed, and why."""

    row: Mapping[str, Any]
    column: str
    value: Any
    reason: str
    detail: str


def _check_value(fld: pa.Field, value: Any, required: bool) -> tuple[str, str] | None:
    if value is None:
        return ("unsupported_type", f"required column {fld.name} is missing") if required else None
    kind: type = type(value)
    if not _accepts(fld.type, kind):
        return _reason(value), f"column {fld.name} expects {fld.type}, got {type(value).__name__}"
    try:
        pa.array([value], type=fld.type)
    except (pa.ArrowException, OverflowError, ValueError, TypeError) as exc:
        return "unsupported_type", f"column {fld.name} cannot store this {type(value).__name__}: {exc}"
    return None


def _columns(schema: pa.Schema, rows: Sequence[Mapping[str, Any]]) -> tuple[list[pa.Array | None], dict[int, Rejected]]:
    """Column-wise conversion; only a column that fails is checked value by value."""
    arrays: list[pa.Array | None] = []
    bad: dict[int, Rejected] = {}
    try:  # one C-level pass when every row has every column (the collector's rows do)
        columns: list[Sequence[Any]] | None = list(zip(*map(itemgetter(*schema.names), rows))) if rows else None
    except (KeyError, TypeError):
        columns = None
    for k, fld in enumerate(schema):
        name = fld.name
        values = columns[k] if columns is not None else [r.get(name) for r in rows]
        required = not fld.nullable and name != "day"  # day is derived when missing
        types = set(map(type, values))
        array = None
        if (not required or _NONE not in types) and all(t is _NONE or _accepts(fld.type, t) for t in types):
            try:
                array = pa.array(values, type=fld.type)
            except (pa.ArrowException, OverflowError, ValueError, TypeError):
                array = None
        if array is None:
            for i, value in enumerate(values):
                if i not in bad and (problem := _check_value(fld, value, required)) is not None:
                    bad[i] = Rejected(rows[i], name, value, *problem)
        arrays.append(array)
    return arrays, bad


def build_batch(table: str, rows: Sequence[Mapping[str, Any]]) -> tuple[pa.Table, list[Rejected]]:
    """Rows (dicts of Python values) -> an Arrow table of the edge schema, plus the rows that do not fit."""
    schema = TABLES[table]
    rejected: list[Rejected] = []
    while True:
        arrays, bad = _columns(schema, rows)
        if not bad:
            break
        rejected.extend(bad.values())
        rows = [r for i, r in enumerate(rows) if i not in bad]
    if any(a is None for a in arrays):  # a column failed as a whole but no value failed alone
        raise ValueError(f"{table}: cannot convert the batch although every value fits its column")
    names = schema.names
    day_i = names.index("day")
    day = arrays[day_i]
    assert day is not None  # noqa: S101 - an invariant, stated for the type checker
    if day.null_count:
        derived = pc.strftime(arrays[names.index(EVENT_TIME[table])], format="%Y-%m-%d")
        arrays[day_i] = pc.if_else(pc.is_null(day), derived, day)
    return pa.Table.from_arrays(arrays, schema=schema), rejected


def _pick(row: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = row.get(name)
    if not isinstance(value, kind) or isinstance(value, bool):
        return None
    if isinstance(value, int) and not _INT64[0] <= value <= _INT64[1]:
        return None
    return value


def _safe_repr(value: Any, limit: int) -> str:
    try:
        return repr(value)[:limit]
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ must not stop the writer
        return f"<unrepresentable {type(value).__name__}: {exc!r}>"[:limit]


def quarantine_row(table: str, rej: Rejected) -> dict[str, Any]:
    """A `quarantine` row describing a row of `table` that did not fit; built only from fields that fit."""
    row = rej.row
    received = _pick(row, "received_ts", datetime) or datetime.now(UTC)
    seq = _pick(row, "seq", int)
    return {
        "line_id": _pick(row, "line_id", str),
        "tag": _pick(row, "tag", str),
        "node_id": _pick(row, "node_id", str),
        "source_ts": _pick(row, EVENT_TIME[table] if table != "quarantine" else "source_ts", datetime),
        "server_ts": _pick(row, "server_ts", datetime),
        "received_ts": received,
        "raw_value": _safe_repr(rej.value, 1000),
        "variant_type": _pick(row, "variant_type", str),
        "status_code": _pick(row, "status_code", int),
        "reason": rej.reason,
        "detail": f"{table}: {rej.detail}; row {_safe_repr(dict(row), 1800)}"[:2000],
        "session_id": _pick(row, "session_id", str) or "unknown",
        "seq": seq if seq is not None else -1,
        "day": day_of(received),
    }


def last_resort_row(rej: Rejected) -> dict[str, Any]:
    """A quarantine row built from nothing but the rejected value's repr (ASCII), the reason and now."""
    now = datetime.now(UTC)
    return {
        "received_ts": now,
        "raw_value": ascii(_safe_repr(rej.value, 1000)),
        "reason": rej.reason,
        "detail": ascii(f"{rej.detail}; row {_safe_repr(dict(rej.row), 1800)}")[:2000],
        "session_id": "unknown",
        "seq": -1,
        "day": day_of(now),
    }
