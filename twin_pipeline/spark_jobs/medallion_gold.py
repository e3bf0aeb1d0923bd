"""Gold in Spark: `fact_oee_shift` from silver `state_intervals` + `part_counts` and the bronze design-speed
samples, as `twin_pipeline/lib/transforms/oee.py` defines it (ISO 22400-2; that module is the definition, this
its copy for the cluster, held to it by the golden vectors in `tests/golden/` to 1e-9), with the
`oee_invariants` check, the roll-ups and each shift's figures the Dagster asset puts on its partition.

Imports only pyspark.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

WINDOW_COLUMNS = (
    "shift_id STRING, shift_name STRING, shift_start TIMESTAMP, shift_end TIMESTAMP, "
    "shift_length_s DOUBLE, planned_downtime_s DOUBLE, planned_busy_time_s DOUBLE"
)
ELEMENTS = ("production", "fault", "stop", "setup", "unknown")


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
