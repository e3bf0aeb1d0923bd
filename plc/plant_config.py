"""Line profiles: which lines the plant has and how each behaves (`lines.toml`, or a user file
in the same format). Validated at load so a typo is a clear error, not a strange line."""

from __future__ import annotations

import tomllib
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from .line_model import LineParams

_FIELDS = {f.name for f in fields(LineParams)} - {"line_id"}


class ConfigError(ValueError):
    """A line configuration problem; the message says which file, key and what to do."""


def _read(path: Path | None) -> tuple[dict[str, Any], str]:
    if path is None:
        return tomllib.loads(
            resources.files("plc").joinpath("lines.toml").read_text(encoding="utf-8")
        ), "plc/lines.toml"
    try:
        return tomllib.loads(path.read_text(encoding="utf-8")), str(path)
    except OSError as exc:
        raise ConfigError(f"cannot read line config {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from exc


def _profile(raw: dict[str, Any], where: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    unknown = set(raw) - _FIELDS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_FIELDS)}")
    return dict(raw)


def load_lines(line_ids: list[str], config: Path | None = None, **overrides: Any) -> list[LineParams]:
    """LineParams for `line_ids`, from the packaged profiles or `config`, plus `overrides` for every line."""
    raw, where = _read(config)
    unknown = set(raw) - {"defaults", "lines"}
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {sorted(unknown)}; expected [defaults] and [lines.<id>]")
    defaults = _profile(raw.get("defaults", {}), f"{where} [defaults]")
    profiles = raw.get("lines", {})
    result = []
    for line_id in line_ids:
        merged = dict(defaults)
        merged.update(_profile(profiles.get(line_id, {}), f"{where} [lines.{line_id}]"))
        merged.update({k: v for k, v in overrides.items() if v is not None})
        durations = dict(defaults.get("acting_durations_s", {}))
        durations.update(profiles.get(line_id, {}).get("acting_durations_s", {}))
        if durations:
            merged["acting_durations_s"] = durations
        try:
            result.append(LineParams(line_id=line_id, **merged))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: {exc}") from exc
    return result
