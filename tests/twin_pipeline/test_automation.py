"""The shift schedule fires after each shift end, in plant time, for the shift that just ended."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import dagster as dg
import pytest

from twin_pipeline.definitions import defs
from twin_pipeline.defs.automation import shift_closed

BERLIN = ZoneInfo("Europe/Berlin")


def test_schedule_is_running_in_plant_time() -> None:
    schedule = next(s for s in defs().schedules or [] if s.name == "shift_closed")
    assert schedule.cron_schedule == "20 6,14,22 * * *" and schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


@pytest.mark.parametrize(
    ("tick", "shift_id"),
    [
        (datetime(2026, 11, 24, 6, 20, tzinfo=BERLIN), "2026-11-23-2200"),
        (datetime(2026, 11, 24, 14, 20, tzinfo=BERLIN), "2026-11-24-0600"),
        (datetime(2026, 3, 29, 6, 20, tzinfo=BERLIN), "2026-03-28-2200"),  # the 7-hour DST night
    ],
)
def test_each_tick_requests_the_shift_that_just_ended(tick: datetime, shift_id: str) -> None:
    context = dg.build_schedule_context(scheduled_execution_time=tick)
    request = shift_closed(context)
    assert isinstance(request, dg.RunRequest) and request.partition_key == shift_id


def test_the_shift_job_holds_exactly_the_shift_partitioned_assets() -> None:
    job = defs().resolve_job_def("shift_oee")
    keys = sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
    assert keys == [
        "bronze/samples",
        "gold/fact_downtime",
        "gold/fact_losses",
        "gold/fact_oee_shift",
        "gold/fact_quality",
        "gold/fact_reliability",
        "silver/part_counts",
        "silver/part_measurements",
        "silver/state_intervals",
    ]


def test_the_automation_condition_sensor_runs_by_default() -> None:
    sensor = next(s for s in defs().sensors or [] if s.name == "automation_conditions")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
