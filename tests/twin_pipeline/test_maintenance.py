"""Delta maintenance of the lake and the Dagster instance `twin up` writes (the O3 pool limit and the
O2 crash-only run retries come from there; the end-to-end cases are in test_dagster_reliability.py)."""

from __future__ import annotations

from pathlib import Path

import polars as pl
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef

from twin_pipeline.launcher.instance import InstanceSettings, ensure_instance, instance_yaml
from twin_pipeline.lib.maintenance import maintain_lake_table


def test_the_instance_twin_up_writes_limits_the_pool_and_retries_crashes_only(tmp_path: Path) -> None:
    assert ensure_instance(tmp_path) == "written"
    instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(tmp_path)))  # Dagster validates the file
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert (instance.run_retries_enabled, instance.run_retries_max_retries) == (True, 2)
    assert instance.run_retries_retry_on_asset_or_op_failure is False
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 60
    assert not instance.telemetry_enabled


def test_an_untouched_instance_file_is_updated_an_edited_one_kept(tmp_path: Path) -> None:
    path = tmp_path / "dagster.yaml"
    path.write_text("telemetry:\n  enabled: false\n")  # what twin up wrote before
    assert ensure_instance(tmp_path) == "updated" and path.read_text() == instance_yaml()
    assert ensure_instance(tmp_path) == "unchanged"
    assert ensure_instance(tmp_path, InstanceSettings(max_run_retries=3)) == "updated"  # a newer twin up's settings
    path.write_text(path.read_text().replace("max_retries: 3", "max_retries: 5"))
    assert ensure_instance(tmp_path) == "kept (edited by hand)" and "max_retries: 5" in path.read_text()
    path.write_text("telemetry:\n  enabled: true\n")
    assert ensure_instance(tmp_path).endswith(
        "lacks concurrency, run_retries, run_monitoring: see twin_pipeline/launcher/instance.py"
    )


def test_lake_maintenance_compacts_and_vacuums_without_changing_rows(tmp_path: Path) -> None:
    table = tmp_path / "silver" / "part_counts"
    frames = [
        pl.DataFrame({"shift_id": ["2026-11-24-0600"] * 3, "line_id": ["L1", "L2", "L3"], "produced": [i, i, i]})
        for i in range(4)
    ]
    for frame in frames:  # four small appends: four files in one shift partition
        frame.write_delta(
            str(table),
            mode="append",
            delta_write_options={
                "partition_by": ["shift_id"],
                # no retention, so vacuum may delete the compacted files at once (7 days by default)
                "configuration": {"delta.deletedFileRetentionDuration": "interval 0 hours"},
            },
        )
    before = pl.read_delta(str(table)).sort(pl.all())
    done = maintain_lake_table(tmp_path, "silver/part_counts")
    print(done.line())
    assert (done.files_before, done.files_after, done.files_compacted, done.files_vacuumed) == (4, 1, 4, 4)
    assert pl.read_delta(str(table)).sort(pl.all()).equals(before)
    assert len(list(table.glob("shift_id=*/*.parquet"))) == 1  # the small files are gone from disk
    assert maintain_lake_table(tmp_path, "gold/fact_oee_shift") is None  # not written yet: nothing to do
