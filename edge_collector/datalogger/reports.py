"""What the datalogger reports: counters (metrics and tests read them), what start-up recovered,
each acknowledged batch, and the test seams on its writer thread."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa

#: Commit latencies kept for the p50/p99 quantiles.
LATENCY_WINDOW = 4096


@dataclass
class DataloggerStats:
    """Counters read by metrics and tests. rows_added counts every `add()` call, dropped ones too, so
    rows_added == rows_committed + dropped_rows + buffer_rows + rows spooled but not yet committed
    (plus, in rows_committed, rows an earlier run had spooled and this one replayed)."""

    rows_added: int = 0
    rows_acknowledged: int = 0  # in a durable spool file
    rows_committed: int = 0  # in a Delta commit
    rows_quarantined: int = 0  # diverted to `quarantine` because they did not fit their schema
    dropped_rows: int = 0  # buffer overflow (or added after close): counted, logged, never silent
    buffer_rows: int = 0  # added, not yet spooled
    commits: int = 0
    batches_skipped: int = 0  # spooled batches found already committed (replay after a crash)
    last_commit_latency_s: float = 0.0
    commit_latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    last_version: dict[str, int] = field(default_factory=dict)
    spool_files_pending: int = 0
    compactions: int = 0
    checkpoints: int = 0
    errors: int = 0

    def latency_quantile(self, q: float) -> float:
        lat = sorted(self.commit_latencies)
        return lat[min(len(lat) - 1, int(q * len(lat)))] if lat else 0.0


@dataclass
class RecoveryReport:
    """What `start()` found in the spool and did about it."""

    replayed_batches: dict[str, int] = field(default_factory=dict)
    replayed_rows: dict[str, int] = field(default_factory=dict)
    skipped_batches: dict[str, int] = field(default_factory=dict)  # already in Delta: deleted, not rewritten
    temp_files_removed: int = 0
    corrupt_files: list[str] = field(default_factory=list)
    still_pending: dict[str, int] = field(default_factory=dict)  # replay commit failed: retried by the writer
    next_version: dict[str, int] = field(default_factory=dict)

    def __str__(self) -> str:
        parts = [
            f"replayed {sum(self.replayed_batches.values())} batches ({sum(self.replayed_rows.values())} rows)",
            f"skipped {sum(self.skipped_batches.values())} already committed",
        ]
        if self.temp_files_removed:
            parts.append(f"removed {self.temp_files_removed} partial spool files")
        if self.corrupt_files:
            parts.append(f"moved {len(self.corrupt_files)} unreadable spool files aside")
        if any(self.still_pending.values()):
            parts.append(f"{sum(self.still_pending.values())} batches still pending")
        return ", ".join(parts)


@dataclass(frozen=True)
class Acknowledged:
    """A batch that is durable in the spool: it survives kill -9 from here on."""

    table: str
    version: int
    rows: int
    data: pa.Table


@dataclass
class DataloggerHooks:
    """Test seams on the writer thread: e.g. sleep or fail around a commit to place a crash there."""

    before_commit: Callable[[str, int], None] | None = None  # (table, last batch version of the commit)
    after_commit: Callable[[str, int], None] | None = None  # committed, spool files not yet deleted
