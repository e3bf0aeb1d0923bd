"""Bronze in Spark: the edge rows of a range of shifts, de-duplicated, typed, with each shift's carried-in rows,
as `twin_pipeline/lib/transforms/bronze.py` defines them (that module is the definition; this is its copy for
the cluster, held to it by the parity tests in tests/twin_pipeline/test_spark_medallion.py).

Imports only pyspark: it ships beside `oee_job.py`. Everything contractual comes in `c` (the job's extras:
the sample key, the row order, the good-status bound, the carry lookback, the shift windows).

Carried-in rows of a range in one pass. Polars builds shift k's carried rows from shift k-1's bronze (own rows
and carried rows), so a value travels forward shift by shift, and a line whose newest row is older than the
lookback at a shift start is dropped (and so are its older values: they are never carried again). Here, for
shift k and a line L:
- `newest(k)`: the newest row of L before shift k that polars would still hold, and `dead(k)`: newest(k) is
  missing or older than start_k - lookback; both follow from each shift's newest own row of L by a short
  recursion per line on the driver (lines x shifts numbers, not rows);
- `floor(k)`: the start of the last shift j < k at which L was dead (its rows from then on are the only ones
  polars still carries), or none (the rows before the range count too);
- carried(k) = when L is alive at k, per (L, tag) the last row in `ORDER` among L's rows of [floor(k),
  start_k): the last row per (line, tag, shift), joined to the shifts after it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

#: The edge columns bronze keeps (besides shift_id, is_good, carried_in).
EDGE_COLUMNS = (
    "line_id",
    "tag",
    "source_ts",
    "server_ts",
    "received_ts",
    "value",
    "value_text",
    "status_code",
    "session_id",
    "seq",
)


def shift_index(frame: DataFrame, windows: DataFrame, column: str = "source_ts") -> DataFrame:
    """`frame` with `shift_id` and `idx` (the shift's place in the range) of the window its `column` falls in
    ([start, end)); rows outside every window are dropped."""
    w = F.broadcast(windows.select("shift_id", "idx", F.col("start").alias("_ws"), F.col("end").alias("_we")))
    return (
        frame.drop("shift_id")
        .join(w, (F.col(column) >= F.col("_ws")) & (F.col(column) < F.col("_we")))
        .drop("_ws", "_we")
    )


def typed(raw: DataFrame, c: dict[str, Any]) -> DataFrame:
    """Edge rows (with `shift_id`) de-duplicated per shift on the sample key, the earliest received copy
    winning (`bronze.typed`; ties between copies received at once, e.g. by two edges, by session and edge),
    with `is_good` (status below the Uncertain/Bad bits) and `carried_in` false."""
    tie = [c for c in ("edge_id",) if c in raw.columns]
    first = Window.partitionBy("shift_id", *c["sample_key"]).orderBy("received_ts", "seq", "session_id", *tie)
    status = F.col("status_code")
    return (
        raw.withColumn("_n", F.row_number().over(first))
        .where(F.col("_n") == 1)
        .drop("_n")
        .withColumn("is_good", (status >= 0) & (status < F.lit(int(c["good_status_below"]))))
        .withColumn("carried_in", F.lit(False))
    )


def _order(c: dict[str, Any]) -> Column:
    return F.struct(*[F.col(name) for name in c["sample_order"]])


def _newest_by_line(frame: DataFrame, by: Sequence[str]) -> dict[tuple[Any, ...], int]:
    """The newest `source_ts` per `by`, in epoch microseconds (collected datetimes would be naive local time)."""
    return {
        tuple(r[k] for k in by): int(r["newest"])
        for r in frame.groupBy(*by).agg(F.max(F.unix_micros("source_ts")).alias("newest")).collect()
    }


def micros(instant: datetime) -> int:
    """An aware instant in epoch microseconds, exactly."""
    return (instant - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def carried_rows(
    spark: SparkSession, own: DataFrame, before: DataFrame | None, windows: Sequence[dict[str, Any]], c: dict[str, Any]
) -> DataFrame:
    """Each shift's carried-in rows (see the module docstring): `own` are the range's typed rows with `idx`,
    `before` the bronze-shaped rows before the range's first shift (its previous shift's bronze, or the
    typed edge rows of the lookback), None when there are none."""
    lookback = round(float(c["carry_lookback_s"]) * 1_000_000)
    first = datetime.fromisoformat(windows[0]["start"])
    starts = [micros(datetime.fromisoformat(w["start"])) for w in windows]
    prior = before.where(F.col("source_ts") < F.lit(first)).withColumn("idx", F.lit(-1)) if before is not None else None
    newest_own = _newest_by_line(own, ["line_id", "idx"])
    newest_prior = {k[0]: v for k, v in _newest_by_line(prior, ["line_id"]).items()} if prior is not None else {}
    lines = sorted({k[0] for k in newest_own} | set(newest_prior))
    alive: list[tuple[str, int, int]] = []  # (line, shift idx, lowest idx of the rows it may carry)
    for line in lines:
        newest, floor = newest_prior.get(line), -1
        for k, start in enumerate(starts):
            if newest is None or newest < start - lookback:
                floor, newest = k, newest_own.get((line, k))
                continue
            alive.append((line, k, floor))
            mine = newest_own.get((line, k))
            newest = max(newest, mine) if mine is not None else newest
    if not alive:
        return own.limit(0).drop("idx")
    rows = own.unionByName(prior) if prior is not None else own
    last = Window.partitionBy("line_id", "tag", "idx").orderBy(*[F.col(n).desc() for n in c["sample_order"]])
    lasts = rows.withColumn("_n", F.row_number().over(last)).where(F.col("_n") == 1).drop("_n")
    targets = spark.createDataFrame(alive, "line_id STRING, k INT, floor INT")
    ids = spark.createDataFrame([(i, w["shift_id"]) for i, w in enumerate(windows)], "k INT, _shift STRING")
    newest_first = Window.partitionBy("line_id", "tag", "k").orderBy(F.col("idx").desc())
    return (
        lasts.join(F.broadcast(targets), "line_id")
        .where((F.col("idx") < F.col("k")) & (F.col("idx") >= F.col("floor")))
        .withColumn("_n", F.row_number().over(newest_first))
        .where(F.col("_n") == 1)
        .join(F.broadcast(ids), "k")
        .withColumn("shift_id", F.col("_shift"))
        .withColumn("carried_in", F.lit(True))
        .drop("_n", "k", "floor", "_shift", "idx")
    )


def bronze_frame(
    spark: SparkSession,
    raw: DataFrame,
    before: DataFrame | None,
    windows_df: DataFrame,
    windows: Sequence[dict[str, Any]],
    c: dict[str, Any],
) -> tuple[DataFrame, DataFrame]:
    """Bronze `samples` of the range (own and carried-in rows, contract columns not yet cast) and each
    shift's figures (rows_in, duplicates_removed, not_good_status, carried_in) as a small frame.
    `raw`: the edge rows of the range (any edges; `edge_id` optional)."""
    placed = shift_index(raw, windows_df)
    own = typed(placed, c).cache()
    carried = carried_rows(spark, own, before, windows, c)
    columns = ["shift_id", *EDGE_COLUMNS, "is_good", "carried_in"]
    bronze = own.select(*columns).unionByName(carried.select(*columns))
    rows_in = placed.groupBy("shift_id").agg(F.count("*").alias("rows_in"))
    kept = own.groupBy("shift_id").agg(
        F.count("*").alias("kept"), F.sum((~F.col("is_good")).cast("long")).alias("not_good_status")
    )
    n_carried = carried.groupBy("shift_id").agg(F.count("*").alias("carried_in"))
    stats = (
        windows_df.select("shift_id")
        .join(rows_in, "shift_id", "left")
        .join(kept, "shift_id", "left")
        .join(n_carried, "shift_id", "left")
        .select(
            "shift_id",
            F.coalesce("rows_in", F.lit(0)).alias("rows_in"),
            (F.coalesce("rows_in", F.lit(0)) - F.coalesce("kept", F.lit(0))).alias("duplicates_removed"),
            F.coalesce("not_good_status", F.lit(0)).alias("not_good_status"),
            F.coalesce("carried_in", F.lit(0)).alias("carried_in"),
        )
    )
    return bronze, stats


def lookback_rows(raw: DataFrame, first_start: datetime, previous_shift_id: str, c: dict[str, Any]) -> DataFrame:
    """The typed edge rows of the lookback before the range (`bronze_samples_asset` reads them when the
    previous shift has no bronze), de-duplicated as one shift (the previous one's id)."""
    lookback = timedelta(seconds=float(c["carry_lookback_s"]))
    rows = raw.where((F.col("source_ts") >= F.lit(first_start - lookback)) & (F.col("source_ts") < F.lit(first_start)))
    return typed(rows.withColumn("shift_id", F.lit(previous_shift_id)), c)
