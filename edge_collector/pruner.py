"""The collector's periodic retention pass and its figures (`[datalogger] retention_days`, `prune_every_s`).

It runs `lake.maintenance.prune` in a worker thread (never on the event loop), a minute after the
collector's start and then every `prune_every_s`; a failed pass is logged and tried again at the next
one: retention never stops collection. Its figures are the collector's Prometheus metrics (`metrics.py`).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .lake.maintenance import PruneReport, prune
from .receipts import read
from .retention import coverage

log = logging.getLogger("edge_collector.retention")
#: Seconds from the collector's start to its first pass (the spool replay and the first commits come first).
FIRST_PASS_S = 60.0


@dataclass
class PruneStats:
    days_pruned: int = 0
    rows_pruned: int = 0
    bytes_pruned: int = 0
    days_kept_unlanded: int = 0
    landed_until: datetime | None = None
    last_run: datetime | None = None
    failures: int = 0


class Pruner:
    """Prunes landed days older than `retention_days` of an edge lake, now and then (see the module docstring)."""

    def __init__(self, lake: Path, retention_days: int, every_s: float) -> None:
        if retention_days < 1:
            raise ValueError("retention_days must be >= 1 to prune (0 keeps everything: no Pruner)")
        self.lake = lake
        self.retention_days = retention_days
        self.every_s = every_s
        self.stats = PruneStats()

    def run_once(self, now: datetime | None = None) -> PruneReport:
        """One pass (blocking): prune, then count what it did."""
        report = prune(self.lake, self.retention_days, now=now)
        s = self.stats
        s.days_pruned += report.days_pruned
        s.rows_pruned += report.rows_pruned
        s.bytes_pruned += report.bytes_pruned
        s.days_kept_unlanded = report.days_kept_unlanded
        s.landed_until = report.plan.landed_until
        s.last_run = datetime.now(UTC)
        return report

    async def run(self) -> None:
        """Every `every_s` until cancelled; the landed-until figure is read at once, so it shows from the start."""
        try:
            self.stats.landed_until = (await asyncio.to_thread(lambda: coverage(read(self.lake)))).landed_until
        except Exception:
            log.warning("cannot read the landing receipts of %s", self.lake, exc_info=True)
        wait = min(FIRST_PASS_S, self.every_s)  # the first pass soon after the start, then every every_s
        while True:
            await asyncio.sleep(wait)
            wait = self.every_s
            try:
                report = await asyncio.to_thread(self.run_once)
            except Exception:  # retention never stops collection; the next pass retries
                self.stats.failures += 1
                log.exception("retention pass over %s failed; retried in %.0f s", self.lake, self.every_s)
                continue
            if report.days_pruned:
                log.info(
                    "retention pruned %d day(s), %d rows, %.1f MB",
                    report.days_pruned,
                    report.rows_pruned,
                    report.bytes_pruned / 1e6,
                )

    def snapshot(self) -> dict[str, Any]:
        """The metrics of `metrics.METRICS` this pass owns."""
        s = self.stats
        return {
            "retention_days_pruned": s.days_pruned,
            "retention_rows_pruned": s.rows_pruned,
            "retention_bytes_pruned": s.bytes_pruned,
            "retention_days_kept_unlanded": s.days_kept_unlanded,
            "landed_until_seconds": s.landed_until.timestamp() if s.landed_until else 0.0,
            "retention_last_run_seconds": s.last_run.timestamp() if s.last_run else 0.0,
        }
