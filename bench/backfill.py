"""A range backfill as one run against the scan floor of the same shifts, in one process.

`--days` days (default 7 = 21 shifts) of L1 and L2 are seeded in-process as `twin up` seeds history
(`edge_collector/variability/history.py`, the variability of `edge_collector/local.toml`, seed 1) into a
temporary lake. Then every shift-partitioned asset of the code location (bronze, silver, gold) and every
check on them is materialized over the whole range as one run (`BackfillPolicy.single_run`: what a
backfill of the range launches), `--reps` times (each run replaces the shifts the previous one wrote).

Printed: the run's own time (Dagster's RUN_START to RUN_SUCCESS in the event log), the wall time of
`dagster.materialize` around it (job build, instance), and the scan floor: reading the range's edge raw
samples of both lines (`edge_source.LocalEdges.scan` + `collect`, every column, what bronze must read at least) with
no computation. Ratios: run / floor. Target (issue 14): the run in at most 5 s on 2 cores.

    python bench/backfill.py [--days 7] [--reps 2] [--keep DIR] [--profile FILE]
"""

# (No `from __future__ import annotations`: Dagster inspects annotations of the assets it loads.)
import argparse
import cProfile
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

import dagster as dg

from edge_collector.schemas import edge_table_path
from edge_collector.variability.history import seed_history, variability_from_toml
from twin_pipeline.defs.partitions import CALENDAR, SHIFTS
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.resources.lake import LakeResource

LINES = ["L1", "L2"]
COLLECTOR_CONFIG = ROOT / "edge_collector" / "local.toml"
LAST_STEPS: dict[str, float] = {}
LAST_EVENTS: dict[str, int] = {}
QUIET = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}


def shift_range(days: int) -> tuple[datetime, datetime]:
    """`days` whole days of shifts ending at the first shift start at least a day before now (the shift
    partitions end at the last completed shift)."""
    first = CALENDAR.shifts[0].start
    local_day = (datetime.now(UTC) - timedelta(days=days + 1)).astimezone(CALENDAR.tz).date()
    start = datetime.combine(local_day, first, tzinfo=CALENDAR.tz)
    end = datetime.combine(local_day + timedelta(days=days), first, tzinfo=CALENDAR.tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def shift_definitions() -> tuple[list[dg.AssetsDefinition], list[dg.AssetChecksDefinition]]:
    """The code location's shift-partitioned assets and the checks on them (the local profile, polars)."""
    os.environ.setdefault("TWIN_PROFILE", "local")
    from twin_pipeline.definitions import defs

    loaded = defs()
    assets = [a for a in loaded.assets or [] if isinstance(a, dg.AssetsDefinition) and a.partitions_def == SHIFTS]
    keys = {k for a in assets for k in a.keys}
    checks = [
        c
        for c in loaded.asset_checks or []
        if isinstance(c, dg.AssetChecksDefinition) and all(k.asset_key in keys for k in c.check_keys)
    ]
    return assets, checks


def empty_graph(
    assets: list[dg.AssetsDefinition], checks: list[dg.AssetChecksDefinition]
) -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    """The same assets and checks (keys, deps, partitions, blocking) with bodies that only report each shift's
    metadata and pass: a run of it is what Dagster itself costs (steps, events, per-partition metadata)."""
    out: list[dg.AssetsDefinition | dg.AssetChecksDefinition] = []
    for definition in assets:
        key = definition.key

        @dg.asset(
            key=key,
            deps=[d for d in definition.dependency_keys if d != key],
            partitions_def=SHIFTS,
            backfill_policy=dg.BackfillPolicy.single_run(),
        )
        def empty(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
            for shift_id in context.partition_keys:
                context.add_asset_metadata({"dagster/row_count": 1, "oee": 0.5}, partition_key=shift_id)
            return dg.MaterializeResult(metadata={"dagster/row_count": len(context.partition_keys)})

        out.append(empty)
    for check in checks:
        spec = next(iter(check.check_specs))

        @dg.asset_check(asset=spec.asset_key, name=spec.name, partitions_def=SHIFTS, blocking=spec.blocking)
        def passes(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
            return dg.AssetCheckResult(passed=True)

        out.append(passes)
    return out


def scan_floor(lake: Path, start: datetime, end: datetime) -> int:
    """Read the range's edge raw samples, every column, no computation; returns rows read."""
    return LocalEdges({"edge": lake}).scan("raw_samples", "source_ts", start, end).collect().height


def run_seconds(instance: dg.DagsterInstance, run_id: str) -> float:
    """The run's own duration: RUN_START to RUN_SUCCESS in the event log."""
    records = instance.all_logs(run_id)
    starts = [r.timestamp for r in records if r.dagster_event_type == dg.DagsterEventType.RUN_START]
    ends = [r.timestamp for r in records if r.dagster_event_type == dg.DagsterEventType.RUN_SUCCESS]
    return ends[-1] - starts[0]


def step_seconds(instance: dg.DagsterInstance, run_id: str) -> dict[str, float]:
    """Each step's time in the run (asset or check), STEP_START to STEP_SUCCESS."""
    starts: dict[str, float] = {}
    out: dict[str, float] = {}
    for r in instance.all_logs(run_id):
        if r.step_key is None:
            continue
        if r.dagster_event_type == dg.DagsterEventType.STEP_START:
            starts[r.step_key] = r.timestamp
        elif r.dagster_event_type == dg.DagsterEventType.STEP_SUCCESS and r.step_key in starts:
            out[r.step_key] = r.timestamp - starts[r.step_key]
    return out


def backfill(
    assets: list[Any], lake: Path, shifts: list[str], instance: dg.DagsterInstance
) -> tuple[float, float, float]:
    """One run over the range; returns (run seconds, materialize wall seconds, CPU seconds of the process:
    every thread, so polars' and delta-rs' too; on a busy machine the wall times grow, this much less)."""
    tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
    t, cpu = time.perf_counter(), time.process_time()
    result = dg.materialize(
        assets, resources={"lake": LakeResource(root=str(lake))}, run_config=QUIET, tags=tags, instance=instance
    )
    wall, cpu = time.perf_counter() - t, time.process_time() - cpu
    if not result.success:
        raise RuntimeError("the backfill run failed")
    LAST_STEPS.clear()  # the last run's steps, printed once at the end
    LAST_STEPS.update(step_seconds(instance, result.run_id))
    LAST_EVENTS.clear()  # what the run wrote to the event log (each one a storage write)
    for record in instance.all_logs(result.run_id):
        kind = record.dagster_event_type.value if record.dagster_event_type else "LOG"
        LAST_EVENTS[kind] = LAST_EVENTS.get(kind, 0) + 1
    return run_seconds(instance, result.run_id), wall, cpu


def run(lake: Path, days: int, reps: int, profile: Path | None) -> None:
    start, end = shift_range(days)
    shifts = [w.shift_id for w in CALENDAR.windows(start, end)]
    variability, vseed = variability_from_toml(COLLECTOR_CONFIG)
    if not (edge_table_path(lake, "raw_samples") / "_delta_log").exists():
        stats = seed_history(lake, LINES, start, end, seed=1, variability=variability, variability_seed=vseed)
        print(f"seeded {stats.rows:,} samples of {'+'.join(LINES)} in {stats.wall_s:.1f} s", flush=True)
    assets, checks = shift_definitions()
    print(
        f"backfill benchmark: {len(shifts)} shifts ({shifts[0]} .. {shifts[-1]}) of {'+'.join(LINES)}, "
        f"{len(assets)} assets + {len(checks)} checks in one run, {os.cpu_count()} cores",
        flush=True,
    )
    with dg.instance_for_test() as instance:
        runs: list[tuple[float, float, float]] = []
        floors: list[tuple[float, float]] = []
        empty_runs = [backfill(empty_graph(assets, checks), lake, shifts, instance)[0] for _ in range(reps)]
        rows = 0
        for _ in range(reps):
            t, cpu = time.perf_counter(), time.process_time()
            rows = scan_floor(lake, start, end)
            floors.append((time.perf_counter() - t, time.process_time() - cpu))
            if profile is not None:
                profiler = cProfile.Profile()
                profiler.enable()
                runs.append(backfill([*assets, *checks], lake, shifts, instance))
                profiler.disable()
                profiler.dump_stats(profile)
            else:
                runs.append(backfill([*assets, *checks], lake, shifts, instance))
    run_s = statistics.median(r[0] for r in runs)
    wall_s = statistics.median(r[1] for r in runs)
    cpu_s = statistics.median(r[2] for r in runs)
    floor_s = statistics.median(f[0] for f in floors)
    floor_cpu = statistics.median(f[1] for f in floors)
    print(f"{'scan floor: edge raw samples of the range':<48}{floor_s:>8.2f} s  ({rows:,} rows; CPU {floor_cpu:.2f} s)")
    print(
        f"{'backfill: the run (RUN_START .. RUN_SUCCESS)':<48}{run_s:>8.2f} s  (runs: {[round(r[0], 2) for r in runs]})"
    )
    print(f"{'backfill: dagster.materialize wall time':<48}{wall_s:>8.2f} s  (CPU {cpu_s:.2f} s, every thread)")
    steps = ", ".join(f"{k} {v:.2f}" for k, v in sorted(LAST_STEPS.items(), key=lambda kv: -kv[1]))
    empty_s = statistics.median(empty_runs)
    print(
        f"{'Dagster alone: the same graph, empty bodies':<48}{empty_s:>8.2f} s  "
        f"(steps, events, per-shift metadata; {empty_s / run_s:.0%} of the run)"
    )
    print(f"steps of the last run (s): {steps}")
    events = ", ".join(f"{k} {v}" for k, v in sorted(LAST_EVENTS.items(), key=lambda kv: -kv[1]))
    print(f"event log records of the last run: {sum(LAST_EVENTS.values())} ({events})")
    print(
        f"ratio run / scan floor: {run_s / floor_s:.1f}x (CPU: {cpu_s / floor_cpu:.1f}x); "
        f"target: run <= 5 s ({'met' if run_s <= 5 else 'NOT met'}); load average {os.getloadavg()[0]:.1f} "
        f"on {os.cpu_count()} cores"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=7, help="days of history to seed, 3 shifts each (default 7)")
    parser.add_argument("--reps", type=int, default=2, help="backfill runs measured (default 2; median printed)")
    parser.add_argument("--keep", type=Path, metavar="DIR", help="seed into DIR unless seeded already; keep it")
    parser.add_argument("--profile", type=Path, metavar="FILE", help="cProfile the last run into FILE")
    args = parser.parse_args(argv)
    if args.days < 1 or args.reps < 1:
        parser.error("--days and --reps must be >= 1")
    if args.keep is not None:
        run(args.keep, args.days, args.reps, args.profile)
        return 0
    with tempfile.TemporaryDirectory(prefix="backfill-bench-") as tmp:
        run(Path(tmp) / "lake", args.days, args.reps, args.profile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
