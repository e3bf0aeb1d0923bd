"""Gold OEE per shift against its floors, and a backfill as one run against one run per shift, in one run.

`--days` days (default 7 = 21 shifts) of L1 and L2 at their normal speeds (plc/lines.toml) are seeded
in-process (edge_collector/variability/history.py, the same line models as plc-sim; breakdowns as in
edge_collector/local.toml and a random quality error from the variability engine, no feed-rate
changes) into a temporary lake. Bronze, silver and gold are materialized once for the whole range as
one run. Then, for a sample of shifts, each measured `--reps` times (medians printed):

a. gold: `dagster.materialize([gold_fact_oee_shift], partition_key=shift)`; Dagster's own cost of a run,
   measured the same way with a trivial asset on the same partitions and resources; and the gold asset's
   own Python function called directly with a stand-in context (partition keys and a logger), which is
   the computation (reads, OEE, Delta write) without any Dagster machinery; of it, the compute alone
   (`fact_oee_rows`: reads and OEE, no write) and the Delta write alone (predicate overwrite of the shift);
b. the scan floor: polars `scan_delta` + `collect` of just the columns gold needs, from the same Delta
   partitions gold reads (silver state_intervals and part_counts of the shift, the shift's bronze
   design-speed samples, carried-in ones included), with no computation; and gold's own reads of the
   same (`read_oee_inputs`: only the shift's Parquet files, the three tables concurrently), with no
   computation: the floor gold's compute can reach;
c. DuckDB computing the same figures (APT, produced, good, availability, performance, quality, OEE per
   line) in one SQL query over the same Delta files (through the delta extension if it loads, else
   `read_parquet` of the table snapshot's active files, the three tables' logs read concurrently as gold
   reads them). Its figures must equal gold's to 1e-9 for every line and shift of the range, or the
   benchmark fails. DuckDB does not write: it is compared with gold's compute (reads and OEE, no
   write), and the write is shown separately.
d. backfill of every shift, bronze + silver + gold: one single run over the partition range
   (BackfillPolicy.single_run) against one `materialize()` run per shift. Measured once each (both
   replace existing shifts), and both must leave the same gold table.

Ratios printed: gold / floor, gold compute / DuckDB (both without a write), runs per shift / single run;
also the seeding speed.

    python bench/gold_oee.py [--days 7] [--reps 3] [--shifts 4] [--keep DIR]
"""

# (No `from __future__ import annotations`: Dagster inspects the asset's annotations at run time.)
import argparse
import logging
import math
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

warnings.filterwarnings("ignore", message=".*is currently in beta.*")

import dagster as dg
import duckdb
import polars as pl
from deltalake import DeltaTable

from edge_collector.variability.engine import VariabilityConfig
from edge_collector.variability.history import SeedStats, seed_history
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.oee import fact_oee_rows, gold_fact_oee_shift, read_oee_inputs
from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
from twin_pipeline.lib.lake_io import replace_shifts
from twin_pipeline.lib.transforms.oee import COUNT_COLUMNS, INTERVAL_COLUMNS, SPEED_COLUMNS
from twin_pipeline.resources.lake import LakeResource

UTC = UTC
LINES = ["L1", "L2"]
FIXED_START = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # Monday 06:00 Berlin, a shift start
ASSETS = [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift]
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}  # same for every run measured
FIGURES = ["actual_production_time_s", "produced", "good", "availability", "performance", "quality", "oee"]
#: Breakdowns as in edge_collector/local.toml, a quality error redrawn every 15 min; no feed-rate changes.
VARIABILITY = VariabilityConfig.model_validate(
    {
        "default": {
            "faults": {
                "time_to_failure": {"kind": "weibull", "shape": 1.5, "scale": 14400.0},
                "repair_time": {"kind": "lognormal", "median": 600.0, "sigma": 0.5},
                "fault_code": {"kind": "categorical", "weights": {"101": 5.0, "205": 3.0, "317": 2.0}},
            },
            "quality_error": {"interval_s": 900.0, "distribution": {"kind": "normal", "mean": 0.0, "sd": 0.01}},
        }
    }
)


@dg.asset(partitions_def=SHIFTS, key=["bench", "noop"])
def noop(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
    """Does nothing, on gold's partitions and resources: what a Dagster run costs by itself."""
    return dg.MaterializeResult(metadata={"shift": context.partition_key})


def pick_range(days: int) -> tuple[datetime, datetime]:
    """`days` days from 06:00 Berlin on FIXED_START's date, or earlier if those shifts are not over yet
    (Dagster's shift partitions end at the last completed shift)."""
    local_day = FIXED_START.astimezone(CALENDAR.tz).date()
    latest = (datetime.now(UTC) - timedelta(days=days, hours=9)).astimezone(CALENDAR.tz).date()
    local_day = min(local_day, latest - timedelta(days=1))
    first = CALENDAR.shifts[0].start
    start = datetime.combine(local_day, first, tzinfo=CALENDAR.tz)
    end = datetime.combine(local_day + timedelta(days=days), first, tzinfo=CALENDAR.tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t = time.perf_counter()
    result = fn()
    return time.perf_counter() - t, result


def materialize(assets: list[Any], lake: Path, **kwargs: Any) -> None:
    result = dg.materialize(assets, resources={"lake": LakeResource(root=str(lake))}, run_config=QUIET, **kwargs)
    if not result.success:
        raise RuntimeError(f"materialize of {[a.key for a in assets]} {kwargs} failed")


# ---------------------------------------------------------------------------------------- floor and DuckDB


def scan_floor(lake: Path, shift: str) -> int:
    """Read what gold reads for a shift with `pl.scan_delta`, only the columns it uses; no computation.
    Returns rows read."""
    intervals = (
        pl.scan_delta(str(lake / "silver" / "state_intervals"))
        .filter(pl.col("shift_id") == shift)
        .select(INTERVAL_COLUMNS)
        .collect()
    )
    counts = (
        pl.scan_delta(str(lake / "silver" / "part_counts"))
        .filter(pl.col("shift_id") == shift)
        .select(COUNT_COLUMNS)
        .collect()
    )
    bronze = (
        pl.scan_delta(str(lake / "bronze" / "samples"))
        .filter((pl.col("shift_id") == shift) & (pl.col("tag") == "Admin.MachDesignSpeed"))
        .select(SPEED_COLUMNS)
        .collect()
    )
    return intervals.height + counts.height + bronze.height


def reads_floor(lake: Path, shift: str) -> int:
    """Gold's own reads of a shift, no computation. Returns rows read."""
    return sum(frame.height for frame in read_oee_inputs(lake, shift))


class DuckOee:
    """The headline OEE figures of one shift in one SQL query over the pipeline's Delta tables."""

    SQL = """
    WITH iv AS (
        SELECT line_id,
               SUM(CASE WHEN time_element = 'production' AND NOT planned_break THEN duration_s ELSE 0 END) AS apt
        FROM {intervals} WHERE shift_id = $shift GROUP BY line_id),
    pc AS (
        SELECT line_id, produced - produced_in_breaks AS produced, defective - defective_in_breaks AS reject
        FROM {counts} WHERE shift_id = $shift),
    speed AS (
        SELECT line_id, arg_max(value, source_ts) AS design_ppm
        FROM {bronze}
        WHERE shift_id = $shift AND tag = 'Admin.MachDesignSpeed' AND is_good AND value > 0
        GROUP BY line_id),
    base AS (
        SELECT l.line_id, COALESCE(iv.apt, 0.0) AS apt, COALESCE(pc.produced, 0) AS produced,
               COALESCE(pc.produced, 0) - COALESCE(pc.reject, 0) AS good, 60.0 / speed.design_ppm AS ict
        FROM (SELECT line_id FROM iv UNION SELECT line_id FROM pc) l
        LEFT JOIN iv USING (line_id) LEFT JOIN pc USING (line_id) LEFT JOIN speed USING (line_id)),
    ratios AS (
        SELECT *, CASE WHEN $pbt > 0 THEN apt / $pbt END AS availability,
               CASE WHEN ict IS NOT NULL AND apt > 0 THEN ict * produced / apt END AS performance,
               CASE WHEN produced > 0 THEN good::DOUBLE / produced END AS quality
        FROM base)
    SELECT line_id, apt AS actual_production_time_s, produced, good, availability, performance, quality,
           availability * performance * quality AS oee
    FROM ratios ORDER BY line_id
    """

    def __init__(self, lake: Path) -> None:
        self.lake = lake
        self.con = duckdb.connect()
        try:
            installed = self.con.execute(
                "SELECT installed FROM duckdb_extensions() WHERE extension_name = 'delta'"
            ).fetchone()
            if not (installed and installed[0]):
                self.con.execute("INSTALL delta")  # needs the network: fails offline
            self.con.execute("LOAD delta")
            self.how = "delta extension (delta_scan)"
        except duckdb.Error:
            self.how = "read_parquet of the Delta snapshot's active files (delta extension not installable offline)"
        self.uses_extension = self.how.startswith("delta extension")

    def _source(self, table: Path, shifts: list[str]) -> str:
        if self.uses_extension:
            return f"delta_scan('{table}')"
        files = DeltaTable(str(table)).file_uris(file_pruning_predicate=[("shift_id", "in", shifts)])
        listed = ", ".join(f"'{f}'" for f in files)
        return f"read_parquet([{listed}], hive_partitioning = true)"

    def figures(self, shift: str) -> list[dict[str, Any]]:
        # the three tables' logs are read concurrently, as gold reads them (read_oee_inputs)
        tables = [
            self.lake / "silver" / "state_intervals",
            self.lake / "silver" / "part_counts",
            self.lake / "bronze" / "samples",
        ]
        with ThreadPoolExecutor(max_workers=3) as pool:
            intervals, counts, bronze = pool.map(lambda table: self._source(table, [shift]), tables)
        sql = self.SQL.format(intervals=intervals, counts=counts, bronze=bronze)
        cur = self.con.execute(sql, {"shift": shift, "pbt": CALENDAR.window(shift).planned_busy_time_s})
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row)) for row in cur.fetchall()]


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def check_against_gold(duck: DuckOee, lake: Path, shifts: list[str]) -> int:
    """DuckDB's figures equal the gold table's for every line and shift; raises on the first mismatch."""
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    compared = 0
    for shift in shifts:
        ours = gold.filter(pl.col("shift_id") == shift).sort("line_id").select("line_id", *FIGURES).to_dicts()
        theirs = duck.figures(shift)
        if [r["line_id"] for r in ours] != [r["line_id"] for r in theirs]:
            raise AssertionError(
                f"{shift}: gold has lines {[r['line_id'] for r in ours]}, DuckDB {[r['line_id'] for r in theirs]}"
            )
        for g, d in zip(ours, theirs):
            bad = {f: (g[f], d[f]) for f in FIGURES if not same(g[f], d[f])}
            if bad:
                raise AssertionError(f"DuckDB and gold disagree for {shift} {g['line_id']}: {bad} (gold, DuckDB)")
            compared += 1
    return compared


# ---------------------------------------------------------------------------------------- the benchmark


def sample(shifts: list[str], n: int) -> list[str]:
    """`n` shifts spread over the range (the first one has no previous shift in the lake: skipped)."""
    pool = shifts[1:] or shifts
    if n >= len(pool):
        return pool
    return [pool[round(i * (len(pool) - 1) / max(n - 1, 1))] for i in range(n)]


def med(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def run(lake: Path, days: int, reps: int, n_shifts: int) -> None:
    start, end = pick_range(days)
    shifts = [w.shift_id for w in CALENDAR.windows(start, end)]
    print(
        f"gold OEE benchmark: {days} days = {len(shifts)} shifts ({shifts[0]} .. {shifts[-1]}) of "
        f"{'+'.join(LINES)}, {os.cpu_count()} cores; per-shift figures are medians of {reps} reps x "
        f"{min(n_shifts, max(len(shifts) - 1, 1))} shifts",
        flush=True,
    )

    stats: SeedStats = seed_history(lake, LINES, start, end, seed=1, variability=VARIABILITY, variability_seed=42)
    print(
        f"seeding: {stats.simulated_s:,.0f} sim s x {len(LINES)} lines in {stats.wall_s:.1f} s = "
        f"{stats.sim_per_wall_per_line:,.0f}x real time per line ({stats.rows:,} samples, "
        f"{stats.rows / stats.wall_s:,.0f} rows/s, {stats.events:,} injected events, {stats.commits} commits; "
        f"the final compaction's {stats.compaction_s:.1f} s included)",
        flush=True,
    )

    materialize([noop], lake, partition_key=shifts[-1])  # warm-up: first-run imports and caches, not measured
    range_tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
    first_s, _ = timed(lambda: materialize(ASSETS, lake, tags=range_tags))
    print(f"bronze+silver+gold materialized once for the range (one run, tables created): {first_s:.1f} s", flush=True)
    gold = pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
    print(
        f"gold: {gold.height} line-shifts, {gold['oee'].null_count()} without OEE, "
        f"{gold['ideal_cycle_time_s'].null_count()} without an ideal cycle time (no Admin.MachDesignSpeed sample in "
        f"the shift, carried-in included), {int(gold['provisional'].sum())} provisional",
        flush=True,
    )

    duck = DuckOee(lake)
    compared = check_against_gold(duck, lake, shifts)
    resource = LakeResource(root=str(lake))
    body = gold_fact_oee_shift.op.compute_fn.decorated_fn  # the asset's own function: no run, no invocation checks
    picked = sample(shifts, n_shifts)
    t: dict[str, list[float]] = {k: [] for k in ("gold", "noop", "body", "compute", "write", "floor", "reads", "duck")}
    gold_path = lake / "gold" / "fact_oee_shift"
    rows_read: list[int] = []
    for _ in range(reps):
        for shift in picked:
            t["gold"].append(timed(lambda: materialize([gold_fact_oee_shift], lake, partition_key=shift))[0])
            t["noop"].append(timed(lambda: materialize([noop], lake, partition_key=shift))[0])
            context = SimpleNamespace(partition_key=shift, partition_keys=[shift], log=logging.getLogger("bench"))
            t["body"].append(timed(lambda: body(context, resource))[0])
            seconds, rows = timed(lambda: fact_oee_rows(lake, [shift]))
            t["compute"].append(seconds)
            t["write"].append(timed(lambda: replace_shifts(gold_path, rows, [shift]))[0])
            seconds, n = timed(lambda: scan_floor(lake, shift))
            t["floor"].append(seconds)
            rows_read.append(n)
            seconds, n_own = timed(lambda: reads_floor(lake, shift))
            t["reads"].append(seconds)
            if n_own != n:
                raise AssertionError(f"{shift}: gold's reads returned {n_own} rows, scan_delta {n}")
            t["duck"].append(timed(lambda: duck.figures(shift))[0])
    compared += check_against_gold(duck, lake, picked)  # gold rewritten by the reps: still equal
    m = {k: med(v) for k, v in t.items()}
    overhead_removed = m["gold"] - m["noop"]
    print(f"{'per shift (median)':<44}{'seconds':>10}")
    print(f"{'a. gold: dagster.materialize':<44}{m['gold']:>10.3f}")
    print(f"{'   trivial asset: dagster.materialize':<44}{m['noop']:>10.3f}  (Dagster's cost of a run)")
    print(f"{'   gold run minus that overhead':<44}{overhead_removed:>10.3f}")
    print(f"{'   gold body invoked directly (no run)':<44}{m['body']:>10.3f}  (reads, OEE, metadata, Delta write)")
    print(f"{'   its compute: reads + OEE, no write':<44}{m['compute']:>10.3f}  (fact_oee_rows)")
    print(f"{'   its Delta write of the rows':<44}{m['write']:>10.3f}  (predicate overwrite of the shift)")
    print(
        f"{'b. scan floor: polars scan_delta, needed cols':<44}{m['floor']:>10.3f}  ({med(rows_read):,.0f} rows read)"
    )
    print(f"{'   gold own reads, no computation':<44}{m['reads']:>10.3f}  (read_oee_inputs: the shift's files only)")
    print(f"{'c. DuckDB SQL, same figures (no write)':<44}{m['duck']:>10.3f}  ({duck.how})")
    print(f"   DuckDB figures equal gold's to 1e-9: {compared} line-shifts compared, 0 mismatches")
    floor = min(m["floor"], m["reads"])
    print(
        f"ratios vs floor (the lower of b's two, {floor:.3f} s): gold body {m['body'] / floor:.1f}x, gold compute "
        f"{m['compute'] / floor:.1f}x, gold run {m['gold'] / floor:.1f}x (target: gold <= 2x)"
    )
    print(
        f"ratios vs DuckDB, compute vs compute (DuckDB does not write): gold compute / DuckDB "
        f"{m['compute'] / m['duck']:.2f}x (target: < 1); "
        f"with gold's write: gold body / DuckDB {m['body'] / m['duck']:.2f}x; "
        f"Dagster overhead / gold run {m['noop'] / m['gold']:.0%}",
        flush=True,
    )

    single_s, _ = timed(lambda: materialize(ASSETS, lake, tags=range_tags))
    gold_single = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("shift_id", "line_id")
    per_shift_s, _ = timed(lambda: [materialize(ASSETS, lake, partition_key=s) for s in shifts])
    gold_each = pl.read_delta(str(lake / "gold" / "fact_oee_shift")).sort("shift_id", "line_id")
    if not gold_each.equals(gold_single):
        raise AssertionError("the per-shift runs left another gold table than the single-run backfill")
    print(
        f"d. backfill of {len(shifts)} shifts, bronze+silver+gold (replacing them): one run {single_s:.1f} s, "
        f"{len(shifts)} runs {per_shift_s:.1f} s; {len(shifts)} runs / 1 run = {per_shift_s / single_s:.2f}x "
        f"(same gold table)"
    )
    print(
        "floor = the Delta reads gold needs with no computation; body = the gold asset's function without a Dagster "
        "run; compute = its reads and OEE without the write (what DuckDB's query does); overhead = a trivial asset "
        "materialized the same way"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7, help="days of history to seed, 3 shifts each (default 7)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of the per-shift measurements (default 3)")
    parser.add_argument("--shifts", type=int, default=4, help="shifts sampled for a-c (default 4)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="write the lake to DIR (emptied first) and keep it")
    args = parser.parse_args(argv)
    if args.days < 1 or args.reps < 1 or args.shifts < 1:
        parser.error("--days, --reps and --shifts must be >= 1")
    logging.basicConfig(level=logging.ERROR)
    if args.keep is not None:
        shutil.rmtree(args.keep, ignore_errors=True)
        run(args.keep, args.days, args.reps, args.shifts)
        return 0
    with tempfile.TemporaryDirectory(prefix="gold-oee-bench-") as tmp:
        run(Path(tmp) / "lake", args.days, args.reps, args.shifts)
    return 0


if __name__ == "__main__":
    sys.exit(main())
