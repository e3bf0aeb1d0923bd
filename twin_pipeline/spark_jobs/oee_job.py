"""The Spark medallion job: for a range of contiguous shifts, in one run, the edge rows -> bronze `samples` ->
silver `state_intervals`, `part_counts`, `part_measurements` -> gold `fact_oee_shift`, each equal to what the
polars assets write, as a Dagster Pipes process.

It runs on Databricks (a job cluster, an existing cluster or serverless; `databricks.yml` beside this file
deploys it as a job too) and on local pyspark through `PipesSubprocessClient`. It imports only pyspark and
dagster-pipes (plus azure-storage-blob and deltalake on the driver path), never `twin_pipeline`: it ships to a
cluster with its sibling modules (`medallion_bronze.py`, `medallion_silver.py`, `medallion_gold.py`,
`medallion_io.py`), whose folder it puts on sys.path.

Inputs (the extras' `source`): the landed raw zone (`raw/<table>/shift_id=/edge_id=/part-0.parquet`, several
edges possibly on one line), or the edges' own Delta tables (the local profile). Table IO (`table_io`):
`delta-rs` on the driver, or Spark's own Delta (`delta`, optionally Unity Catalog): `medallion_io.py`.

Everything that is a contract comes from Dagster as Pipes extras, computed from the one definition on the
Dagster side (`extras.py`). The arithmetic mirrors `twin_pipeline/lib/transforms/` and
`twin_pipeline/lib/quality/silences.py`; the golden vectors and the parity tests hold both to 1e-9.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

if __package__:  # imported from the package (Dagster's side, the tests)
    from . import medallion_bronze as bronze
    from . import medallion_gold as gold_sql
    from . import medallion_io as io
    from . import medallion_silver as silver
else:  # run as a script (Databricks, PipesSubprocessClient): the sibling modules beside it
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import medallion_bronze as bronze  # type: ignore[import-not-found, no-redef]
    import medallion_gold as gold_sql  # type: ignore[import-not-found, no-redef]
    import medallion_io as io  # type: ignore[import-not-found, no-redef]
    import medallion_silver as silver  # type: ignore[import-not-found, no-redef]

#: Pipes extras the job needs, as the Dagster side sends them (`twin_pipeline/spark_jobs/extras.py`).
EXTRAS = (
    "lake",
    "table_io",
    "catalog",
    "schema",
    "source",
    "shifts",
    "previous_shift_id",
    "lookback_shift_ids",
    "lookback_start",
    "schemas",
    "gold_schema",
    "design_speed_tag",
    "unknown_tolerance_s",
    "contract",
)
BRONZE, INTERVALS, COUNTS, MEASUREMENTS, GOLD = (
    "bronze/samples",
    "silver/state_intervals",
    "silver/part_counts",
    "silver/part_measurements",
    "gold/fact_oee_shift",
)
OUTPUTS = (BRONZE, INTERVALS, COUNTS, MEASUREMENTS, GOLD)
RAW_COLUMNS = (
    "line_id STRING, tag STRING, source_ts TIMESTAMP, server_ts TIMESTAMP, received_ts TIMESTAMP, value DOUBLE, "
    "value_text STRING, status_code BIGINT, session_id STRING, seq BIGINT, edge_id STRING"
)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def session(app: str = "twin-medallion") -> SparkSession:
    """The cluster's session on Databricks; a small local one elsewhere (loopback only, no UI)."""
    if "DATABRICKS_RUNTIME_VERSION" in os.environ:
        return SparkSession.builder.getOrCreate()
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    spark = (
        SparkSession.builder.master("local[2]")
        .appName(app)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.driver.memory", os.environ.get("TWIN_SPARK_DRIVER_MEMORY", "2g"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ---------------------------------------------------------------- the medallion


@dataclass
class Medallion:
    """What one run computed: each table's rows (contract columns), each shift's figures per table, and the
    `oee_invariants` problems found in gold."""

    tables: dict[str, DataFrame]
    per_shift: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _at(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def _figures(frame: DataFrame, **aggregates: Any) -> dict[str, dict[str, Any]]:
    """Per shift: `dagster/row_count` and the given aggregates (Column expressions), as plain numbers."""
    rows = frame.groupBy("shift_id").agg(
        F.count("*").alias("dagster/row_count"), *[a.alias(k) for k, a in aggregates.items()]
    )
    return {r["shift_id"]: {k: int(v or 0) for k, v in r.asDict().items() if k != "shift_id"} for r in rows.collect()}


def window_frames(spark: SparkSession, shifts: Sequence[dict[str, Any]]) -> tuple[DataFrame, DataFrame]:
    """The shifts (shift_id, idx, start, end) and their planned breaks (shift_id, b_start, b_end) as frames."""
    windows = spark.createDataFrame(
        [(s["shift_id"], i, _instant(s["start"]), _instant(s["end"])) for i, s in enumerate(shifts)],
        "shift_id STRING, idx INT, start TIMESTAMP, end TIMESTAMP",
    )
    breaks = spark.createDataFrame(
        [(s["shift_id"], _instant(a), _instant(b)) for s in shifts for a, b in s["breaks"]],
        "shift_id STRING, b_start TIMESTAMP, b_end TIMESTAMP",
    )
    return windows, breaks


def silver_and_gold(
    spark: SparkSession, samples: DataFrame, spans: Sequence[tuple[str, str, int, int]], extras: dict[str, Any]
) -> dict[str, DataFrame]:
    """Silver and gold of the extras' shifts from their bronze `samples` and the collectors' outages `spans`
    ((shift_id, line_id, start us, end us), `silver.line_gaps`), each computed once (checkpointed)."""
    c, shifts, ddl = extras["contract"], extras["shifts"], extras["schemas"]
    windows, breaks = window_frames(spark, shifts)
    edge_gaps = spark.createDataFrame(
        [(s, line, _at(a), _at(b)) for s, line, a, b in spans],
        "shift_id STRING, line_id STRING, g_start TIMESTAMP, g_end TIMESTAMP",
    )
    tags = c["tags"]
    state_tags = list(dict.fromkeys([tags["state"], tags["reason"], tags["heartbeat"], *tags["activity"]]))
    states = samples.where(F.col("tag").isin(state_tags))
    gaps = edge_gaps.unionByName(silver.silences(states, windows, c))
    intervals = gold_sql.conform(
        silver.state_intervals(spark, states, windows, breaks, gaps, c), ddl[INTERVALS]
    ).localCheckpoint()
    count_tags = [*tags["counters"].values(), tags["design_speed"]]
    counts = gold_sql.conform(
        silver.part_counts(samples.where(F.col("tag").isin(count_tags)), breaks, c), ddl[COUNTS]
    ).localCheckpoint()
    measurements = gold_sql.conform(
        silver.part_measurements(samples.where(F.col("tag").isin(list(tags["spc"]))), c), ddl[MEASUREMENTS]
    ).localCheckpoint()
    speeds = samples.where(F.col("tag") == tags["design_speed"])
    gold = gold_sql.conform(
        gold_sql.oee_frame(
            spark, intervals, counts, speeds, shifts, extras["design_speed_tag"], float(extras["unknown_tolerance_s"])
        ),
        ddl[GOLD],
    ).localCheckpoint()
    return {INTERVALS: intervals, COUNTS: counts, MEASUREMENTS: measurements, GOLD: gold}


def medallion(spark: SparkSession, extras: dict[str, Any], scratch: str) -> Medallion:
    """Every table of the run's shifts, from the edge rows (see the module docstring); nothing written yet."""
    c, shifts, ddl = extras["contract"], extras["shifts"], extras["schemas"]
    ids = [s["shift_id"] for s in shifts]
    first, last = _instant(shifts[0]["start"]), _instant(shifts[-1]["end"])
    windows, _ = window_frames(spark, shifts)
    raw = io.read_samples(spark, extras, first, last, ids, scratch)
    raw = raw if raw is not None else spark.createDataFrame([], RAW_COLUMNS)
    if "edge_id" not in raw.columns:
        raw = raw.withColumn("edge_id", F.lit(None).cast("string"))
    raw = raw.select(*[f.split()[0] for f in RAW_COLUMNS.split(", ")]).cache()
    before = io.read_table(spark, extras, BRONZE, [extras["previous_shift_id"]])
    if before is None:  # the previous shift was never built: the edge rows of the lookback
        rows = io.read_samples(
            spark, extras, _instant(extras["lookback_start"]), first, extras["lookback_shift_ids"], scratch
        )
        before = bronze.lookback_rows(rows, first, extras["previous_shift_id"], c) if rows is not None else None
    samples, stats = bronze.bronze_frame(spark, raw, before, windows, shifts, c)
    samples = gold_sql.conform(samples, ddl[BRONZE]).localCheckpoint()  # computed once: silver starts from it
    spans = silver.line_gaps(
        io.read_gaps(spark, extras, ids, scratch),
        io.read_subscribers(spark, extras, scratch),
        [(s["shift_id"], bronze.micros(_instant(s["start"])), bronze.micros(_instant(s["end"]))) for s in shifts],
    )
    result = Medallion({BRONZE: samples, **silver_and_gold(spark, samples, spans, extras)})
    intervals, counts, measurements, gold = (result.tables[t] for t in (INTERVALS, COUNTS, MEASUREMENTS, GOLD))
    bronze_stats = {
        r["shift_id"]: {k: int(v) for k, v in r.asDict().items() if k != "shift_id"} for r in stats.collect()
    }
    quarantine = io.read_samples(spark, extras, first, last, ids, scratch, "quarantine", "received_ts")
    quarantined = (
        {
            r["shift_id"]: int(r["n"])
            for r in bronze.shift_index(quarantine, windows, "received_ts")
            .groupBy("shift_id")
            .count()
            .withColumnRenamed("count", "n")
            .collect()
        }
        if quarantine is not None
        else {}
    )
    for shift_id in ids:
        bronze_stats.setdefault(shift_id, {})["quarantined_rows"] = quarantined.get(shift_id, 0)
    result.per_shift = {
        BRONZE: {s: {**rows, **bronze_stats.get(s, {})} for s, rows in _figures(samples).items()},
        INTERVALS: _figures(intervals, in_gap_intervals=F.sum(F.col("in_gap").cast("long"))),
        COUNTS: _figures(counts, produced=F.sum("produced"), counter_resets=F.sum("produced_resets")),
        MEASUREMENTS: _figures(measurements, out_of_tolerance=F.sum(F.col("out_of_tolerance").cast("long"))),
        GOLD: gold_sql.shift_metadata(gold),
    }
    result.problems = gold_sql.invariants(gold)
    return result


def write_all(result: Medallion, extras: dict[str, Any]) -> dict[str, int]:
    """Each table's shifts replaced, bronze first and gold last (a reader never sees gold ahead of its inputs);
    gold with invariant problems is published, but as provisional (as a failed ERROR check does in polars)."""
    ids = [s["shift_id"] for s in extras["shifts"]]
    if result.problems:
        result.tables[GOLD] = (
            result.tables[GOLD]
            .withColumn("provisional", F.lit(True))
            .withColumn(
                "provisional_reason",
                F.when(F.col("provisional_reason").isNull(), F.lit("check oee_invariants failed")).otherwise(
                    F.concat(F.col("provisional_reason"), F.lit("; check oee_invariants failed"))
                ),
            )
        )
    return {table: io.write_table(result.tables[table], extras, table, ids) for table in OUTPUTS}


# ---------------------------------------------------------------- Pipes


def arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--pipes-transport",
        choices=("default", "azure-blob"),
        default="default",
        help="where the Pipes context and messages travel: `default` (a local subprocess: env "
        "vars and temp files) or `azure-blob` (a Databricks run: the landing account)",
    )
    parser.add_argument("--storage-account-url", help="blob endpoint of the azure-blob transport")
    parser.add_argument("--secret-scope", help="Databricks secret scope holding the storage key (azure-blob)")
    parser.add_argument("--secret-key", help="key of the storage account key in that scope (azure-blob)")
    parser.add_argument(
        "--extras",
        default="",
        help="run without Dagster (e.g. the bundle's job): the extras as JSON, "
        "printed by `python -m twin_pipeline.spark_jobs.extras --help`",
    )
    args, _ = parser.parse_known_args(argv)  # the Pipes bootstrap arguments pass through
    return args


def _storage_credential(args: argparse.Namespace) -> Any:
    """The landing account's credential: an account key from the environment (a job cluster's
    `spark_env_vars`, a `{{secrets/...}}` reference) or from a Databricks secret scope (serverless and
    existing clusters, which take no environment), else the cluster's identity."""
    key = os.environ.get("AZURE_STORAGE_KEY")
    if not key and args.secret_scope and args.secret_key:
        from pyspark.dbutils import DBUtils  # Databricks only (pyspark's types are not checked)

        key = DBUtils(session()).secrets.get(scope=args.secret_scope, key=args.secret_key)
    if key:
        from urllib.parse import urlparse

        account = (
            os.environ.get("AZURE_STORAGE_ACCOUNT") or (urlparse(args.storage_account_url).hostname or "").split(".")[0]
        )
        return {"account_name": account, "account_key": key}
    if os.environ.get("AZURE_STORAGE_SAS_TOKEN"):
        return os.environ["AZURE_STORAGE_SAS_TOKEN"]
    from azure.identity import DefaultAzureCredential

    return DefaultAzureCredential()


@contextmanager
def pipes(argv: Sequence[str]) -> Iterator[Any]:
    from dagster_pipes import (
        PipesAzureBlobStorageContextLoader,
        PipesAzureBlobStorageMessageWriter,
        PipesCliArgsParamsLoader,
        PipesEnvVarParamsLoader,
        open_dagster_pipes,
    )

    args = arguments(argv)
    cli = PipesCliArgsParamsLoader()
    params = cli if cli.is_dagster_pipes_process() else PipesEnvVarParamsLoader()
    if args.pipes_transport == "azure-blob":
        if not args.storage_account_url:
            raise SystemExit("--pipes-transport azure-blob needs --storage-account-url")
        from azure.storage.blob import BlobServiceClient

        blobs = BlobServiceClient(args.storage_account_url, credential=_storage_credential(args))
        with open_dagster_pipes(
            params_loader=params,
            context_loader=PipesAzureBlobStorageContextLoader(blobs),
            message_writer=PipesAzureBlobStorageMessageWriter(blobs, interval=1),
        ) as context:
            yield context
    else:
        with open_dagster_pipes(params_loader=params) as context:
            yield context


def is_pipes_process() -> bool:
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR, PipesCliArgsParamsLoader

    return PipesCliArgsParamsLoader().is_dagster_pipes_process() or DAGSTER_PIPES_CONTEXT_ENV_VAR in os.environ


def main(argv: Sequence[str] = ()) -> None:
    argv = list(argv or sys.argv[1:])
    standalone = arguments(argv).extras
    if not standalone and not is_pipes_process():
        raise SystemExit(
            "not launched by Dagster: pass --extras '<json>' (print them with `python -m "
            "twin_pipeline.spark_jobs.extras --lake <uri> --shift <shift_id>`) or materialize the shifts "
            "with TWIN_OEE_ENGINE=spark or databricks"
        )
    with pipes(argv) as context:  # outside Dagster a no-op context: results go to the log only
        extras = json.loads(standalone) if standalone else {name: context.get_extra(name) for name in EXTRAS}
        missing = [name for name in EXTRAS if name not in extras]
        if missing:
            raise SystemExit(
                f"extras lack {', '.join(missing)}: build them with twin_pipeline/spark_jobs/extras.py job_extras()"
            )
        io.check_source(extras)
        spark = session()
        with io.scratch_dir() as scratch:
            result = medallion(spark, extras, scratch)
            rows = write_all(result, extras)
        gold = result.tables[GOLD]
        shift_ids = [s["shift_id"] for s in extras["shifts"]]
        print(
            f"{'; '.join(f'{t}: {n} rows' for t, n in rows.items())} for {len(shift_ids)} shift(s) written; "
            f"invariant problems: {'; '.join(result.problems) or 'none'}",
            flush=True,
        )
        plant = gold_sql.roll_up(gold)
        by_line = gold_sql.roll_up(gold, ["line_id"])
        above = [
            f"{r['shift_id']} {r['line_id']}: {r['performance']:.3f}"
            for r in gold.where(F.col("performance_above_1")).select("shift_id", "line_id", "performance").collect()
        ]
        for table in OUTPUTS:
            figures: dict[str, Any] = {}
            if table == GOLD:
                figures = {
                    "provisional_rows": int(gold.where(F.col("provisional")).count()),
                    **{
                        k: round(v, 4)
                        for k, v in (plant[0] if plant else {}).items()
                        if k in ("availability", "performance", "quality", "oee") and v is not None
                    },
                    **{
                        f"oee/{r['line_id']}": round(r["oee"], 4)
                        for r in sorted(by_line, key=lambda r: r["line_id"])
                        if r["oee"] is not None
                    },
                }
            context.report_asset_materialization(
                asset_key=table,
                metadata={
                    "dagster/row_count": rows[table],
                    "path": {"raw_value": io.table_location(extras, table), "type": "path"},
                    "engine": {"raw_value": f"pyspark {spark.version}", "type": "text"},
                    "per_shift": {"raw_value": result.per_shift[table], "type": "json"},
                    **figures,
                },
            )
        context.report_asset_check(
            "oee_invariants",
            asset_key=GOLD,
            passed=not result.problems,
            severity="ERROR",
            metadata={"problems": "; ".join(result.problems) or "none"},
        )
        context.report_asset_check(
            "performance_at_most_1",
            asset_key=GOLD,
            passed=not above,
            severity="WARN",
            metadata={"performance_above_1": "; ".join(above) or "none"},
        )


if __name__ == "__main__":
    main()
