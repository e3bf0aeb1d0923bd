"""The OEE engines as Dagster resources: the Spark medallion job (`twin_pipeline/spark_jobs/oee_job.py`: bronze,
silver and gold of a range of shifts in one run) launched through Dagster Pipes on local pyspark as a
subprocess, or on Databricks as a one-time run (job cluster, existing cluster or serverless), with the Pipes
context and messages carried through the landing account's Blob Storage. What the job receives is built by
`spark_jobs/extras.py`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

import dagster as dg
from pydantic import Field

from twin_pipeline.resources.landing import LandingResource
from twin_pipeline.spark_jobs.extras import SCRIPT, job_extras, source_extras

ENGINES = ("polars", "spark", "databricks")
COMPUTE = ("job_cluster", "existing_cluster", "serverless")


class LocalSparkOeeJob(dg.ConfigurableResource):
    """The job on this machine's pyspark (Java 17): the edge rows from the edges' own Delta tables (`edges`, by
    edge id; default the lake root's one edge) or from a landed raw zone (`raw`: a folder or
    `az://<container>[/<prefix>]`), the lake's tables read and written with delta-rs on the driver."""

    lake: str
    edges: dict[str, str] = Field(default_factory=dict)
    raw: str = ""

    def extras(self, shift_ids: Sequence[str]) -> dict[str, Any]:
        source = source_extras(raw_root=self.raw, edges=self.edges or {"edge-local": self.lake})
        return job_extras(self.lake, "delta-rs", shift_ids, source)

    def run(self, context: dg.AssetExecutionContext, shift_ids: Sequence[str]) -> dg.PipesClientCompletedInvocation:
        client = dg.PipesSubprocessClient(env={"SPARK_LOCAL_IP": "127.0.0.1", "PYSPARK_PYTHON": sys.executable})
        return client.run(context=context, command=[sys.executable, str(SCRIPT)], extras=self.extras(shift_ids))


class DatabricksOeeJob(dg.ConfigurableResource):
    """The job as a one-time Databricks run (`jobs/runs/submit`) of the script uploaded to `script`
    (the bundle in `twin_pipeline/spark_jobs/databricks.yml` puts it there)."""

    host: str
    token: str = ""  # empty: the SDK's own auth chain (DATABRICKS_CLIENT_ID/SECRET, Azure CLI, ...)
    script: str
    lake: str  # the lake as the cluster sees it, e.g. abfss://lake@<account>.dfs.core.windows.net/twin
    # the landed raw zone as the cluster sees it; default the landing container, abfss://<container>@<account>.dfs...
    raw: str = ""
    catalog: str = ""  # Unity Catalog catalog and schema of the tables (both, or the Delta folders under `lake`)
    schema_name: str = ""
    compute: str = "job_cluster"
    spark_version: str = "16.4.x-scala2.12"
    node_type_id: str = "Standard_D4ds_v5"
    num_workers: int = 1
    cluster_id: str = ""  # compute = existing_cluster
    # names of a Databricks secret scope and key, not secrets: the scope holds the landing account's key
    secret_scope: str = "twin"  # noqa: S105 - a name, not a secret
    secret_key: str = "landing-storage-key"  # noqa: S105 - a name, not a secret
    pipes_container: str = "pipes"
    table_io: str = "delta"
    poll_interval_seconds: float = 10.0
    landing: LandingResource

    def extras(self, shift_ids: Sequence[str]) -> dict[str, Any]:
        raw = self.raw or f"abfss://{self.landing.container}@{self.landing.account_name}.dfs.core.windows.net"
        return job_extras(
            self.lake, self.table_io, shift_ids, source_extras(raw_root=raw), self.catalog, self.schema_name
        )

    def workspace_client(self) -> Any:
        from databricks.sdk import WorkspaceClient

        return WorkspaceClient(host=self.host, token=self.token or None)

    def task(self) -> Any:
        """The submitted task; Pipes adds its bootstrap (env vars on a job cluster, else parameters)."""
        from databricks.sdk.service import jobs

        params = [
            "--pipes-transport",
            "azure-blob",
            "--storage-account-url",
            self.landing.account_url,
            "--secret-scope",
            self.secret_scope,
            "--secret-key",
            self.secret_key,
        ]
        task: dict[str, Any] = {
            "task_key": "oee",
            "spark_python_task": {"python_file": self.script, "parameters": params},
        }
        libraries = [
            {"pypi": {"package": f"{name}=={version(name)}"}} for name in ("dagster-pipes", "azure-storage-blob")
        ]
        if self.compute == "job_cluster":
            task["new_cluster"] = {
                "spark_version": self.spark_version,
                "node_type_id": self.node_type_id,
                "num_workers": self.num_workers,
                "spark_env_vars": {  # a secret reference: Databricks resolves it on the cluster
                    "AZURE_STORAGE_KEY": f"{{{{secrets/{self.secret_scope}/{self.secret_key}}}}}",
                    **({"AZURE_STORAGE_ACCOUNT": self.landing.account_name} if self.landing.account_name else {}),
                },
            }
            task["libraries"] = libraries
        elif self.compute == "existing_cluster":
            task["existing_cluster_id"] = self.cluster_id
            task["libraries"] = libraries
        elif self.compute == "serverless":
            task["environment_key"] = "twin"
        else:
            raise ValueError(f"compute {self.compute!r} is not one of {', '.join(COMPUTE)}")
        return jobs.SubmitTask.from_dict(task)

    def submit_args(self, shift_ids: Sequence[str]) -> dict[str, Any]:
        from databricks.sdk.service import compute, jobs

        name = shift_ids[0] if len(shift_ids) == 1 else f"{shift_ids[0]}..{shift_ids[-1]}"
        args: dict[str, Any] = {"run_name": f"twin OEE {name}"}
        if self.compute == "serverless":
            args["environments"] = [
                jobs.JobEnvironment(
                    environment_key="twin",
                    spec=compute.Environment(
                        environment_version="3",
                        dependencies=[f"{name}=={version(name)}" for name in ("dagster-pipes", "azure-storage-blob")],
                    ),
                )
            ]
        return args

    def run(self, context: dg.AssetExecutionContext, shift_ids: Sequence[str]) -> dg.PipesClientCompletedInvocation:
        from dagster_azure.pipes import PipesAzureBlobStorageContextInjector, PipesAzureBlobStorageMessageReader
        from dagster_databricks import PipesDatabricksClient
        from dagster_databricks.pipes import PipesDatabricksServerlessClient

        blobs = self.landing.service_client()
        container = blobs.get_container_client(self.pipes_container)
        if not container.exists():
            container.create_container()
        transport: dict[str, Any] = {
            "context_injector": PipesAzureBlobStorageContextInjector(container=self.pipes_container, client=blobs),
            "message_reader": PipesAzureBlobStorageMessageReader(
                container=self.pipes_container, client=blobs, interval=2
            ),
        }
        client = self.workspace_client()
        pipes: PipesDatabricksClient | PipesDatabricksServerlessClient
        if self.compute == "serverless":
            pipes = PipesDatabricksServerlessClient(
                client=client,
                volume_path="unused: Blob transport",
                poll_interval_seconds=self.poll_interval_seconds,
                **transport,
            )
        else:
            pipes = PipesDatabricksClient(client=client, poll_interval_seconds=self.poll_interval_seconds, **transport)
        return pipes.run(
            context=context,
            task=self.task(),
            submit_args=self.submit_args(shift_ids),
            extras=self.extras(shift_ids),
        )
