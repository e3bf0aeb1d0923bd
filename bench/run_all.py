"""Run every benchmark under bench/ in turn (`make bench`). Each prints its own ratios."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

BENCHES = [
    ["plc_speed.py"],
    ["collector_throughput.py"],
    ["collector_throughput.py", "--lines", "8"],
    ["gold_oee.py"],
    ["backfill.py"],
    ["landing.py"],
    ["spark_medallion.py"],
    ["scaling.py"],
    ["dashboard_live.py"],
    ["dashboard_render.py"],
]


def main() -> int:
    parser = argparse.ArgumentParser(description="Run all benchmarks; each prints ratios measured side by side.")
    parser.parse_args()
    here = Path(__file__).parent
    failed = 0
    for name, *args in BENCHES:
        print(f"== {name} {' '.join(args)}", flush=True)
        failed += subprocess.call([sys.executable, str(here / name), *args]) != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
