"""Soak of an accelerated live line (`twin up --speed K`, defect 5 of issue 14): too long for the suite.

The live line runs as `twin up --no-ui` runs it (plc-sim and edge-collector as child processes,
SignAndEncrypt, variability on), its plant clock placed by twin_pipeline/launcher/plant_clock.py:
`--hours` of plant time behind the wall clock, aligned to a shift start, so that the run never
passes the wall clock. After `--hours / --speed` wall hours it is stopped, bronze -> silver -> gold
OEE is materialized for every shift the run covered completely (it runs on until the collector
recorded the whole span when the machine serves less than `--speed`, at most twice as long), and it
reports:

- shifts with gold for every line (must be all of them), and whether any is provisional;
- quarantined rows by reason (must be none: no `absurd_timestamp`);
- the achieved speed (plant seconds of data per wall second), against the requested one.

    python bench/soak_speed.py [--speed 60] [--hours 48] [--home DIR]   # make soak-speed: 60x, 2 days

Exit code 0 when every covered shift has gold and nothing was quarantined. Its result is also written
to DIR/soak_speed.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import dagster as dg
import polars as pl
from common import free_port

from edge_collector.collector import read_watermarks
from edge_collector.local_twin import LiveLine
from edge_collector.schemas import edge_table_path
from twin_pipeline.launcher import plant_clock
from twin_pipeline.lib.calendar.shift_calendar import load_calendar


def _rows(lake: Path, table: str) -> pl.DataFrame:
    path = edge_table_path(lake, table)
    return pl.read_delta(str(path)) if (path / "_delta_log").exists() else pl.DataFrame()


def _gold(lake: Path, shifts: list[str]) -> pl.DataFrame:
    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
    from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals
    from twin_pipeline.resources.lake import LakeResource

    assets = [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift]
    for shift in shifts:  # one run per shift, as the shift_closed schedule runs them
        result = dg.materialize(assets, partition_key=shift, resources={"lake": LakeResource(root=str(lake))})
        if not result.success:
            raise SystemExit(f"materialization of {shift} failed")
    return pl.read_delta(str(lake / "gold" / "fact_oee_shift"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--speed", type=float, default=60.0, help="plant seconds per wall second (default 60)")
    parser.add_argument("--hours", type=float, default=48.0, help="plant hours to run (default 48: two days)")
    parser.add_argument("--lines", default="L1,L2", help="line ids (default L1,L2)")
    parser.add_argument("--home", type=Path, help="TWIN_HOME of the run (default: a new temporary folder)")
    args = parser.parse_args(argv)

    home = (args.home or Path(tempfile.mkdtemp(prefix="soak-speed-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    lake = home / "lake"
    calendar = load_calendar()
    span = timedelta(hours=args.hours)
    now = datetime.now(UTC).replace(microsecond=0)
    # The start of the shift holding now - span - 10 min: the plant clock starts at a shift start and stays
    # behind the wall clock through the whole run (it catches up after lag / (K - 1) wall seconds).
    start = calendar.shift_at(now - span - timedelta(minutes=10)).start
    clock = plant_clock.plan(args.speed, now - start, now, None)
    if clock.start is None or clock.catches_up_at is None:
        raise SystemExit(f"--speed {args.speed} must be > 1")
    config = home / "collector.toml"
    config.write_text((ROOT / "edge_collector" / "local.toml").read_text() + "\n[metrics]\nport = 0\n")
    line = LiveLine(
        home,
        lines=args.lines,
        port=free_port(),
        speed=clock.speed,
        seed=1,
        config_path=config,
        start=clock.start,
    )
    wall_s = span.total_seconds() / args.speed
    print(f"soak: TWIN_HOME {home}; plant clock {clock.describe()}; running {wall_s / 60:.1f} wall min", flush=True)
    line.start()
    t0 = time.monotonic()
    ended_by_itself = False
    goal = clock.start + span
    try:  # until the collector recorded the whole span (a busy machine runs slower), at most twice the planned time
        while time.monotonic() - t0 < 2 * wall_s + 60:
            if not line.alive():
                ended_by_itself = True
                break
            time.sleep(1.0)
            if time.monotonic() - t0 > wall_s and int(time.monotonic() - t0) % 15 == 0:
                _, per_line = read_watermarks(lake)
                if per_line and min(last for last, _ in per_line.values()) > goal + timedelta(minutes=1):
                    break
    finally:
        stop_t = time.monotonic()
        codes = line.stop()
        stop_s = time.monotonic() - stop_t
    elapsed = stop_t - t0
    raw, quarantine = _rows(lake, "raw_samples"), _rows(lake, "quarantine")
    newest = raw["source_ts"].max() if raw.height else None
    achieved = (newest - clock.start).total_seconds() / elapsed if newest is not None else 0.0  # type: ignore[operator]  # polars returns a datetime here
    covered = calendar.windows(clock.start, newest) if newest else []  # type: ignore[arg-type]  # as above
    shifts = [w.shift_id for w in covered if w.start >= clock.start and w.end <= newest]  # type: ignore[operator]  # type: ignore[arg-type, operator]  # as above
    gold = _gold(lake, shifts) if shifts else pl.DataFrame()
    lines = args.lines.split(",")
    with_gold = [
        s for s in shifts if gold.height and sorted(gold.filter(pl.col("shift_id") == s)["line_id"].to_list()) == lines
    ]
    result: dict[str, Any] = {
        "speed_requested": args.speed,
        "speed_achieved": round(achieved, 1),
        "plant_start": clock.start.isoformat(),
        "plant_newest": newest.isoformat() if newest else None,
        "wall_s": round(elapsed, 1),
        "stop_s": round(stop_s, 1),
        "exit_codes": codes,
        "ended_by_itself": ended_by_itself,
        "raw_samples": raw.height,
        "quarantined": quarantine.height,
        "quarantined_by_reason": dict(quarantine.group_by("reason").len().iter_rows()) if quarantine.height else {},
        "shifts_covered": shifts,
        "shifts_with_gold": with_gold,
        "provisional": {
            r["shift_id"] + "/" + r["line_id"]: r.get("provisional_reason")
            for r in (gold.filter(pl.col("provisional")) if gold.height else gold).iter_rows(named=True)
        },
        "oee": {r["shift_id"] + "/" + r["line_id"]: round(r["oee"], 4) for r in gold.iter_rows(named=True)},
    }
    (home / "soak_speed.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2), flush=True)
    ok = bool(shifts) and with_gold == shifts and quarantine.height == 0 and not any(codes) and not ended_by_itself
    print(f"soak: {'PASS' if ok else 'FAIL'}", flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
