"""Edge retention: which old UTC days the edge box may delete, because landing receipts wholly cover them.

An edge box has a small disk; the cloud keeps the history once it is landed and verified. A UTC day
older than `retention_days` is pruned from `raw_samples`, `injected_events`, `quarantine` and `gaps`
only when every one of these holds (otherwise it stays, and the reason is logged):

1. every landed table (`receipts.LANDED_TABLES`) is landed, without a hole, up to the end of the day
   (`landed_until`: the end of the first contiguous run of its receipts' windows, the least over the tables);
2. no row of the day lies before the first landed window of its table (it was never landed);
3. no window of a receipt holds more rows of the day on the edge now than it landed (`day_rows`): rows
   that arrived after their shift was landed (a spool replayed late) stay until the shift is re-landed.

`gaps` of a day are kept (the other tables are still pruned) while one of its outages is open-ended or
reaches past `landed_until`: later shifts land it too. `subscriptions` is never pruned: it is a few rows
per collector session, and every later shift lands the whole manifest (the one in force, however old).

This module decides (`plan`); `lake/maintenance.prune` deletes under the maintenance lock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable

from . import receipts as rc
from .schemas import EVENT_TIME, edge_table_path

#: The tables retention prunes by UTC day (see the module docstring for `subscriptions`).
PRUNED_TABLES = ("raw_samples", "injected_events", "quarantine", "gaps")
EVENT_TABLES = ("raw_samples", "injected_events", "quarantine")


@dataclass(frozen=True)
class Coverage:
    """Per landed table, the first landed instant and the end of the first contiguous landed run."""

    first: dict[str, datetime]
    until: dict[str, datetime]

    @property
    def landed_until(self) -> datetime | None:
        """The edge is landed, for every table, up to here (None: a table has no receipt)."""
        if any(t not in self.until for t in rc.LANDED_TABLES):
            return None
        return min(self.until[t] for t in rc.LANDED_TABLES)

    def lagging(self) -> str:
        missing = [t for t in rc.LANDED_TABLES if t not in self.until]
        if missing:
            return f"never landed: {', '.join(missing)}"
        least = min(self.until.values())
        return ", ".join(t for t in rc.LANDED_TABLES if self.until[t] == least)


def coverage(receipts: pl.DataFrame) -> Coverage:
    first: dict[str, datetime] = {}
    until: dict[str, datetime] = {}
    for table in rc.LANDED_TABLES:
        windows = receipts.filter(pl.col("table") == table).select("start", "end").sort("start").rows()
        if not windows:
            continue
        first[table], end = windows[0]
        for start, stop in windows[1:]:
            if start > end:
                break  # a hole: a shift not landed
            end = max(end, stop)
        until[table] = end
    return Coverage(first, until)


@dataclass
class DayPlan:
    """The decision for one old UTC day: which tables to prune, or why it stays."""

    day: str
    tables: list[str] = field(default_factory=list)  # pruned
    kept: dict[str, str] = field(default_factory=dict)  # table -> why it stays
    rows: int = 0
    bytes: int = 0

    @property
    def pruned(self) -> bool:
        return bool(self.tables)


@dataclass
class Plan:
    cutoff: str  # days before this one (UTC) are old enough
    landed_until: datetime | None
    days: list[DayPlan] = field(default_factory=list)

    @property
    def kept_unlanded(self) -> list[DayPlan]:
        return [d for d in self.days if not d.pruned]


def _files(lake: Path, table: str) -> pl.DataFrame:
    """Day, rows and bytes of each live file of an edge table (from the Delta log: no data is read)."""
    path = edge_table_path(lake, table)
    if not DeltaTable.is_deltatable(str(path)):
        return pl.DataFrame(schema={"day": pl.String, "rows": pl.Int64, "bytes": pl.Int64})
    actions = pl.DataFrame(DeltaTable(str(path)).get_add_actions(flatten=True))
    return actions.select(
        pl.col("partition.day").alias("day"), pl.col("num_records").alias("rows"), pl.col("size_bytes").alias("bytes")
    )


def _day(lake: Path, table: str, day: str) -> pl.DataFrame:
    """The columns the checks need of one day partition (a day of samples is read once, one column)."""
    columns = [EVENT_TIME[table]] if table in EVENT_TABLES else ["source_ts_before", "source_ts_after"]
    return pl.scan_delta(str(edge_table_path(lake, table))).filter(pl.col("day") == day).select(columns).collect()


def _late(table: str, rows: pl.DataFrame, day: str, receipts: pl.DataFrame) -> str | None:
    """Why a day's rows are not all in the objects landed (rows that came after the landing), or None."""
    start, end = rc.day_bounds(day)
    mine = receipts.filter((pl.col("table") == table) & (pl.col("start") < end) & (pl.col("end") > start))
    if table == "gaps":  # an outage is landed with every shift it overlaps, whichever day holds its row
        landable = rows.filter(pl.col("source_ts_before").is_not_null())
        if landable.is_empty():
            return None
        first, last = landable["source_ts_before"].min(), landable["source_ts_after"].max()
        mine = receipts.filter((pl.col("table") == table) & (pl.col("end") > first) & (pl.col("start") < last))
    for receipt in mine.iter_rows(named=True):
        landed = next((d["rows"] for d in receipt["day_rows"] if d["day"] == day), 0)
        now = rows.filter(rc.in_window(table, receipt["start"], receipt["end"])).height
        if now > landed:
            return (
                f"{now - landed} {table} rows of shift {receipt['shift_id']} arrived after it was landed "
                f"({landed} landed, {now} now): re-land that shift"
            )
    return None


def _why_kept(lake: Path, table: str, day: str, cov: Coverage, receipts: pl.DataFrame) -> str | None:
    rows = _day(lake, table, day)
    if table in EVENT_TABLES:
        before = rows.filter(pl.col(EVENT_TIME[table]) < cov.first[table]).height
        if before:
            return f"{before} {table} rows lie before the first landed shift ({cov.first[table]:%Y-%m-%d %H:%M} UTC)"
    else:  # gaps: every landable outage of the day must lie within what is landed
        landable = rows.filter(pl.col("source_ts_before").is_not_null())
        open_ = landable.filter(
            pl.col("source_ts_after").is_null()
            | (pl.col("source_ts_after") > cov.until[table])
            | (pl.col("source_ts_before") < cov.first[table])
        ).height
        if open_:
            return f"{open_} outage(s) of the day are open-ended or reach past what is landed: later shifts land them"
    return _late(table, rows, day, receipts)


def plan(lake: Path, retention_days: int, now: datetime | None = None) -> Plan:
    """Decide, for every UTC day older than `retention_days` whole days before today, what to prune."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    cutoff = (now.date() - timedelta(days=retention_days)).isoformat()
    receipts = rc.read(lake)
    cov = coverage(receipts)
    until = cov.landed_until
    result = Plan(cutoff, until)
    files = {t: _files(lake, t) for t in PRUNED_TABLES}
    old = sorted({d for f in files.values() for d in f["day"].to_list() if d < cutoff})
    for day in old:
        decision = DayPlan(day)
        result.days.append(decision)
        _, day_end = rc.day_bounds(day)
        present = [t for t in PRUNED_TABLES if day in set(files[t]["day"].to_list())]
        if until is None or until < day_end:
            reason = (
                "nothing is landed yet (no receipt in edge/landed)"
                if until is None
                else f"not landed: the edge is landed until {until:%Y-%m-%d %H:%M} UTC (behind: {cov.lagging()})"
            )
            decision.kept = dict.fromkeys(present, reason)
            continue
        why = {t: w for t in present if (w := _why_kept(lake, t, day, cov, receipts)) is not None}
        if any(t in EVENT_TABLES for t in why):  # a shift to re-land needs all of its day's rows
            decision.kept = {t: why.get(t, "kept with the day's other tables") for t in present}
            continue
        decision.kept = why  # only gaps, for outages later shifts still land
        decision.tables = [t for t in present if t not in why]
        for table in decision.tables:
            part = files[table].filter(pl.col("day") == day)
            decision.rows += int(part["rows"].sum())
            decision.bytes += int(part["bytes"].sum())
    return result


def describe(days: Iterable[DayPlan]) -> list[str]:
    """One line per day, for logs and the CLI."""
    lines = []
    for d in days:
        if d.pruned:
            kept = f"; kept {', '.join(f'{t} ({w})' for t, w in d.kept.items())}" if d.kept else ""
            lines.append(f"{d.day}: pruned {', '.join(d.tables)} ({d.rows} rows, {d.bytes / 1e6:.1f} MB){kept}")
        else:
            reasons = sorted(set(d.kept.values()))
            lines.append(f"{d.day}: kept: {'; '.join(reasons) or 'nothing to prune'}")
    return lines
