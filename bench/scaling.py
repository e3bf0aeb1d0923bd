"""How the costs grow with lines and with days, measured in one run; the table goes into bench/README.md.

For each case (lines x days; default 1, 2, 4, 8 lines over 1 day, and 2 lines over 1, 7, 28 days) a
fresh temporary lake is seeded in-process (`edge_collector/variability/history.py`, breakdowns and quality error
as in `bench/gold_oee.py`), then every complete shift is materialized (bronze + silver + gold
`fact_oee_shift`) as one single run, as a backfill does, and gold alone is timed per shift (the
asset's function, median over up to 3 shifts). A warm-up case runs first, unmeasured. Printed per case, and as
ratios against the first case (1 line, 1 day): the wall time of each step and that time per line-day of data, so linear
growth shows as a per-line-day ratio near 1.

    python bench/scaling.py [--lines 1,2,4,8] [--days 1,7,28] [--no-readme]
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
from datetime import date
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
warnings.filterwarnings("ignore")

from bench.gold_oee import ASSETS, VARIABILITY, materialize, pick_range
from edge_collector.variability.history import seed_history
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.resources.lake import LakeResource

README = Path(__file__).with_name("README.md")
BEGIN, END = "<!-- scaling:begin (written by bench/scaling.py) -->", "<!-- scaling:end -->"


def case(n_lines: int, days: int) -> dict[str, float]:
    lines = [f"L{i}" for i in range(1, n_lines + 1)]
    start, end = pick_range(days)
    shifts = [w.shift_id for w in CALENDAR.windows(start, end) if w.start >= start and w.end <= end]
    workdir = Path(tempfile.mkdtemp(prefix="bench-scaling-"))
    lake = workdir / "lake"
    try:
        stats = seed_history(lake, lines, start, end, seed=1, variability=VARIABILITY, variability_seed=42)
        tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
        t = time.perf_counter()
        materialize(ASSETS, lake, tags=tags)
        backfill_s = time.perf_counter() - t
        log = SimpleNamespace(info=lambda *a, **k: None, warning=lambda *a, **k: None)
        gold = []
        for shift in shifts[-3:]:
            context = SimpleNamespace(partition_keys=[shift], partition_key=shift, log=log)
            t = time.perf_counter()
            gold_fact_oee_shift.op.compute_fn.decorated_fn(context, LakeResource(root=str(lake)))
            gold.append(time.perf_counter() - t)
        return {
            "lines": n_lines,
            "days": days,
            "samples": stats.rows,
            "seed_s": stats.wall_s,
            "x_real_time": stats.sim_per_wall_per_line,
            "shifts": len(shifts),
            "backfill_s": backfill_s,
            "per_shift_s": backfill_s / len(shifts),
            "gold_s": statistics.median(gold),
            "line_days": n_lines * days,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def table(results: list[dict[str, float]]) -> str:
    base = results[0]
    rows = [
        "| lines | days | samples | seeding s | x real time per line | backfill s (shifts) | s per shift | "
        "gold s per shift | seeding per line-day vs first | backfill per line-day vs first | gold per line vs first |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        seed_ratio = (r["seed_s"] / r["line_days"]) / (base["seed_s"] / base["line_days"])
        backfill_ratio = (r["backfill_s"] / r["line_days"]) / (base["backfill_s"] / base["line_days"])
        gold_ratio = (r["gold_s"] / r["lines"]) / (base["gold_s"] / base["lines"])
        rows.append(
            f"| {r['lines']} | {r['days']} | {r['samples']:,} | {r['seed_s']:.1f} | {r['x_real_time']:,.0f} | "
            f"{r['backfill_s']:.1f} ({r['shifts']}) | {r['per_shift_s']:.2f} | {r['gold_s']:.3f} | "
            f"{seed_ratio:.2f}x | {backfill_ratio:.2f}x | {gold_ratio:.2f}x |"
        )
    return "\n".join(rows)


def write_readme(text: str) -> None:
    block = f"{BEGIN}\n{text}\n{END}"
    current = README.read_text()
    if BEGIN in current:
        head, rest = current.split(BEGIN, 1)
        current = head + block + rest.split(END, 1)[1]
    else:
        current = current.rstrip() + "\n\n## How the costs grow (`scaling.py`)\n\n" + block + "\n"
    README.write_text(current)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", default="1,2,4,8", help="line counts over one day (default 1,2,4,8)")
    parser.add_argument("--days", default="1,7,28", help="days of two lines (default 1,7,28)")
    parser.add_argument("--no-readme", action="store_true", help="print only; leave bench/README.md as it is")
    args = parser.parse_args(argv)
    cases = [(int(n), 1) for n in args.lines.split(",")] + [(2, int(d)) for d in args.days.split(",")]
    cases = list(dict.fromkeys(cases))  # (2, 1) once
    print(f"scaling: {len(cases)} cases (lines x days) on {os.cpu_count()} cores", flush=True)
    case(1, 1)  # warm-up (imports, Dagster's first run, polars/delta-rs caches): not measured
    results = []
    for n_lines, days in cases:
        r = case(n_lines, days)
        results.append(r)
        print(
            f"{n_lines} line(s) x {days} day(s): {r['samples']:,} samples seeded in {r['seed_s']:.1f} s "
            f"({r['x_real_time']:,.0f}x real time per line); {r['shifts']} shifts backfilled in one run in "
            f"{r['backfill_s']:.1f} s ({r['per_shift_s']:.2f} s per shift); gold {r['gold_s']:.3f} s per shift",
            flush=True,
        )
    text = table(results)
    print(text)
    if not args.no_readme:
        write_readme(
            f"Measured on {date.today()} on this machine ({os.cpu_count()} cores), `python bench/scaling.py`. "
            "Ratios are per line-day of data (per line for gold) against the first row: 1.00x is linear "
            "growth, below 1 is cheaper than linear.\n\n" + text
        )
        print(f"written to {README}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
