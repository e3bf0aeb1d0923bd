"""What every injector of the variability engine shares with it: the PLC port, the ground-truth
sink, the state-poll period, the engine's start, and the time helpers. The engine (`engine.py`)
schedules; the injectors (`faults.py`, `periodic.py`, `losses.py`) act on one line when due."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel, ConfigDict

from .distributions import BaseDistribution
from .plc_port import PlcPort


class Section(BaseModel):
    """A section of `[variability]`: unknown keys, changes after validation and NaN/inf are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


#: The engine's ground-truth sink: (line, kind, distribution, value, now, fault code, unit, context).
Emit = Callable[[str, str, BaseDistribution, float, datetime, int | None, str, dict[str, Any]], None]


@dataclass
class Injection:
    """The engine's side of an injection, handed to every injector."""

    port: PlcPort
    emit: Emit
    poll: timedelta  # simulated time between state reads while waiting on the PLC
    started_at: datetime
    abandoned_faults: int = 0  # faults due while the line could not fail (see faults.py)


def utc(ts: datetime) -> datetime:
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None
