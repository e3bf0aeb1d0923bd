"""A lake for the dashboard's tests: one seeded plant day of two lines (the line models and the
variability engine, as `twin up` seeds history), materialized edge -> bronze -> silver -> gold in one
Dagster run, built once per test run (tests/support/built_once.py)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from edge_collector.variability.engine import VariabilityConfig
from edge_collector.variability.history import seed_history
from tests.conftest import T0
from twin_pipeline.defs.bronze.assets import bronze_samples_asset
from twin_pipeline.defs.gold.assets import gold_fact_downtime, gold_fact_quality, gold_fact_reliability
from twin_pipeline.defs.gold.dims import gold_dim_line
from twin_pipeline.defs.gold.losses import gold_fact_losses
from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver.assets import silver_part_counts, silver_part_measurements, silver_state_intervals
from twin_pipeline.resources.lake import LakeResource

LINES = ["L1", "L2"]
START, END = T0, T0 + timedelta(days=1)
ASSETS = [
    bronze_samples_asset,
    silver_state_intervals,
    silver_part_counts,
    silver_part_measurements,
    gold_fact_oee_shift,
    gold_fact_downtime,
    gold_fact_quality,
    gold_fact_reliability,
    gold_fact_losses,
]
#: Frequent faults, micro-stops and a drifting quality error, so that every page has something to draw.
VARIABILITY = VariabilityConfig.model_validate(
    {
        "default": {
            "faults": {
                "time_to_failure": {"kind": "weibull", "shape": 1.5, "scale": 3600.0},
                "repair_time": {"kind": "lognormal", "median": 600.0, "sigma": 0.5},
                "fault_code": {"kind": "categorical", "weights": {"101": 2.0, "205": 1.0}},
            },
            "quality_error": {"interval_s": 900.0, "distribution": {"kind": "normal", "mean": 0.0, "sd": 0.02}},
        }
    }
)


def build(folder: Path) -> dict[str, Any]:
    """Seed and materialize; returns the lake and its shifts (JSON-safe, for built_once)."""
    lake = folder / "lake"
    seed_history(lake, LINES, START, END, seed=1, variability=VARIABILITY, variability_seed=7)
    shifts = [w.shift_id for w in CALENDAR.windows(START, END)]
    with dg.instance_for_test() as instance:
        resources = {"lake": LakeResource(root=str(lake))}
        tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
        assert dg.materialize(ASSETS, instance=instance, resources=resources, tags=tags).success
        assert dg.materialize([gold_dim_line], instance=instance, resources=resources).success
    return {"lake": str(lake), "shifts": shifts, "lines": LINES}
