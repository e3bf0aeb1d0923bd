"""The code location: it loads (in-process and through workspace.yaml), the asset graph is what
the contracts say, and the edge sensor turns new Delta versions into materializations."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from edge_collector.schemas import TABLES, edge_table_path
from twin_pipeline.definitions import defs
from twin_pipeline.defs.edge.assets import edge_delta_versions
from twin_pipeline.lib.settings import profile
from twin_pipeline.resources.lake import LakeResource

ROOT = Path(__file__).resolve().parents[2]


def test_asset_graph_snapshot() -> None:
    """The lineage users see: group, kinds and parents of every asset."""
    graph = defs().resolve_asset_graph()
    snapshot = {
        key.to_user_string(): (
            graph.get(key).group_name,
            sorted(graph.get(key).kinds),
            sorted(p.to_user_string() for p in graph.get(key).parent_keys),
        )
        for key in graph.get_all_asset_keys()
    }
    expected = {f"edge/{t}": ("edge", ["deltalake", "opcua"], []) for t in TABLES}
    polars_delta = ["deltalake", "polars"]
    expected["bronze/samples"] = ("bronze", polars_delta, ["edge/quarantine", "edge/raw_samples"])
    expected["silver/state_intervals"] = ("silver", polars_delta, ["bronze/samples"])
    expected["silver/part_counts"] = ("silver", polars_delta, ["bronze/samples"])
    expected["gold/fact_oee_shift"] = (
        "gold",
        polars_delta,
        ["bronze/samples", "silver/part_counts", "silver/state_intervals"],
    )
    expected["gold/fact_downtime"] = ("gold", polars_delta, ["silver/state_intervals"])
    expected["silver/part_measurements"] = ("silver", polars_delta, ["bronze/samples"])
    expected["gold/fact_quality"] = ("gold", polars_delta, ["silver/part_measurements"])
    expected["gold/fact_reliability"] = ("gold", polars_delta, ["edge/injected_events", "silver/state_intervals"])
    expected["gold/fact_losses"] = (
        "gold",
        polars_delta,
        ["bronze/samples", "gold/fact_oee_shift", "silver/state_intervals"],
    )
    expected["gold/dim_line"] = ("gold", polars_delta, ["bronze/samples"])
    expected["gold/dim_shift"] = ("gold", polars_delta, [])
    expected["gold/dim_date"] = ("gold", polars_delta, [])
    expected["maintenance/edge_tables"] = ("maintenance", ["deltalake"], [])
    expected["maintenance/lake_tables"] = ("maintenance", ["deltalake"], [])
    assert snapshot == expected


def test_delta_maintenance_and_landing_share_the_delta_local_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    """O3: the steps that rewrite or bulk-read the local Delta files are in one pool (limit 1 on the
    instance twin up writes), and only those; maintenance runs nightly by default."""
    from twin_pipeline.lib.settings import DELTA_POOL as POOL

    monkeypatch.setenv("TWIN_PROFILE", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    graph = defs().resolve_asset_graph()
    pooled = {key.to_user_string(): graph.get(key).pools for key in graph.get_all_asset_keys() if graph.get(key).pools}
    assert pooled == {
        "maintenance/edge_tables": {POOL},
        "maintenance/lake_tables": {POOL},
        **{
            f"landing/{table}": {POOL}
            for table in ("raw_samples", "injected_events", "quarantine", "gaps", "subscriptions")
        },
    }
    schedule = next(s for s in defs().schedules or [] if s.name == "nightly_maintenance")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("40 3 * * *", "Europe/Berlin")
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING


def test_every_table_asset_shows_its_contract_columns() -> None:
    from twin_pipeline.lib.contracts import TABLES

    specs = {spec.key.to_user_string(): spec for spec in defs().resolve_all_asset_specs()}
    for table, contract in TABLES.items():
        columns = specs[table].metadata["dagster/column_schema"].columns
        assert [c.name for c in columns] == list(contract), table


def test_asset_check_snapshot() -> None:
    """Which checks guard which asset, and which of them stop gold (blocking)."""
    graph = defs().resolve_asset_graph()
    checks = {
        (key.asset_key.to_user_string(), key.name): graph.get_check_spec(key).blocking for key in graph.asset_check_keys
    }
    assert checks == {
        ("edge/raw_samples", "freshness_check"): False,
        ("bronze/samples", "bronze_schema"): True,
        ("bronze/samples", "bronze_no_duplicates"): True,
        ("bronze/samples", "bronze_matches_edge"): True,
        ("bronze/samples", "bronze_complete"): True,
        ("bronze/samples", "bronze_optional_tags"): False,
        ("bronze/samples", "bronze_no_gaps"): False,
        ("bronze/samples", "bronze_value_ranges"): False,
        ("bronze/samples", "edge_caught_up"): False,
        ("silver/part_counts", "part_counters_monotonic"): False,
        ("gold/fact_oee_shift", "oee_invariants"): False,
        ("gold/fact_oee_shift", "performance_at_most_1"): False,
        ("gold/fact_oee_shift", "fault_downtime_matches_injections"): False,
        ("gold/fact_losses", "losses_add_up"): False,
        ("gold/fact_losses", "injections_reconcile"): False,
    }


@pytest.mark.parametrize(
    ("engine", "env", "gold_checks"),
    [
        ("spark", {}, {"oee_invariants", "performance_at_most_1", "fault_downtime_matches_injections"}),
        (
            "databricks",
            {
                "TWIN_PROFILE": "azure",
                "AZURE_STORAGE_ACCOUNT_URL": "https://acct.blob.core.windows.net",
                "DATABRICKS_HOST": "https://adb-1.2.azuredatabricks.net",
                "TWIN_DATABRICKS_SCRIPT": "/Workspace/Shared/twin/files/oee_job.py",
                "TWIN_DATABRICKS_LAKE": "abfss://lake@acct.dfs.core.windows.net/twin",
            },
            {"oee_invariants", "performance_at_most_1"},
        ),
    ],
)
def test_the_spark_engines_swap_only_the_oee_asset(
    monkeypatch: pytest.MonkeyPatch, engine: str, env: dict[str, str], gold_checks: set[str]
) -> None:
    """Same key, same lineage and contract; the Spark job reports the invariant checks itself (one spec
    each, no duplicate), and gold that lives in a Databricks lake is not read back here."""
    from twin_pipeline.lib.settings import oee_engine

    if engine == "spark":  # databricks: the default of the azure profile once DATABRICKS_HOST is set
        monkeypatch.setenv("TWIN_OEE_ENGINE", engine)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    assert oee_engine() == engine
    graph = defs().resolve_asset_graph()
    node = graph.get(dg.AssetKey(["gold", "fact_oee_shift"]))
    assert "pyspark" in node.kinds and ("databricks" in node.kinds) == (engine == "databricks")
    assert sorted(p.to_user_string() for p in node.parent_keys) == [
        "bronze/samples",
        "silver/part_counts",
        "silver/state_intervals",
    ]
    assert {k.name for k in graph.asset_check_keys if k.asset_key == node.key} == gold_checks
    assert "oee_job" in defs().resources


def test_a_wrong_engine_setting_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_pipeline.defs.resources import resources_for
    from twin_pipeline.lib.settings import oee_engine

    monkeypatch.setenv("TWIN_OEE_ENGINE", "duckdb")
    with pytest.raises(ValueError, match="set it to polars, spark or databricks"):
        oee_engine()
    monkeypatch.setenv("TWIN_OEE_ENGINE", "databricks")
    with pytest.raises(ValueError, match=r"needs TWIN_PROFILE=azure.*use spark"):
        oee_engine()
    monkeypatch.setenv("TWIN_PROFILE", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "https://acct.blob.core.windows.net")
    monkeypatch.setenv("DATABRICKS_HOST", "https://adb-1.2.azuredatabricks.net")
    with pytest.raises(
        ValueError,
        match=r"(?s)needs TWIN_DATABRICKS_SCRIPT in the environment.*TWIN_DATABRICKS_COMPUTE",
    ):
        resources_for("azure")
    monkeypatch.setenv("TWIN_DATABRICKS_SCRIPT", "/Workspace/Shared/twin/files/oee_job.py")
    with pytest.raises(ValueError, match=r"needs the lake in cloud storage.*set TWIN_LAKE"):
        resources_for("azure")


def test_edge_assets_carry_the_schema_contract() -> None:
    specs = [spec for spec in defs().assets or [] if isinstance(spec, dg.AssetSpec)]
    assert sorted(spec.key.path[-1] for spec in specs) == sorted(TABLES)
    for spec in specs:
        columns = [c.name for c in spec.metadata["dagster/column_schema"].columns]
        assert columns == TABLES[spec.key.path[-1]].names


def test_the_sensor_runs_by_default_and_the_profile_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    sensor = next(s for s in defs().sensors or [] if s.name == "edge_delta_versions")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    monkeypatch.setenv("TWIN_PROFILE", "gcp")
    with pytest.raises(ValueError, match="TWIN_PROFILE='gcp' is not a profile; set it to one of: local, azure"):
        profile()
    monkeypatch.delenv("TWIN_PROFILE")
    assert profile() == "local"
    assert not {k for k in defs().resolve_asset_graph().get_all_asset_keys() if k.path[0] == "landing"}


def _append(lake: Path, table: str) -> None:
    schema = TABLES[table]
    empty = pa.Table.from_pylist([], schema=schema)
    write_deltalake(str(edge_table_path(lake, table)), empty, mode="append", partition_by=["day"])


def _evaluate(lake: LakeResource, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    """The sensor as the daemon runs it: its resources opened for the evaluation (the lake resource has a
    per-run read cache to set up and tear down)."""
    with dg.build_sensor_context(cursor=cursor, resources={"lake": lake}) as context:
        return edge_delta_versions(context)


def test_sensor_emits_one_materialization_per_new_delta_version(tmp_path: Path) -> None:
    lake = LakeResource(root=str(tmp_path / "lake"))
    result = _evaluate(lake)
    assert isinstance(result, dg.SkipReason)
    _append(tmp_path / "lake", "raw_samples")
    result = _evaluate(lake)
    assert isinstance(result, dg.SensorResult)
    assert [e.asset_key.to_user_string() for e in result.asset_events] == ["edge/raw_samples"]
    assert result.asset_events[0].metadata["delta_version"].value == 0
    cursor = result.cursor
    again = _evaluate(lake, cursor)
    assert isinstance(again, dg.SkipReason)
    _append(tmp_path / "lake", "raw_samples")
    _append(tmp_path / "lake", "gaps")
    result = _evaluate(lake, cursor)
    assert isinstance(result, dg.SensorResult)
    versions = {e.asset_key.path[-1]: e.metadata["delta_version"].value for e in result.asset_events}
    assert versions == {"raw_samples": 1, "gaps": 0}


def test_workspace_yaml_loads_the_code_location(tmp_path: Path) -> None:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "TWIN_HOME": str(tmp_path / "twin")}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    out = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w", "workspace.yaml"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert "Validation successful for code location twin_pipeline." in out.stderr + out.stdout
