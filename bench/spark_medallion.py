"""The Spark medallion against polars: bronze, silver and gold of `--lines` lines x `--days` days, in one run each.

The lines are seeded in-process (`edge_collector/variability/history.py`, the variability of
`edge_collector/local.toml`), then, on the same edge lake and the same shifts:

a. polars (the baseline): the local profile's bronze, three silver and gold assets materialized over the range
   as one run (`dagster.materialize`, as a single-run backfill runs them);
b. Spark, warm: the job's own work (`medallion` + `write_all` of `twin_pipeline/spark_jobs/oee_job.py`: edge
   rows -> every table, written with delta-rs) in a local session started before the clock;
c. Spark end to end: the `spark` engine's multi-asset through Pipes (`PipesSubprocessClient`: a new Python
   process and JVM), as `TWIN_OEE_ENGINE=spark` runs it.
Each Spark lake's gold must equal polars' to 1e-9 on every column, else the benchmark fails. Printed as
ratios against (a), measured in the same run.

    python bench/spark_medallion.py [--lines 8] [--days 7] [--keep DIR] [--no-pipes]
"""

# (No `from __future__ import annotations`: Dagster inspects the asset's annotations at run time.)
import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import dagster as dg
import polars as pl

from edge_collector.variability.history import seed_history, variability_from_toml
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift, pipes_medallion
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_part_measurements, silver_state_intervals
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.oee_engines import LocalSparkOeeJob
from twin_pipeline.spark_jobs.extras import job_extras, source_extras

START = datetime(2026, 11, 2, 5, 0, tzinfo=UTC)  # a Monday's early shift (06:00 Berlin)
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def gold(lake: Path) -> pl.DataFrame:
    return pl.read_delta(str(lake / "gold" / "fact_oee_shift")).select(list(FACT_OEE_SHIFT)).sort("shift_id", "line_id")


def equal(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    if a.height != b.height or a.height == 0:
        return False
    for x, y in zip(a.to_dicts(), b.to_dicts(), strict=True):
        for name, value in x.items():
            other = y[name]
            if isinstance(value, float) and isinstance(other, float):
                if abs(value - other) > 1e-9 * max(1.0, abs(value)):
                    return False
            elif value != other:
                return False
    return True


def run(folder: Path, n_lines: int, days: int, pipes: bool = True) -> int:
    from twin_pipeline.spark_jobs.oee_job import medallion, session, write_all

    lines = [f"L{i}" for i in range(1, n_lines + 1)]
    end = START + timedelta(days=days)
    ids = [w.shift_id for w in CALENDAR.windows(START, end)]
    edge = folder / "edge"
    t = time.perf_counter()
    variability, vseed = variability_from_toml(ROOT / "edge_collector" / "local.toml")
    stats = seed_history(edge, lines, START, end, seed=1, variability=variability, variability_seed=vseed)
    print(
        f"Spark medallion vs polars: {n_lines} lines x {days} days = {len(ids)} shifts, {stats.rows:,} edge "
        f"samples (seeded in {time.perf_counter() - t:.0f} s), {os.cpu_count()} cores",
        flush=True,
    )
    tags = {"dagster/asset_partition_range_start": ids[0], "dagster/asset_partition_range_end": ids[-1]}
    polars_lake = folder / "polars"
    shutil.copytree(edge, polars_lake)
    assets = [bronze_samples_asset, silver_state_intervals, silver_part_counts, silver_part_measurements]
    t = time.perf_counter()
    result = dg.materialize(
        [*assets, gold_fact_oee_shift],
        resources={"lake": LakeResource(root=str(polars_lake))},
        run_config=QUIET,
        tags=tags,
    )
    polars_s = time.perf_counter() - t
    assert result.success, "the polars run failed"

    spark = session("bench-medallion")
    warm_lake = folder / "spark-warm"
    extras = json.loads(
        json.dumps(job_extras(str(warm_lake), "delta-rs", ids, source_extras(edges={"edge-local": str(edge)})))
    )
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        write_all(medallion(spark, extras, scratch), extras)
    warm_s = time.perf_counter() - t
    spark.stop()

    lakes = {"warm": warm_lake}
    print(f"  a. polars, one run (baseline)      {polars_s:8.1f} s   1.00x   {polars_s / len(ids):.2f} s a shift")
    print(f"  b. Spark, warm session             {warm_s:8.1f} s   {warm_s / polars_s:.2f}x", flush=True)
    if pipes:
        lakes["pipes"] = folder / "spark-pipes"
        t = time.perf_counter()
        result = dg.materialize(
            [pipes_medallion("spark")],
            resources={"oee_job": LocalSparkOeeJob(lake=str(lakes["pipes"]), edges={"edge-local": str(edge)})},
            run_config=QUIET,
            tags=tags,
        )
        pipes_s = time.perf_counter() - t
        assert result.success, "the Spark run through Pipes failed"
        print(f"  c. Spark through Pipes (new JVM)   {pipes_s:8.1f} s   {pipes_s / polars_s:.2f}x")
    same = {name: equal(gold(lake), gold(polars_lake)) for name, lake in lakes.items()}
    print(f"  gold equal to polars' to 1e-9: {same}")
    return 0 if all(same.values()) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=8, help="lines seeded (L1..Ln), default 8")
    parser.add_argument("--days", type=int, default=7, help="days seeded from a Monday's early shift, default 7")
    parser.add_argument("--keep", type=Path, help="keep the lakes in this folder (default: a temporary one)")
    parser.add_argument("--no-pipes", action="store_true", help="skip (c), the run through Pipes (a second JVM)")
    args = parser.parse_args()
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args.keep, args.lines, args.days, not args.no_pipes)
    with tempfile.TemporaryDirectory() as tmp:
        return run(Path(tmp), args.lines, args.days, not args.no_pipes)


if __name__ == "__main__":
    sys.exit(main())
