"""The Pipes extras of the Spark medallion job (`oee_job.py` and its sibling modules beside this one).

The job cannot import this package, so everything contractual travels as extras, built here from the
one definition of each: the shift windows and their breaks (`shift_calendar.py`), every table's schema as
Spark DDL (`contracts.spark_ddl`), the tags, the state table, the sample key and order, the tolerances and
lookbacks (`transforms/`, `quality/silences.py`), and the raw zone's layout (`raw_zone.py`).
`python -m twin_pipeline.spark_jobs.extras` prints them, for running the job without Dagster
(`databricks bundle run`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from plc.tagmap import PackMLState
from twin_pipeline.lib import raw_zone
from twin_pipeline.lib.calendar.shift_calendar import load_calendar, previous_shift
from twin_pipeline.lib.contracts import Table, spark_ddl
from twin_pipeline.lib.quality.silences import (
    ACTIVITY_TAGS,
    EXECUTE,
    GAP_FACTOR,
    HEARTBEAT_TAG,
    MIN_GAP_S,
    SPEED_TAG,
)
from twin_pipeline.lib.transforms import bronze
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DEFAULT_MAX_RATE_PER_S, DESIGN_SPEED_TAG, UINT32
from twin_pipeline.lib.transforms.oee import TIME_ELEMENT, UNKNOWN_TOLERANCE_S
from twin_pipeline.lib.transforms.spc import SPC_TAGS
from twin_pipeline.lib.transforms.states import REASON_TAG, STATE_TAG

SCRIPT = Path(__file__).with_name("oee_job.py")
#: The job's own modules, shipped beside `SCRIPT` (the bundle syncs them; `oee_job.py` puts its folder on sys.path).
MODULES = ("medallion_bronze.py", "medallion_silver.py", "medallion_gold.py", "medallion_io.py")
CALENDAR = load_calendar()
#: The tables the job writes, in order; the Dagster multi-asset has one spec per table.
OUTPUTS = (Table.BRONZE_SAMPLES, Table.STATE_INTERVALS, Table.PART_COUNTS, Table.PART_MEASUREMENTS, Table.OEE_SHIFT)
#: What the job reads: the landed raw zone, or the edges' own Delta tables (the local profile).
SOURCES = ("raw_zone", "edge_tables")


def contract() -> dict[str, Any]:
    """The definitions the medallion needs, as plain data (`c` in the job's modules)."""
    return {
        "sample_key": list(bronze.KEY),
        "sample_order": list(bronze.ORDER),
        "good_status_below": 1 << 30,  # bronze.typed: status_code // 2**30 == 0 (no Uncertain/Bad bits)
        "carry_lookback_s": bronze.CARRY_LOOKBACK.total_seconds(),
        "tags": {
            "state": STATE_TAG,
            "reason": REASON_TAG,
            "heartbeat": HEARTBEAT_TAG,
            "speed": SPEED_TAG,
            "activity": list(ACTIVITY_TAGS),
            "counters": dict(COUNT_TAGS),
            "design_speed": DESIGN_SPEED_TAG,
            "spc": list(SPC_TAGS),
        },
        "states": {str(state): [PackMLState(state).name, element] for state, element in TIME_ELEMENT.items()},
        "execute": EXECUTE,
        "gap_factor": GAP_FACTOR,
        "min_gap_s": MIN_GAP_S,
        "uint32": UINT32,
        "default_max_rate_per_s": DEFAULT_MAX_RATE_PER_S,
        "gap_key": list(raw_zone.GAP_KEY),
        "raw_prefix": raw_zone.PREFIX,
    }


def source_extras(raw_root: str = "", edges: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Where the edge rows come from: the raw zone at `raw_root` (a folder, `az://<container>[/<prefix>]`, or
    abfss on Databricks), else the edges' lake roots by edge id (their tables under `edge/<table>`)."""
    if raw_root:
        return {"kind": "raw_zone", "root": raw_root}
    if not edges:
        raise ValueError("the job needs a raw zone root or the edge lakes by edge id")
    return {"kind": "edge_tables", "edges": dict(edges)}


def job_extras(
    lake: str,
    table_io: str,
    shift_ids: Sequence[str],
    source: Mapping[str, Any] | None = None,
    catalog: str = "",
    schema: str = "",
) -> dict[str, Any]:
    """The Pipes extras of one run over contiguous shifts: where the lake and the edge rows are, how to read and
    write them, and the contracts. `source` defaults to the lake root's own edge tables (one edge,
    `edge-local`), as a local twin has them."""
    windows = [CALENDAR.window(s) for s in shift_ids]
    if not windows:
        raise ValueError("no shifts")
    for before, after in itertools.pairwise(windows):
        if before.end != after.start:
            raise ValueError(f"the shifts must be contiguous: {before.shift_id} is not just before {after.shift_id}")
    first = windows[0]
    lookback = [w.shift_id for w in CALENDAR.windows(first.start - bronze.CARRY_LOOKBACK, first.start)]
    return {
        "lake": lake,
        "table_io": table_io,
        "catalog": catalog,
        "schema": schema,
        "source": dict(source) if source is not None else source_extras(edges={"edge-local": lake}),
        "shifts": [
            {
                "shift_id": w.shift_id,
                "name": w.name,
                "start": w.start.isoformat(),
                "end": w.end.isoformat(),
                "duration_s": w.duration_s,
                "planned_downtime_s": w.planned_downtime_s,
                "planned_busy_time_s": w.planned_busy_time_s,
                "breaks": [[b.isoformat(), e.isoformat()] for b, e in w.breaks],
            }
            for w in windows
        ],
        "previous_shift_id": previous_shift(CALENDAR, first).shift_id,
        "lookback_shift_ids": lookback,
        "lookback_start": (first.start - bronze.CARRY_LOOKBACK).isoformat(),
        "schemas": {str(t): spark_ddl(t) for t in OUTPUTS},
        "gold_schema": spark_ddl(Table.OEE_SHIFT),
        "design_speed_tag": DESIGN_SPEED_TAG,
        "unknown_tolerance_s": UNKNOWN_TOLERANCE_S,
        "contract": contract(),
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Print a run's extras as JSON, for running the job without Dagster (`databricks bundle run`)."""
    parser = argparse.ArgumentParser(
        prog="python -m twin_pipeline.spark_jobs.extras",
        description=(
            "Print the extras of the Spark medallion job for some contiguous shifts, e.g. for `databricks bundle "
            "run twin_oee --params extras=...` (twin_pipeline/spark_jobs/databricks.yml). Dagster passes them "
            "itself."
        ),
    )
    parser.add_argument(
        "--lake",
        required=True,
        help="the lake as the job sees it, e.g. abfss://lake@<account>.dfs.core.windows.net/twin, or a local path",
    )
    parser.add_argument("--shift", action="append", required=True, help="a shift id like 2026-11-24-0600 (repeatable)")
    parser.add_argument(
        "--table-io",
        choices=("delta", "delta-rs"),
        default="delta",
        help="delta: Spark's own Delta reader and writer (Databricks); delta-rs: the driver reads and writes with "
        "deltalake (local pyspark, Azurite)",
    )
    parser.add_argument(
        "--raw",
        default="",
        help="the landed raw zone's root (its raw/<table>/shift_id=/edge_id= objects), e.g. "
        "abfss://landing@<account>.dfs.core.windows.net; default: the edge tables under --lake (one edge)",
    )
    parser.add_argument("--catalog", default="", help="Unity Catalog catalog of the tables (with --schema)")
    parser.add_argument("--schema", default="", help="Unity Catalog schema of the tables (with --catalog)")
    args = parser.parse_args(argv)
    try:
        source = source_extras(raw_root=args.raw) if args.raw else None
        print(json.dumps(job_extras(args.lake, args.table_io, args.shift, source, args.catalog, args.schema)))
    except (KeyError, ValueError) as exc:
        parser.error(f"{exc} (shift ids are local starts, see twin_pipeline/lib/calendar/shifts.toml)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
