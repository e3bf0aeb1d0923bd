"""The Pipes extras of the Spark OEE job (`oee_job.py` beside this module).

The job cannot import this package, so everything contractual travels as extras, built here from the
one definition of each: the shift windows, the gold schema, the design-speed tag and the unknown-time
tolerance. `python -m twin_pipeline.spark_jobs.extras` prints them, for running the job without
Dagster (`databricks bundle run`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.contracts import spark_ddl
from twin_pipeline.lib.transforms.counters import DESIGN_SPEED_TAG
from twin_pipeline.lib.transforms.oee import UNKNOWN_TOLERANCE_S

SCRIPT = Path(__file__).with_name("oee_job.py")
CALENDAR = load_calendar()


def job_extras(lake: str, table_io: str, shift_ids: Sequence[str]) -> dict[str, Any]:
    """The Pipes extras of one run: where the lake is, how to read it, and the contracts."""
    windows = [CALENDAR.window(s) for s in shift_ids]
    return {
        "lake": lake, "table_io": table_io,
        "shifts": [{"shift_id": w.shift_id, "name": w.name, "start": w.start.isoformat(), "end": w.end.isoformat(),
                    "duration_s": w.duration_s, "planned_downtime_s": w.planned_downtime_s,
                    "planned_busy_time_s": w.planned_busy_time_s} for w in windows],
        "gold_schema": spark_ddl("gold/fact_oee_shift"),
        "design_speed_tag": DESIGN_SPEED_TAG, "unknown_tolerance_s": UNKNOWN_TOLERANCE_S,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print a run's extras as JSON, for running the job without Dagster (`databricks bundle run`)."""
    parser = argparse.ArgumentParser(prog="python -m twin_pipeline.spark_jobs.extras", description=(
        "Print the extras of the Spark OEE job for some shifts, e.g. for `databricks bundle run twin_oee "
        "--params extras=...` (twin_pipeline/spark_jobs/databricks.yml). Dagster passes them itself."))
    parser.add_argument("--lake", required=True, help="the lake as the job sees it, e.g. abfss://lake@<account>."
                                                      "dfs.core.windows.net/twin, or a local path")
    parser.add_argument("--shift", action="append", required=True, help="a shift id like 2026-11-24-0600 (repeatable)")
    parser.add_argument("--table-io", choices=("delta", "delta-rs"), default="delta",
                        help="delta: Spark's Delta reader (Databricks); delta-rs: the active files (local pyspark)")
    args = parser.parse_args(argv)
    try:
        print(json.dumps(job_extras(args.lake, args.table_io, args.shift)))
    except (KeyError, ValueError) as exc:
        parser.error(f"{exc} (shift ids are local starts, see twin_pipeline/lib/calendar/shifts.toml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
