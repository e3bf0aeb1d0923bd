"""The Spark medallion job (`twin_pipeline/spark_jobs/oee_job.py`) launched by Databricks and by hand: the
Databricks launch, where only the REST boundary is faked: the exact submit request is checked, and the fake
"cluster" runs the real script with the request's parameters and environment, reading the shift landed in
Azurite and writing its lake there, its Pipes context and messages travelling through Azurite as they would
through the landing account; and the script run without Dagster on a whole simulated shift's edge tables. (The
golden vectors, the `spark` engine through Pipes and the parity of every table on a seeded range:
tests/twin_pipeline/test_spark_medallion.py.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import polars as pl
import pytest

from tests.support.azurite import ACCOUNT, KEY, Azurite, azurite
from tests.support.quick_spark import quick_spark
from tests.support.raw_zone_local import lay_out_raw_zone
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.oee_engines import DatabricksOeeJob
from twin_pipeline.spark_jobs.extras import MODULES, SCRIPT, job_extras

SHIFT = "2026-11-24-0600"


@pytest.fixture(scope="module", autouse=True)
def quick_jvm() -> Iterator[None]:
    """Every JVM of this module, this process's and the jobs' (they inherit the environment)."""
    with quick_spark():
        yield


def assert_rows_equal(spark_row: dict[str, Any], polars_row: dict[str, Any]) -> None:
    assert spark_row.keys() == polars_row.keys()
    for name, expected in polars_row.items():
        if isinstance(expected, float):
            assert spark_row[name] == pytest.approx(expected, rel=1e-9, abs=1e-9), name
        else:
            assert spark_row[name] == expected, name


def gold(lake: Path) -> pl.DataFrame:
    return pl.read_delta(str(lake / "gold" / "fact_oee_shift")).select(list(FACT_OEE_SHIFT)).sort("shift_id", "line_id")


@pytest.fixture(scope="module")
def silver_lake(engine_shift: tuple[Path, dict], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, pl.DataFrame]:
    """The engine shift through bronze, silver and gold in polars: the lake and polars' gold rows."""
    import shutil

    from twin_pipeline.defs.bronze.assets import bronze_samples_asset
    from twin_pipeline.defs.gold.oee import gold_fact_oee_shift
    from twin_pipeline.defs.silver.assets import silver_part_counts, silver_state_intervals

    lake = tmp_path_factory.mktemp("spark") / "lake"
    shutil.copytree(engine_shift[0], lake)
    assert dg.materialize(
        [bronze_samples_asset, silver_state_intervals, silver_part_counts, gold_fact_oee_shift],
        partition_key=SHIFT,
        resources={"lake": LakeResource(root=str(lake))},
    ).success
    return lake, gold(lake)


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, Any]:
    """The gold materialization's metadata (the job reports one per table)."""
    [event] = [
        e for e in result.get_asset_materialization_events() if e.materialization.asset_key.path[-1] == "fact_oee_shift"
    ]
    return {k: v.value for k, v in event.materialization.metadata.items()}


class FakeDatabricks:
    """The Jobs API of a workspace (the one boundary that cannot exist here): `submit` records the
    request and runs the submitted script as a cluster would (its parameters, its `spark_env_vars` with
    secret references resolved); `get_run` reports the process's state."""

    def __init__(self, secrets: dict[str, str]) -> None:
        self.secrets, self.requests, self.process = secrets, [], None
        self.jobs = SimpleNamespace(submit=self.submit, get_run=self.get_run, cancel_run=lambda run_id: None)

    def submit(self, *, tasks: list[Any], **kwargs: Any) -> Any:
        self.requests.append({"tasks": [t.as_dict() for t in tasks], **{k: v for k, v in kwargs.items()}})
        task = tasks[0].as_dict()
        env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
        for name, value in task.get("new_cluster", {}).get("spark_env_vars", {}).items():
            env[name] = self.secrets.get(value, value)  # "{{secrets/scope/key}}" references resolved
        local_script = SCRIPT  # the workspace file the bundle uploaded
        self.process = subprocess.Popen(
            [sys.executable, str(local_script), *task["spark_python_task"]["parameters"]], env=env
        )
        return SimpleNamespace(bind=lambda: {"run_id": 4711})

    def get_run(self, run_id: int) -> Any:
        from databricks.sdk.service import jobs

        code = self.process.poll()
        state = (
            jobs.RunState(life_cycle_state=jobs.RunLifeCycleState.RUNNING)
            if code is None
            else jobs.RunState(
                life_cycle_state=jobs.RunLifeCycleState.TERMINATED,
                result_state=jobs.RunResultState.SUCCESS if code == 0 else jobs.RunResultState.FAILED,
                state_message=f"exit code {code}",
            )
        )
        return jobs.Run(
            run_id=run_id, state=state, run_page_url=f"https://adb-1.2.azuredatabricks.net/#job/1/run/{run_id}"
        )


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as running:
        yield running


def test_databricks_submits_the_exact_request_and_computes_the_medallion_in_azurite(
    silver_lake: tuple[Path, pl.DataFrame], emulator: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.storage.blob import BlobServiceClient
    from deltalake import DeltaTable

    from twin_pipeline.defs.gold.oee import pipes_medallion
    from twin_pipeline.resources.landing import LandingResource

    lake, by_polars = silver_lake
    # the "cluster" reads the shift landed in Azurite and writes its lake there (the driver table IO on az://)
    for name, value in {
        "AZURE_STORAGE_ACCOUNT_NAME": ACCOUNT,
        "AZURE_STORAGE_ACCOUNT_KEY": KEY,
        "AZURE_STORAGE_USE_EMULATOR": "true",
        "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{emulator.port}",
        "AZURE_STORAGE_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    local_raw = lake.parent / "landing"
    objects = lay_out_raw_zone(lake, local_raw, "edge-local", [SHIFT])
    blobs = BlobServiceClient(emulator.url(), credential={"account_name": ACCOUNT, "account_key": KEY})
    for container in ("landing", "lake"):
        if not blobs.get_container_client(container).exists():
            blobs.create_container(container)
    for path in objects:
        with path.open("rb") as data:
            blobs.get_blob_client("landing", path.relative_to(local_raw).as_posix()).upload_blob(data, overwrite=True)
    cloud_lake = "az://lake/twin"
    fake = FakeDatabricks({"{{secrets/twin/landing-storage-key}}": KEY})
    monkeypatch.setattr(DatabricksOeeJob, "workspace_client", lambda self: fake)
    landing = LandingResource(account_url=emulator.url(), account_name=ACCOUNT, account_key=KEY)
    job = DatabricksOeeJob(
        host="https://adb-1.2.azuredatabricks.net",
        script="/Workspace/Shared/twin/oee_job.py",
        lake=cloud_lake,
        raw="az://landing",
        table_io="delta-rs",
        poll_interval_seconds=0.5,
        landing=landing,
    )
    result = dg.materialize([pipes_medallion("databricks")], partition_key=SHIFT, resources={"oee_job": job})

    [request] = fake.requests
    [task] = request["tasks"]
    bootstrap = task["new_cluster"]["spark_env_vars"]
    assert set(bootstrap) == {
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_KEY",
        "DAGSTER_PIPES_CONTEXT",
        "DAGSTER_PIPES_MESSAGES",
    }
    from dagster_pipes import decode_param

    assert decode_param(bootstrap["DAGSTER_PIPES_CONTEXT"])["bucket"] == "pipes"  # through the landing account
    assert decode_param(bootstrap["DAGSTER_PIPES_MESSAGES"])["bucket"] == "pipes"
    assert {k: v for k, v in request.items() if k != "tasks"} == {"run_name": f"twin OEE {SHIFT}"}
    assert {k: v for k, v in task.items() if k != "new_cluster"} == {
        "task_key": "oee",
        "spark_python_task": {
            "python_file": "/Workspace/Shared/twin/oee_job.py",
            "parameters": [
                "--pipes-transport",
                "azure-blob",
                "--storage-account-url",
                emulator.url(),
                "--secret-scope",
                "twin",
                "--secret-key",
                "landing-storage-key",
            ],
        },
        "libraries": [
            {"pypi": {"package": f"dagster-pipes=={version('dagster-pipes')}"}},
            {"pypi": {"package": f"azure-storage-blob=={version('azure-storage-blob')}"}},
        ],
    }
    assert {k: v for k, v in task["new_cluster"].items() if k != "spark_env_vars"} == {
        "spark_version": "16.4.x-scala2.12",
        "node_type_id": "Standard_D4ds_v5",
        "num_workers": 1,
    }
    assert bootstrap["AZURE_STORAGE_KEY"] == "{{secrets/twin/landing-storage-key}}"  # the key never leaves Databricks
    # the results came back through Pipes, and gold equals polars' again
    meta = metadata(result)
    assert meta["Databricks Job Run ID"] == "4711" and meta["dagster/row_count"] == 2
    assert {e.check_name: e.passed for e in result.get_asset_check_evaluations()} == {
        "oee_invariants": True,
        "performance_at_most_1": True,
    }
    # every table in the Azurite lake; gold equal to polars' from the local edge tables
    for table in ("bronze/samples", "silver/state_intervals", "silver/part_counts", "silver/part_measurements"):
        assert DeltaTable(f"{cloud_lake}/{table}").to_pyarrow_table().num_rows > 0, table
    in_azurite = (
        pl.from_arrow(DeltaTable(f"{cloud_lake}/gold/fact_oee_shift").to_pyarrow_table())
        .select(list(FACT_OEE_SHIFT))
        .sort("shift_id", "line_id")
    )
    assert in_azurite.height == by_polars.height
    for spark_row, polars_row in zip(in_azurite.to_dicts(), by_polars.to_dicts()):
        assert_rows_equal(spark_row, polars_row)


@pytest.mark.parametrize(
    ("compute", "expected"),
    [
        ("existing_cluster", {"existing_cluster_id": "0101-abc"}),
        ("serverless", {"environment_key": "twin"}),
    ],
)
def test_the_other_computes_submit_what_databricks_expects(compute: str, expected: dict[str, Any]) -> None:
    from twin_pipeline.resources.landing import LandingResource

    job = DatabricksOeeJob(
        host="https://adb-1.2.azuredatabricks.net",
        script="/Workspace/Shared/twin/oee_job.py",
        lake="abfss://lake@acct.dfs.core.windows.net/twin",
        compute=compute,
        cluster_id="0101-abc",
        landing=LandingResource(account_url="https://acct.blob.core.windows.net"),
    )
    task = job.task().as_dict()
    assert {k: v for k, v in task.items() if k not in ("task_key", "spark_python_task", "libraries")} == expected
    assert "new_cluster" not in task  # no env vars there: the script reads the key from the secret scope
    args = job.submit_args([SHIFT, "2026-11-24-1400"])
    assert args["run_name"] == f"twin OEE {SHIFT}..2026-11-24-1400"
    if compute == "serverless":
        [environment] = [e.as_dict() for e in args["environments"]]
        assert environment == {
            "environment_key": "twin",
            "spec": {
                "environment_version": "3",
                "dependencies": [
                    f"dagster-pipes=={version('dagster-pipes')}",
                    f"azure-storage-blob=={version('azure-storage-blob')}",
                ],
            },
        }
    assert json.dumps(job_extras(job.lake, job.table_io, [SHIFT]))  # the extras travel as JSON


def test_the_bundle_deploys_this_script_with_the_locked_libraries() -> None:
    import yaml

    from twin_pipeline.spark_jobs.oee_job import arguments

    bundle = yaml.safe_load((SCRIPT.parent / "databricks.yml").read_text())
    [task] = bundle["resources"]["jobs"]["twin_oee"]["tasks"]
    assert (SCRIPT.parent / task["spark_python_task"]["python_file"]).resolve() == SCRIPT
    assert bundle["sync"]["include"] == [SCRIPT.name, *MODULES]  # the job and its modules
    assert all((SCRIPT.parent / name).is_file() for name in MODULES)
    assert [lib["pypi"]["package"] for lib in task["libraries"]] == [
        f"{name}=={version(name)}" for name in ("dagster-pipes", "azure-storage-blob")
    ]
    assert arguments(task["spark_python_task"]["parameters"]).extras == "{{job.parameters.extras}}"
    assert bundle["targets"]["prod"]["workspace"]["root_path"] == "/Workspace/Shared/twin"


def test_without_dagster_the_script_runs_on_extras_and_says_how_otherwise(
    silver_lake: tuple[Path, pl.DataFrame],
) -> None:
    lake, by_polars = silver_lake
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAGSTER_PIPES")}
    refused = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "--extras" in refused.stderr
    nowhere = json.loads(
        subprocess.run(
            [
                sys.executable,
                "-m",
                "twin_pipeline.spark_jobs.extras",
                "--lake",
                str(lake.parent / "nowhere"),
                "--shift",
                SHIFT,
                "--table-io",
                "delta-rs",
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    failed = subprocess.run(
        [sys.executable, str(SCRIPT), "--extras", json.dumps(nowhere)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode != 0 and "no edge table raw_samples at" in failed.stderr
    assert "TWIN_EDGES" in failed.stderr  # says what to fix
    extras = subprocess.run(
        [
            sys.executable,
            "-m",
            "twin_pipeline.spark_jobs.extras",
            "--lake",
            str(lake),
            "--shift",
            SHIFT,
            "--table-io",
            "delta-rs",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    ran = subprocess.run(
        [sys.executable, str(SCRIPT), "--extras", extras], env=env, capture_output=True, text=True, timeout=300
    )
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "gold/fact_oee_shift: 2 rows for 1 shift(s) written; invariant problems: none" in ran.stdout
    assert gold(lake).height == by_polars.height  # the rows the tests before wrote replaced, not added to
    for spark_row, polars_row in zip(gold(lake).to_dicts(), by_polars.to_dicts()):
        assert_rows_equal(spark_row, polars_row)
