"""The tag map contract: loads `tagmap.toml`, the one definition of the PLC's address space.

The server's nodes, the Structured Text GVLs in `plc/codesys/` and the collector's default
subscriptions are all derived from here, so a tag is added in exactly one place.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from enum import IntEnum
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from asyncua import ua

TAGMAP_FILE = "tagmap.toml"

# OPC UA built-in types the tag map may use, with their IEC 61131-3 counterparts.
#: Tag type -> (its OPC UA VariantType's name, its IEC 61131-3 type). asyncua is imported where a variant type
#: is asked for (the PLC, the collector), not here: the tag map is also the pipeline's contract, and importing
#: asyncua cost every Dagster process (webserver, daemon, each run worker) about 1 s.
_TYPES: dict[str, tuple[str, str]] = {
    "Boolean": ("Boolean", "BOOL"),
    "Int32": ("Int32", "DINT"),
    "UInt32": ("UInt32", "UDINT"),
    "Double": ("Double", "LREAL"),
    "String": ("String", "STRING"),
    "DateTime": ("DateTime", "DATE_AND_TIME"),
}


#: Tag type -> asyncua's VariantType, filled on the first variant type asked for (see _TYPES): the PLC asks
#: for a tag's variant type at every value it publishes, so the lookup stays one dict access.
_VARIANTS: dict[str, ua.VariantType] = {}


def _variant_type(tag_type: str) -> ua.VariantType:
    if not _VARIANTS:
        from asyncua import ua

        _VARIANTS.update({name: ua.VariantType[variant] for name, (variant, _) in _TYPES.items()})
    return _VARIANTS[tag_type]


class TagMapError(ValueError):
    """The tag map file is malformed; the message names the entry and what to fix."""


@dataclass(frozen=True)
class Tag:
    """One variable of the address space, as the tag map declares it."""

    path: str
    type: str
    access: str
    description: str
    unit: tuple[str, str] | None = None
    subscribe: bool = False
    initial: Any = None

    @property
    def variant_type(self) -> ua.VariantType:
        return _VARIANTS.get(self.type) or _variant_type(self.type)

    @property
    def iec_type(self) -> str:
        return _TYPES[self.type][1]

    @property
    def writable(self) -> bool:
        return self.access == "rw"

    def default_value(self) -> Any:
        """Value at PLC start when the line model does not set one (zero of the type)."""
        if self.initial is not None:
            return self.initial
        return {"Boolean": False, "Int32": 0, "UInt32": 0, "Double": 0.0, "String": ""}.get(self.type)


@dataclass(frozen=True)
class TagMap:
    """The parsed tag map: plant and per-line tags plus the enumerations they use."""

    namespace_uri: str
    default_runtime: str
    plant_tags: tuple[Tag, ...]
    line_tags: tuple[Tag, ...]
    states: dict[str, int]
    commands: dict[str, int]
    stop_reasons: dict[str, int]

    def line_tag(self, path: str) -> Tag:
        for tag in self.line_tags:
            if tag.path == path:
                return tag
        raise KeyError(f"no line tag {path!r} in {TAGMAP_FILE}")

    def subscribed_line_tags(self) -> tuple[Tag, ...]:
        """Tags the edge collector subscribes to by default."""
        return tuple(t for t in self.line_tags if t.subscribe)


def symbol(runtime: str, line: str | None, path: str) -> str:
    """CODESYS symbolic node id string, e.g. `|var|CODESYS Control for Linux SL.Application.L1.Sim.FeedRate`."""
    scope = f"Application.{line}." if line else "Application."
    return f"|var|{runtime}.{scope}{path}"


def _parse_tag(raw: dict[str, Any], where: str) -> Tag:
    unknown = set(raw) - {"path", "type", "access", "description", "unit", "subscribe", "initial"}
    if unknown:
        raise TagMapError(
            f"{where}: unknown field(s) {sorted(unknown)}; "
            "allowed: path, type, access, unit, subscribe, initial, description"
        )
    for field in ("path", "type", "access", "description"):
        if field not in raw:
            raise TagMapError(f"{where}: missing field {field!r}")
    path = raw["path"]
    if not all(part.isidentifier() for part in path.split(".")):
        raise TagMapError(f"{where}: path {path!r} must be dot-separated identifiers (they become ST struct members)")
    if raw["type"] not in _TYPES:
        raise TagMapError(f"{where}: type {raw['type']!r} is not one of {sorted(_TYPES)}")
    if raw["access"] not in ("r", "rw"):
        raise TagMapError(f"{where}: access must be 'r' or 'rw', not {raw['access']!r}")
    unit = raw.get("unit")
    if unit is not None and (len(unit) != 2 or not all(isinstance(u, str) for u in unit)):
        raise TagMapError(f'{where}: unit must be [UNECE code, display name], e.g. ["MMT", "mm"]')
    return Tag(
        path=path,
        type=raw["type"],
        access=raw["access"],
        description=raw["description"],
        unit=tuple(unit) if unit else None,
        subscribe=bool(raw.get("subscribe", False)),
        initial=raw.get("initial"),
    )


def parse_tagmap(text: str) -> TagMap:
    """Parse and validate tag map TOML text."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TagMapError(f"{TAGMAP_FILE} is not valid TOML: {exc}") from exc
    plant = tuple(_parse_tag(t, f"plant_tags[{i}]") for i, t in enumerate(raw.get("plant_tags", [])))
    lines = tuple(_parse_tag(t, f"line_tags[{i}]") for i, t in enumerate(raw.get("line_tags", [])))
    for group in (plant, lines):
        paths = [t.path for t in group]
        dupes = {p for p in paths if paths.count(p) > 1}
        if dupes:
            raise TagMapError(f"duplicate tag path(s) {sorted(dupes)}")
    return TagMap(
        namespace_uri=raw["namespace_uri"],
        default_runtime=raw["default_runtime"],
        plant_tags=plant,
        line_tags=lines,
        states=dict(raw["states"]),
        commands=dict(raw["commands"]),
        stop_reasons=dict(raw["stop_reasons"]),
    )


@cache
def load_tagmap() -> TagMap:
    """The packaged tag map (cached: it is immutable at run time)."""
    return parse_tagmap(resources.files("plc").joinpath(TAGMAP_FILE).read_text(encoding="utf-8"))


def _enum(name: str, members: dict[str, int]) -> Any:
    """An IntEnum of the tag map's members. They exist only at run time, so the result is Any to a type
    checker (as `type[IntEnum]` every member would be "missing")."""
    factory: Any = IntEnum  # the functional API through Any: mypy wants literal members for IntEnum(...)
    return factory(name, members)


TAGS = load_tagmap()
PackMLState = _enum("PackMLState", TAGS.states)
PackMLCommand = _enum("PackMLCommand", TAGS.commands)
StopReason = _enum("StopReason", TAGS.stop_reasons)
