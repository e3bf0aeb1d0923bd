"""Binds the variability engine to a connected collector (kept apart so `collector.py` does not
depend on how the engine is configured)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from asyncua import Client

from ..config import CollectorConfig, ConfigError


def engine_factory_for(
    config: CollectorConfig,
) -> Callable[[Client, Callable[[dict[str, Any]], None], str], Any] | None:
    """A factory the collector calls once connected, or None when variability is disabled."""
    raw = dict(config.variability)
    if not raw or not raw.pop("enabled", True):
        return None
    from pydantic import ValidationError

    from .engine import VariabilityConfig, VariabilityEngine
    from .plc_port import AsyncuaPlcPort

    seed = int(raw.pop("seed", 1))
    try:
        vconfig = VariabilityConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"[variability]: {exc}") from exc

    def factory(client: Client, sink: Callable[[dict[str, Any]], None], session_id: str) -> Any:
        port = AsyncuaPlcPort(client, config.opcua.runtime)
        return VariabilityEngine(vconfig, config.subscription.lines, seed, port, sink, session_id)

    return factory
