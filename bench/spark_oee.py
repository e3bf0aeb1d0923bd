"""Gold OEE per shift: the polars path against the Spark job on local pyspark, on the same shifts, in one run.

`--days` days (default 2 = 6 shifts) of L1 and L2 are seeded as in `bench/gold_oee.py`, and bronze,
silver and polars gold are materialized once for the range. Then, per shift (medians of `--reps`):

a. polars: the gold asset's computation (reads, OEE, Delta write) called in-process;
b. Spark, warm: the job's own computation (`compute` + `write_table` of `twin_pipeline/spark_jobs/oee_job.py`)
   in a Spark session started once, so the JVM start is not counted;
c. the Spark asset end to end: `dagster.materialize` of the Pipes asset, which starts the script (and
   its JVM) through `PipesSubprocessClient`, as `TWIN_OEE_ENGINE=spark` does; with the polars asset's
   `materialize` beside it.
After each Spark run the gold rows must equal polars' to 1e-9 (every column), or the benchmark fails.

    python bench/spark_oee.py [--days 2] [--reps 3] [--keep DIR]
"""

# (No `from __future__ import annotations`: Dagster inspects the asset's annotations at run time.)
import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import dagster as dg
import polars as pl

from bench.gold_oee import ASSETS, LINES, QUIET, VARIABILITY, materialize, pick_range
from edge_collector.variability.history import seed_history
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift, pipes_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.oee_engines import LocalSparkOeeJob
from twin_pipeline.spark_jobs.extras import job_extras


def gold(lake: Path, shift: str) -> pl.DataFrame:
    return (
        pl.read_delta(str(lake / "gold" / "fact_oee_shift"))
        .filter(pl.col("shift_id") == shift)
        .select(list(FACT_OEE_SHIFT))
        .sort("line_id")
    )


def equal(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    if a.height != b.height or a.height == 0:
        return False
    for x, y in zip(a.to_dicts(), b.to_dicts()):
        for name, value in x.items():
            other = y[name]
            if isinstance(value, float) and isinstance(other, float):
                if abs(value - other) > 1e-9 * max(1.0, abs(value)):
                    return False
            elif value != other:
                return False
    return True


def med(values: list[float]) -> float:
    return statistics.median(values)


def run(lake: Path, days: int, reps: int) -> None:
    from twin_pipeline.spark_jobs.oee_job import compute, session, write_table

    start, end = pick_range(days)
    shifts = [w.shift_id for w in CALENDAR.windows(start, end)]
    print(
        f"polars vs local Spark OEE: {days} days = {len(shifts)} shifts of {'+'.join(LINES)}, {os.cpu_count()} "
        f"cores, medians of {reps} reps per shift",
        flush=True,
    )
    stats = seed_history(lake, LINES, start, end, seed=1, variability=VARIABILITY, variability_seed=42)
    print(f"seeded {stats.rows:,} samples in {stats.wall_s:.1f} s", flush=True)
    tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
    materialize(ASSETS, lake, tags=tags)
    reference = {s: gold(lake, s) for s in shifts}
    print(
        f"bronze+silver+gold (polars) materialized; {sum(f.height for f in reference.values())} line-shifts", flush=True
    )

    started = time.perf_counter()
    spark = session("twin-oee-bench")
    jvm_s = time.perf_counter() - started
    log = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None)
    resources = {"lake": LakeResource(root=str(lake))}
    polars_fn, spark_warm, polars_run, spark_run = [], [], [], []
    for rep in range(reps + 1):  # rep 0 warms both paths up (imports, JIT, caches): not measured
        for shift in shifts:
            context = SimpleNamespace(partition_keys=[shift], partition_key=shift, log=log)
            t = time.perf_counter()
            gold_fact_oee_shift.op.compute_fn.decorated_fn(context, LakeResource(root=str(lake)))
            polars_s = time.perf_counter() - t
            extras = job_extras(str(lake), "delta-rs", [shift])
            t = time.perf_counter()
            frame, problems = compute(spark, extras)
            write_table(frame, str(lake), "gold/fact_oee_shift", [shift], "delta-rs")
            warm_s = time.perf_counter() - t
            if problems or not equal(gold(lake, shift), reference[shift]):
                raise SystemExit(f"{shift}: Spark's gold differs from polars' (or fails its invariants: {problems})")
            if rep:
                polars_fn.append(polars_s)
                spark_warm.append(warm_s)
    spark.stop()
    for shift in shifts[-2:]:  # end to end, as the asset runs: one JVM per run
        t = time.perf_counter()
        result = dg.materialize([gold_fact_oee_shift], partition_key=shift, resources=resources, run_config=QUIET)
        polars_run.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = dg.materialize(
            [pipes_fact_oee_shift("spark")],
            partition_key=shift,
            run_config=QUIET,
            resources={"oee_job": LocalSparkOeeJob(lake=str(lake))},
        )
        spark_run.append(time.perf_counter() - t)
        if not result.success or not equal(gold(lake, shift), reference[shift]):
            raise SystemExit(f"{shift}: the Spark asset's gold differs from polars'")

    print(
        f"parity: Spark's gold equals polars' on every column to 1e-9 for all {len(shifts)} shifts x {reps + 1} runs "
        f"and {len(spark_run)} Pipes runs",
        flush=True,
    )
    print(f"local Spark session start (JVM): {jvm_s:.1f} s")
    print("| path | s per shift | ratio |\n|---|---|---|")
    print(f"| polars gold computation | {med(polars_fn):.3f} | 1 |")
    print(
        f"| Spark job computation (warm session) | {med(spark_warm):.3f} | "
        f"{med(spark_warm) / med(polars_fn):.1f}x polars |"
    )
    print(f"| polars asset, `materialize` | {med(polars_run):.3f} | 1 |")
    print(
        f"| Spark asset through Pipes (subprocess + JVM) | {med(spark_run):.3f} | "
        f"{med(spark_run) / med(polars_run):.1f}x the polars asset |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--days", type=int, default=2, help="days of history to seed (3 shifts a day)")
    parser.add_argument("--reps", type=int, default=3, help="measured repetitions per shift")
    parser.add_argument("--keep", type=Path, help="keep the lake in this directory (default: a temp dir, removed)")
    args = parser.parse_args(argv)
    lake = args.keep or Path(tempfile.mkdtemp(prefix="bench-spark-")) / "lake"
    try:
        run(lake, args.days, args.reps)
    finally:
        if not args.keep:
            shutil.rmtree(lake.parent, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
