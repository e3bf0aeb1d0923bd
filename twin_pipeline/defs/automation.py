"""Automation: every shift is materialized shortly after it ends, in the plant's timezone."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg

from twin_pipeline.defs.partitions import CALENDAR, SHIFTS

#: The shift-partitioned assets (the calendar and line dimensions refresh on their own cron); the
#: landing group exists in the azure profile only.
SHIFT_ASSETS = dg.AssetSelection.groups("landing", "bronze", "silver", "gold") - dg.AssetSelection.assets(
    ["gold", "dim_shift"], ["gold", "dim_date"], ["gold", "dim_line"])
#: Minutes after the shift end, so the collector's last batches of the shift are committed.
GRACE_MINUTES = 20
_minute = CALENDAR.shifts[0].start.minute + GRACE_MINUTES
if _minute >= 60:
    raise ValueError("shift start minute + grace must stay within the hour; lower GRACE_MINUTES")

shift_job = dg.define_asset_job("shift_oee", selection=SHIFT_ASSETS, partitions_def=SHIFTS,
                                description="Bronze -> silver -> gold for one shift (or a range in one run).")


@dg.schedule(
    cron_schedule=f"{_minute} {','.join(str(s.start.hour) for s in CALENDAR.shifts)} * * *",
    execution_timezone=CALENDAR.timezone, job=shift_job, default_status=dg.DefaultScheduleStatus.RUNNING,
    description=f"Materializes the shift that ended {GRACE_MINUTES} minutes ago.",
)
def shift_closed(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
    ended = CALENDAR.shift_at(context.scheduled_execution_time - timedelta(minutes=GRACE_MINUTES + 1))
    return dg.RunRequest(run_key=ended.shift_id, partition_key=ended.shift_id)


#: Dagster's implicit automation sensor is stopped by default; this one runs (the dimensions' daily cron).
automation_conditions = dg.AutomationConditionSensorDefinition(
    "automation_conditions", target=dg.AssetSelection.all(), default_status=dg.DefaultSensorStatus.RUNNING,
)


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(jobs=[shift_job], schedules=[shift_closed], sensors=[automation_conditions])
