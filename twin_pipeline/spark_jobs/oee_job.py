"""The OEE job for Spark: gold `fact_oee_shift` from silver `state_intervals` + `part_counts` and the
bronze design-speed samples, for the shifts Dagster passes in, as a Dagster Pipes process.

It runs on Databricks (a job cluster, an existing cluster or serverless; `databricks.yml` beside
this file deploys it as a job too) and on local pyspark through `PipesSubprocessClient`. It imports
only pyspark and dagster-pipes (plus azure-storage-blob for the Blob transport, deltalake for the
local table I/O), never `twin_pipeline`, so it ships to a cluster as one file.

Everything that is a contract comes from Dagster as Pipes extras, computed from the one definition
on the Dagster side: the shift windows (`shift_calendar.py`), the gold schema (`schemas.py`), the
design-speed tag and the unknown-time tolerance (`counters.py`, `oee.py`). The arithmetic mirrors
`twin_pipeline/lib/transforms/oee.py` (ISO 22400-2); the golden vectors in `tests/golden/` hold both to 1e-9.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

#: Pipes extras the job needs, as the Dagster side sends them (`twin_pipeline/spark_jobs/extras.py`).
EXTRAS = ("lake", "table_io", "shifts", "gold_schema", "design_speed_tag", "unknown_tolerance_s")
WINDOW_COLUMNS = (
    "shift_id STRING, shift_name STRING, shift_start TIMESTAMP, shift_end TIMESTAMP, "
    "shift_length_s DOUBLE, planned_downtime_s DOUBLE, planned_busy_time_s DOUBLE"
)
ELEMENTS = ("production", "fault", "stop", "setup", "unknown")


def session(app: str = "twin-oee") -> SparkSession:
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
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


# ---------------------------------------------------------------- the OEE definition, in Spark


def windows_frame(spark: SparkSession, shifts: Sequence[dict[str, Any]]) -> DataFrame:
    rows = [
        (
            s["shift_id"],
            s["name"],
            datetime.fromisoformat(s["start"]),
            datetime.fromisoformat(s["end"]),
            float(s["duration_s"]),
            float(s["planned_downtime_s"]),
            float(s["planned_busy_time_s"]),
        )
        for s in shifts
    ]
    return spark.createDataFrame(rows, WINDOW_COLUMNS)


def _sum_where(condition: Column, column: str = "duration_s") -> Column:
    return F.coalesce(F.sum(F.when(condition, F.col(column))), F.lit(0.0))


def oee_frame(
    spark: SparkSession,
    intervals: DataFrame,
    counts: DataFrame,
    speeds: DataFrame,
    shifts: Sequence[dict[str, Any]],
    design_speed_tag: str,
    unknown_tolerance_s: float,
) -> DataFrame:
    """`fact_oee_shift` rows, as `twin_pipeline.lib.transforms.oee.oee_rows` defines them: per line, time elements over
    planned busy time (breaks apart), parts inside planned busy time, the parts-weighted ideal cycle
    time, A/P/Q/OEE with None where a denominator is zero, and why a row is provisional."""
    busy, element = ~F.col("planned_break"), F.col("time_element")
    times = intervals.groupBy("shift_id", "line_id").agg(
        *[_sum_where(busy & (element == e)).alias(e) for e in ELEMENTS],
        _sum_where(F.col("planned_break") & (element == "production")).alias("production_in_breaks_s"),
        F.max(F.col("in_gap").cast("int")).alias("gap"),
    )
    latest = Window.partitionBy("shift_id", "line_id").orderBy(F.col("source_ts").desc(), F.col("seq").desc())
    speed = (
        speeds.where((F.col("tag") == design_speed_tag) & F.col("is_good") & (F.col("value") > 0))
        .withColumn("n", F.row_number().over(latest))
        .where(F.col("n") == 1)
        .select("shift_id", "line_id", (F.lit(60.0) / F.col("value")).alias("ideal_cycle_time_s"))
    )
    lines = intervals.select("shift_id", "line_id").union(counts.select("shift_id", "line_id")).distinct()
    joined = (
        lines.join(times, ["shift_id", "line_id"], "left")
        .join(counts, ["shift_id", "line_id"], "left")
        .join(speed, ["shift_id", "line_id"], "left")
        .join(F.broadcast(windows_frame(spark, shifts)), "shift_id")
    )

    def count(name: str) -> Column:
        return F.coalesce(F.col(name), F.lit(0)).cast("long")

    produced = count("produced") - count("produced_in_breaks")
    apt, pbt = F.coalesce(F.col("production"), F.lit(0.0)), F.col("planned_busy_time_s")
    # parts-weighted over the design speeds in force (silver's ideal time), else the last speed's
    ict = F.when(F.col("ideal_time_s").isNotNull() & (produced > 0), F.col("ideal_time_s") / produced).otherwise(
        F.col("ideal_cycle_time_s")
    )
    reject = count("defective") - count("defective_in_breaks")
    availability = F.when(pbt > 0, apt / pbt)
    performance = F.when(ict.isNotNull() & (apt > 0), ict * produced / apt)
    quality = F.when(produced > 0, (produced - reject) / produced)
    unknown = F.coalesce(F.col("unknown"), F.lit(0.0))
    reasons = F.concat_ws(
        "; ",
        F.array_compact(
            F.array(
                F.when(F.col("gap").isNull() | (F.col("gap") == 1), F.lit("data gap")),
                F.when(
                    unknown > unknown_tolerance_s,
                    F.concat(F.lit("unknown state "), F.bround(unknown, 0).cast("long").cast("string"), F.lit(" s")),
                ),
                F.when(count("produced_resets") > 0, F.lit("counter reset")),
            )
        ),
    )
    return joined.select(
        "shift_id",
        "line_id",
        "shift_name",
        "shift_start",
        "shift_end",
        "shift_length_s",
        "planned_downtime_s",
        "planned_busy_time_s",
        apt.alias("actual_production_time_s"),
        *[F.coalesce(F.col(e), F.lit(0.0)).alias(f"downtime_{e}_s") for e in ("fault", "stop", "setup")],
        unknown.alias("unknown_time_s"),
        ict.alias("ideal_cycle_time_s"),
        produced.alias("produced"),
        (produced - reject).alias("good"),
        reject.alias("reject"),
        count("produced_in_breaks").alias("produced_in_breaks"),
        F.coalesce(F.col("production_in_breaks_s"), F.lit(0.0)).alias("production_in_breaks_s"),
        availability.alias("availability"),
        performance.alias("performance"),
        quality.alias("quality"),
        (availability * performance * quality).alias("oee"),
        F.coalesce(performance > 1.0, F.lit(False)).alias("performance_above_1"),
        (reasons != "").alias("provisional"),
        F.when(reasons != "", reasons).alias("provisional_reason"),
    )


def conform(frame: DataFrame, ddl: str) -> DataFrame:
    """The frame with exactly the contract's columns, in order, cast to the contract's types."""
    schema = frame.sparkSession.createDataFrame([], ddl).schema
    return frame.select(*[F.col(f.name).cast(f.dataType).alias(f.name) for f in schema.fields])


def invariants(gold: DataFrame) -> list[str]:
    """The `oee_invariants` check (as `twin_pipeline/defs/bronze/checks.py` states it), evaluated in Spark."""
    a, p, q, o = (F.col(c) for c in ("availability", "performance", "quality", "oee"))
    accounted = sum(
        (
            F.col(c)
            for c in (
                "actual_production_time_s",
                "downtime_fault_s",
                "downtime_stop_s",
                "downtime_setup_s",
                "unknown_time_s",
                "planned_downtime_s",
            )
        ),
        F.lit(0.0),
    )
    where = F.concat_ws(" ", "shift_id", "line_id")
    problems = gold.select(
        F.explode(
            F.array_compact(
                F.array(
                    F.when(
                        a.isNotNull() & ((a < 0) | (a > 1 + 1e-9)),
                        F.concat(where, F.lit(": availability outside [0, 1]")),
                    ),
                    F.when(
                        q.isNotNull() & ((q < 0) | (q > 1 + 1e-9)), F.concat(where, F.lit(": quality outside [0, 1]"))
                    ),
                    F.when(
                        o.isNotNull() & (F.abs(o - a * p * q) > 1e-9), F.concat(where, F.lit(": OEE is not A x P x Q"))
                    ),
                    F.when(
                        F.col("good") + F.col("reject") != F.col("produced"),
                        F.concat(where, F.lit(": good + reject != produced")),
                    ),
                    F.when(
                        F.abs(accounted - F.col("shift_length_s")) > 1e-3,
                        F.concat(where, F.lit(": time elements do not sum to the shift length")),
                    ),
                )
            )
        ).alias("problem")
    )
    return sorted(r["problem"] for r in problems.collect())


def roll_up(gold: DataFrame, by: Sequence[str] = ()) -> list[dict[str, Any]]:
    """A/P/Q/OEE over rows from summed times and counts (as `twin_pipeline.lib.transforms.oee.roll_up`), per `by`."""
    sums = gold.groupBy(*by).agg(
        F.sum("actual_production_time_s").alias("apt"),
        F.sum("planned_busy_time_s").alias("pbt"),
        F.sum("produced").alias("produced"),
        F.sum("good").alias("good"),
        F.sum(F.col("ideal_cycle_time_s") * F.col("produced")).alias("ideal_s"),
        F.count(F.col("ideal_cycle_time_s")).alias("with_cycle"),
        F.count("*").alias("rows"),
        F.sum(F.col("provisional").cast("int")).alias("provisional_rows"),
    )
    out = []
    for r in sums.collect():
        a = r["apt"] / r["pbt"] if r["pbt"] else None
        p = r["ideal_s"] / r["apt"] if r["apt"] and r["produced"] and r["with_cycle"] else None
        q = r["good"] / r["produced"] if r["produced"] else None
        out.append(
            {
                **{k: r[k] for k in by},
                "availability": a,
                "performance": p,
                "quality": q,
                "oee": a * p * q if a is not None and p is not None and q is not None else None,
                "produced": int(r["produced"] or 0),
                "rows": int(r["rows"]),
                "provisional_rows": int(r["provisional_rows"] or 0),
            }
        )
    return out


def shift_metadata(gold: DataFrame) -> dict[str, dict[str, Any]]:
    """Each shift's own figures (what the polars path's `oee_metadata` puts on each partition): rows,
    provisional rows, A, P, Q and OEE for the plant and per line. Pipes reports one materialization for a
    range, so the asset puts these on each shift's partition itself."""
    out: dict[str, dict[str, Any]] = {}
    for r in roll_up(gold, ["shift_id"]):
        out[r["shift_id"]] = {
            "dagster/row_count": r["rows"],
            "provisional_rows": r["provisional_rows"],
            **{k: round(r[k], 4) for k in ("availability", "performance", "quality", "oee") if r[k] is not None},
        }
    for r in roll_up(gold, ["shift_id", "line_id"]):
        out[r["shift_id"]].update(
            {
                f"{k}/{r['line_id']}": round(r[k], 4)
                for k in ("availability", "performance", "quality", "oee")
                if r[k] is not None
            }
        )
    return out


# ---------------------------------------------------------------- table I/O


class MissingTable(RuntimeError):
    """A table the job reads is not in the lake: a setting to fix, not a shift without data."""


INPUTS = ("silver/state_intervals", "silver/part_counts", "bronze/samples")


def _missing(table: str, path: str) -> MissingTable:
    return MissingTable(
        f"{table} is not at {path}: the job reads the lake's silver and bronze tables there. "
        f"Materialize them first, and on Databricks point TWIN_DATABRICKS_LAKE at the storage "
        f"that holds $TWIN_HOME/lake (docs/operations/databricks.md)"
    )


def check_inputs(lake: str, table_io: str) -> None:
    """With the local table I/O, a missing input table is said before Spark takes its 10-30 s to start
    (Spark's own Delta reader, on Databricks, finds out in `read_table`)."""
    if table_io == "delta":
        return
    for table in INPUTS:
        path = f"{lake.rstrip('/')}/{table}"
        if not os.path.isdir(os.path.join(path, "_delta_log")):
            raise _missing(table, path)


def read_table(spark: SparkSession, lake: str, table: str, shift_ids: Sequence[str], table_io: str) -> DataFrame | None:
    """These shifts of a shift-partitioned table, or None when it has no rows for them. `delta`: Spark's
    own Delta reader (Databricks). `delta-rs`: the active Parquet files the Delta log lists, read by
    Spark (local pyspark cannot fetch the Delta jars), with the partition column put back."""
    path = f"{lake.rstrip('/')}/{table}"
    missing = _missing(table, path)
    if table_io == "delta":
        from pyspark.errors import AnalysisException

        try:
            frame = spark.read.format("delta").load(path).where(F.col("shift_id").isin(list(shift_ids)))
        except AnalysisException as exc:
            raise missing from exc
        return frame if not frame.isEmpty() else None
    from deltalake import DeltaTable

    if not os.path.isdir(os.path.join(path, "_delta_log")):
        raise missing
    delta = DeltaTable(path)
    parts = []
    for shift_id in shift_ids:
        files = delta.file_uris(file_pruning_predicate=[("shift_id", "=", shift_id)])
        if files:
            parts.append(spark.read.parquet(*files).withColumn("shift_id", F.lit(shift_id)))
    if not parts:
        return None
    frame = parts[0]
    for part in parts[1:]:
        frame = frame.unionByName(part)
    return frame


def write_table(gold: DataFrame, lake: str, table: str, shift_ids: Sequence[str], table_io: str) -> int:
    """Replace these shifts of the table with `gold` in one commit; returns the rows written."""
    path = f"{lake.rstrip('/')}/{table}"
    predicate = " OR ".join(f"shift_id = '{s}'" for s in shift_ids)
    if table_io == "delta":
        (
            gold.write.format("delta")
            .mode("overwrite")
            .option("replaceWhere", predicate)
            .partitionBy("shift_id")
            .save(path)
        )
        return gold.count()
    import pyarrow as pa
    from deltalake import write_deltalake

    data = gold.toArrow()
    data = data.cast(pa.schema([f.with_nullable(True) for f in data.schema]))
    if os.path.isdir(os.path.join(path, "_delta_log")):
        write_deltalake(path, data, mode="overwrite", partition_by=["shift_id"], predicate=predicate)
    else:
        write_deltalake(path, data, mode="append", partition_by=["shift_id"])
    return data.num_rows


def compute(spark: SparkSession, extras: dict[str, Any]) -> tuple[DataFrame, list[str]]:
    """Gold rows of the shifts in `extras` from the lake, and the invariant problems found in them."""
    lake, io, shifts = extras["lake"], extras["table_io"], extras["shifts"]
    ids = [s["shift_id"] for s in shifts]
    intervals = read_table(spark, lake, "silver/state_intervals", ids, io)
    counts = read_table(spark, lake, "silver/part_counts", ids, io)
    bronze = read_table(spark, lake, "bronze/samples", ids, io)
    if intervals is None:
        intervals = spark.createDataFrame(
            [],
            "shift_id STRING, line_id STRING, time_element STRING, "
            "duration_s DOUBLE, in_gap BOOLEAN, planned_break BOOLEAN",
        )
    if counts is None:
        counts = spark.createDataFrame(
            [],
            "shift_id STRING, line_id STRING, produced LONG, defective LONG, "
            "produced_in_breaks LONG, defective_in_breaks LONG, produced_resets LONG, ideal_time_s DOUBLE",
        )
    if bronze is None:
        bronze = spark.createDataFrame(
            [],
            "shift_id STRING, line_id STRING, tag STRING, source_ts TIMESTAMP, seq LONG, value DOUBLE, is_good BOOLEAN",
        )
    speeds = bronze.where(F.col("tag") == extras["design_speed_tag"])
    gold = conform(
        oee_frame(
            spark, intervals, counts, speeds, shifts, extras["design_speed_tag"], float(extras["unknown_tolerance_s"])
        ),
        extras["gold_schema"],
    ).cache()
    return gold, invariants(gold)


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
            "twin_pipeline.spark_jobs.extras --lake <uri> --shift <shift_id>`) or materialize gold/fact_oee_shift "
            "with TWIN_OEE_ENGINE=spark or databricks"
        )
    with pipes(argv) as context:  # outside Dagster a no-op context: results go to the log only
        extras = json.loads(standalone) if standalone else {name: context.get_extra(name) for name in EXTRAS}
        missing = [name for name in EXTRAS if name not in extras]
        if missing:
            raise SystemExit(
                f"extras lack {', '.join(missing)}: build them with twin_pipeline/spark_jobs/extras.py job_extras()"
            )
        check_inputs(extras["lake"], extras["table_io"])
        spark = session()
        gold, problems = compute(spark, extras)
        shift_ids = [s["shift_id"] for s in extras["shifts"]]
        if problems:  # published, but not as final: as a failed ERROR check on gold does on the polars path
            gold = gold.withColumn("provisional", F.lit(True)).withColumn(
                "provisional_reason",
                F.when(F.col("provisional_reason").isNull(), F.lit("check oee_invariants failed")).otherwise(
                    F.concat(F.col("provisional_reason"), F.lit("; check oee_invariants failed"))
                ),
            )
        rows = write_table(gold, extras["lake"], "gold/fact_oee_shift", shift_ids, extras["table_io"])
        print(
            f"gold/fact_oee_shift: {rows} rows for {len(shift_ids)} shift(s) written; invariant problems: "
            f"{'; '.join(problems) or 'none'}",
            flush=True,
        )
        plant = roll_up(gold)
        by_line = roll_up(gold, ["line_id"])
        above = [
            f"{r['shift_id']} {r['line_id']}: {r['performance']:.3f}"
            for r in gold.where(F.col("performance_above_1")).select("shift_id", "line_id", "performance").collect()
        ]
        context.report_asset_materialization(
            metadata={
                "dagster/row_count": rows,
                "path": {"raw_value": f"{extras['lake']}/gold/fact_oee_shift", "type": "path"},
                "provisional_rows": int(gold.where(F.col("provisional")).count()),
                "engine": {"raw_value": f"pyspark {spark.version}", "type": "text"},
                "per_shift": {"raw_value": shift_metadata(gold), "type": "json"},
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
        )
        context.report_asset_check(
            "oee_invariants",
            passed=not problems,
            severity="ERROR",
            metadata={"problems": "; ".join(problems) or "none"},
        )
        context.report_asset_check(
            "performance_at_most_1",
            passed=not above,
            severity="WARN",
            metadata={"performance_above_1": "; ".join(above) or "none"},
        )


if __name__ == "__main__":
    main()
