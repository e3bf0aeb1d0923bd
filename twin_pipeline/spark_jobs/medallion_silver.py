"""Silver in Spark, for every shift of a range at once: `state_intervals` (with the silences of
`twin_pipeline/lib/quality/silences.py` and the collector's gaps), `part_counts` and `part_measurements`, as
`twin_pipeline/lib/transforms/{states,counters,spc}.py` define them (those are the definition; this is their
copy for the cluster, held to them by tests/twin_pipeline/test_spark_medallion.py and the golden vectors).

Imports only pyspark. `c` is the job's extras (tags, state table, tolerances). Per-line sequential rules
(the state in force, the running periods, consecutive counter samples) are window functions over
(shift, line[, tag]) ordered by the bronze row order; as-of joins are unions ordered by time with
`last(..., ignorenulls)`.
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F

FIRST, STEP, GLITCH, WRAP, RESET = 0, 1, 2, 3, 4
BEFORE = Window.unboundedPreceding


def seconds(later: Column, earlier: Column) -> Column:
    """`later - earlier` in seconds as polars computes it (whole microseconds / 1e6)."""
    return (F.unix_micros(later) - F.unix_micros(earlier)) / F.lit(1e6)


def timestamp_s(column: Column) -> Column:
    """`datetime.timestamp()` as the polars path's Python computes it (microseconds / 1e6, then subtracted)."""
    return F.unix_micros(column).cast("double") / F.lit(1e6)


def as_int32(value: Column) -> Column:
    """`states._changes`: a value outside Int32 (a corrupt sample) becomes -1; else truncated."""
    return F.when((value >= -(2**31)) & (value < 2**31), value.cast("int")).otherwise(F.lit(-1))


def _good(frame: DataFrame, tags: list[str]) -> DataFrame:
    return frame.where(F.col("tag").isin(tags) & F.col("is_good") & F.col("value").isNotNull())


# ---------------------------------------------------------------- silences (quality/silences.py)


def running_periods(samples: DataFrame, windows: DataFrame, c: dict[str, Any]) -> DataFrame:
    """(shift_id, line_id, a, b): where a line claims to run (Execute, at a speed above zero when known)."""
    state_tag, speed_tag = c["tags"]["state"], c["tags"]["speed"]
    order = Window.partitionBy("shift_id", "line_id").orderBy("source_ts", "seq")
    running_so_far = order.rowsBetween(BEFORE, Window.currentRow)
    value = F.col("value")
    truncated = F.when(value >= 0, F.floor(value)).otherwise(F.ceil(value))
    events = (
        _good(samples, [state_tag, speed_tag])
        .join(F.broadcast(windows.select("shift_id", "start", "end")), "shift_id")
        .where(F.col("source_ts") < F.col("end"))
        .withColumn("_state", F.last(F.when(F.col("tag") == state_tag, truncated), True).over(running_so_far))
        .withColumn("_speed", F.last(F.when(F.col("tag") == speed_tag, value), True).over(running_so_far))
        .withColumn(
            "_run",
            F.coalesce(
                (F.col("_state") == float(c["execute"])) & (F.col("_speed").isNull() | (F.col("_speed") > 0)),
                F.lit(False),
            ),
        )
        .withColumn("_was", F.lag("_run", 1, False).over(order))
        .where(F.col("_run") != F.col("_was"))
        .withColumn("at", F.greatest(F.col("source_ts"), F.col("start")))
    )
    turns = Window.partitionBy("shift_id", "line_id").orderBy("source_ts", "seq")
    return (
        events.withColumn("b", F.coalesce(F.lead("at").over(turns), F.col("end")))
        .where(F.col("_run") & (F.col("b") > F.col("at")))
        .select("shift_id", "line_id", F.col("at").alias("a"), "b")
    )


def silences(samples: DataFrame, windows: DataFrame, c: dict[str, Any]) -> DataFrame:
    """(shift_id, line_id, g_start, g_end): steps between a line's signals longer than the limit
    (`silences._silences`): its heartbeat over the shift when it has one, else its own changes while it runs."""
    tags = c["tags"]
    heartbeat = tags["heartbeat"]
    has_beat = (
        samples.where(F.col("tag") == heartbeat).select("shift_id", "line_id").distinct().withColumn("_hb", F.lit(True))
    )
    lines = samples.select("shift_id", "line_id").distinct().join(has_beat, ["shift_id", "line_id"], "left")
    beat_lines = lines.where(F.col("_hb").isNotNull()).select("shift_id", "line_id")
    w = windows.select("shift_id", "start", "end")
    periods = (
        beat_lines.join(F.broadcast(w), "shift_id")
        .select("shift_id", "line_id", F.col("start").alias("a"), F.col("end").alias("b"))
        .unionByName(
            running_periods(
                samples.join(lines.where(F.col("_hb").isNull()), ["shift_id", "line_id"], "left_semi"), windows, c
            )
        )
    )
    own = samples.where(~F.col("carried_in")).join(lines, ["shift_id", "line_id"])
    times = own.where(
        (F.col("_hb").isNotNull() & (F.col("tag") == heartbeat))
        | (F.col("_hb").isNull() & F.col("tag").isin(list(tags["activity"])))
    ).select("shift_id", "line_id", F.col("source_ts").alias("ts"), F.lit(1).alias("kind"))
    # at one instant: a period's end, then the signal, then a period's start (a signal on a bound is outside)
    points = (
        periods.select("shift_id", "line_id", F.col("a").alias("ts"), F.lit(2).alias("kind"))
        .unionByName(periods.select("shift_id", "line_id", F.col("b").alias("ts"), F.lit(0).alias("kind")))
        .unionByName(times)
    )
    order = Window.partitionBy("shift_id", "line_id").orderBy("ts", "kind")
    edges = F.last(F.when(F.col("kind") != 1, F.col("kind")), True).over(order.rowsBetween(BEFORE, Window.currentRow))
    steps = (
        points.withColumn("_open", edges)
        .withColumn("_prev_ts", F.lag("ts").over(order))
        .withColumn("_prev_kind", F.lag("kind").over(order))
        .withColumn("_prev_open", F.lag("_open").over(order))
        # a step of a period: ends at a signal inside it or at its end, starts at its start or a signal inside
        .where(((F.col("kind") == 1) & (F.col("_open") == 2)) | ((F.col("kind") == 0) & (F.col("_prev_open") == 2)))
        .withColumn("seconds", seconds(F.col("ts"), F.col("_prev_ts")))
        .withColumn("inner", (F.col("kind") == 1) & (F.col("_prev_kind") == 1))
    )
    limits = steps.groupBy("shift_id", "line_id").agg(
        F.median(F.when(F.col("inner"), F.col("seconds"))).alias("_median")
    )
    limit = F.greatest(F.lit(float(c["min_gap_s"])), F.lit(float(c["gap_factor"])) * F.coalesce("_median", F.lit(0.0)))
    return (
        steps.join(limits, ["shift_id", "line_id"])
        .where(F.col("seconds") > limit)
        .select("shift_id", "line_id", F.col("_prev_ts").alias("g_start"), F.col("ts").alias("g_end"))
    )


# ---------------------------------------------------------------- state intervals (transforms/states.py)


def _no_order() -> list[Column]:
    """The bronze order columns of a row that is no sample (a shift start, a break bound, an interval start)."""
    return [F.lit(None).cast("timestamp").alias("server_ts"), F.lit(None).cast("long").alias("seq")]


def state_intervals(
    spark: SparkSession, samples: DataFrame, windows: DataFrame, breaks: DataFrame, gaps: DataFrame, c: dict[str, Any]
) -> DataFrame:
    """Silver `state_intervals` of every shift: `samples` the bronze rows of the state, reason and silence tags;
    `gaps` (shift_id, line_id, g_start, g_end) the outages and silences in PLC time."""
    tags = c["tags"]
    key = ["shift_id", "line_id"]
    lines = samples.select(*key).distinct()
    w = windows.select("shift_id", "start", "end")
    order_cols = ["source_ts", "server_ts", "seq"]
    changes = _good(samples, [tags["state"]]).withColumn("v", as_int32(F.col("value")))
    at_start = (
        changes.join(F.broadcast(w), "shift_id")
        .where(F.col("source_ts") <= F.col("start"))
        .groupBy(*key)
        .agg(F.max_by("v", F.struct(*order_cols)).alias("v"))
    )
    start_points = (
        lines.join(F.broadcast(w), "shift_id")
        .join(at_start, key, "left")
        .select(*key, F.col("start").alias("ts"), F.lit(0).alias("k"), *_no_order(), F.struct("v").alias("sv"))
    )
    inside = (
        changes.join(F.broadcast(w), "shift_id")
        .where((F.col("source_ts") > F.col("start")) & (F.col("source_ts") < F.col("end")))
        .select(
            *key, F.col("source_ts").alias("ts"), F.lit(1).alias("k"), "server_ts", "seq", F.struct("v").alias("sv")
        )
    )
    cuts = (
        breaks.select("shift_id", F.explode(F.array("b_start", "b_end")).alias("ts"))
        .join(F.broadcast(w), "shift_id")
        .where((F.col("ts") > F.col("start")) & (F.col("ts") < F.col("end")))
        .select("shift_id", "ts")
        .distinct()
        .join(lines, "shift_id")
        .select(*key, "ts", F.lit(2).alias("k"), *_no_order(), F.lit(None).cast("struct<v:int>").alias("sv"))
    )
    points = start_points.unionByName(inside).unionByName(cuts)
    order = Window.partitionBy(*key).orderBy("ts", "k", "server_ts", "seq")
    pieces = (
        points.withColumn("sv", F.last("sv", True).over(order.rowsBetween(BEFORE, Window.currentRow)))
        .join(F.broadcast(w), "shift_id")
        .withColumn("end_", F.coalesce(F.lead("ts").over(order), F.col("end")))
        .where(F.col("end_") > F.col("ts"))
        .select(*key, F.col("ts").alias("start"), F.col("end_").alias("end"), F.col("sv.v").alias("state"))
    )
    elements = spark.createDataFrame(
        [(int(s), name, element) for s, (name, element) in c["states"].items()],
        "state INT, state_name STRING, time_element STRING",
    )
    pieces = pieces.join(F.broadcast(elements), "state", "left").withColumn(
        "time_element", F.coalesce("time_element", F.lit("unknown"))
    )
    # the stop reason in force at each piece's start (a reason stamped at the start counts)
    reasons = _good(samples, [tags["reason"]]).select(
        *key,
        F.col("source_ts").alias("ts"),
        F.lit(0).alias("k"),
        "server_ts",
        "seq",
        as_int32(F.col("value")).alias("rv"),
    )
    starts = pieces.select(
        *key, F.col("start").alias("ts"), F.lit(1).alias("k"), *_no_order(), F.lit(None).cast("int").alias("rv")
    )
    r_order = Window.partitionBy(*key).orderBy("ts", "k", "server_ts", "seq").rowsBetween(BEFORE, Window.currentRow)
    reason_at = (
        reasons.unionByName(starts)
        .withColumn("rv", F.last("rv", True).over(r_order))
        .where(F.col("k") == 1)
        .select(*key, F.col("ts").alias("start"), F.col("rv").alias("reason_at"))
    )
    p = pieces.join(reason_at, [*key, "start"], "left")
    flagged_gap = (
        p.alias("p")
        .join(
            gaps.alias("g"),
            [
                F.col("p.shift_id") == F.col("g.shift_id"),
                F.col("p.line_id") == F.col("g.line_id"),
                F.col("g.g_start") < F.col("p.end"),
                F.col("g.g_end") > F.col("p.start"),
            ],
            "left_semi",
        )
        .select(*key, "start")
        .withColumn("in_gap", F.lit(True))
    )
    flagged_break = (
        p.alias("p")
        .join(
            breaks.alias("b"),
            [
                F.col("p.shift_id") == F.col("b.shift_id"),
                F.col("b.b_start") <= F.col("p.start"),
                F.col("p.end") <= F.col("b.b_end"),
            ],
            "left_semi",
        )
        .select(*key, "start")
        .withColumn("planned_break", F.lit(True))
    )
    known = F.col("state_name").isNotNull()
    return (
        p.join(flagged_gap, [*key, "start"], "left")
        .join(flagged_break, [*key, "start"], "left")
        .select(
            *key,
            "state",
            "state_name",
            "time_element",
            "start",
            "end",
            (timestamp_s(F.col("end")) - timestamp_s(F.col("start"))).alias("duration_s"),
            F.when(known & (F.col("time_element") != "production"), F.col("reason_at")).alias("stop_reason"),
            F.coalesce("in_gap", F.lit(False)).alias("in_gap"),
            F.coalesce("planned_break", F.lit(False)).alias("planned_break"),
        )
    )


# ---------------------------------------------------------------- part counts (transforms/counters.py)


def part_counts(samples: DataFrame, breaks: DataFrame, c: dict[str, Any]) -> DataFrame:
    """Silver `part_counts` of every shift from the bronze counter and design-speed rows (carried-in values are
    the baseline): increments that survive wraps and restarts, parts in breaks apart, the parts-weighted ideal
    time."""
    tags = c["tags"]
    counters = dict(tags["counters"])
    speed_tag = tags["design_speed"]
    key = ["shift_id", "line_id"]
    lines = samples.select(*key).distinct()
    rate = samples.where(F.col("tag") == speed_tag).groupBy(*key).agg((F.max("value") / 60.0).alias("max_rate"))
    good = _good(samples, list(counters.values()))
    order_cols = ["source_ts", "server_ts", "seq"]
    latest = Window.partitionBy(*key, "tag").orderBy(*[F.col(n).desc() for n in order_cols])
    baseline = (
        good.where(F.col("carried_in")).withColumn("_n", F.row_number().over(latest)).where(F.col("_n") == 1).drop("_n")
    )
    series = baseline.unionByName(good.where(~F.col("carried_in")))
    order = Window.partitionBy(*key, "tag").orderBy(*order_cols)
    cur = F.col("value").cast("long")
    prev = F.col("_prev")
    plausible = F.col("max_rate") * F.col("_dt") * 2 + 10
    kind = (
        F.when(prev.isNull(), FIRST)
        .when(cur >= prev, F.when((cur - prev) > plausible, GLITCH).otherwise(STEP))
        .when(cur + F.lit(int(c["uint32"])) - prev <= plausible, WRAP)
        .otherwise(RESET)
    )
    b = breaks.select("shift_id", "b_start", "b_end")
    pairs = (
        series.withColumn("_prev", F.lag(cur).over(order))
        .withColumn("_dt", F.greatest(seconds(F.col("source_ts"), F.lag("source_ts").over(order)), F.lit(0.0)))
        .join(rate, key, "left")
        .withColumn("max_rate", F.coalesce("max_rate", F.lit(float(c["default_max_rate_per_s"]))))
        .withColumn("kind", kind)
        .alias("s")
        .join(
            F.broadcast(b).alias("b"),
            (F.col("s.shift_id") == F.col("b.shift_id"))
            & (F.col("s.source_ts") >= F.col("b.b_start"))
            & (F.col("s.source_ts") < F.col("b.b_end")),
            "left",
        )
        .select("s.*", (~F.col("s.carried_in") & F.col("b.b_start").isNotNull()).alias("in_break"))
        .withColumn(
            "increment",
            F.when(F.col("kind") == STEP, cur - prev)
            .when(F.col("kind") == WRAP, cur + F.lit(int(c["uint32"])) - prev)
            .when(F.col("kind") == RESET, cur)
            .otherwise(F.lit(0).cast("long")),
        )
    )
    ideal = _ideal_time(
        pairs.where((F.col("tag") == counters["produced"]) & ~F.col("in_break") & (F.col("increment") > 0)),
        samples,
        speed_tag,
    )
    totals = pairs.groupBy(*key, "tag").agg(
        F.sum("increment").alias("total"),
        F.coalesce(F.sum(F.when(F.col("in_break"), F.col("increment"))), F.lit(0).cast("long")).alias("in_breaks"),
        *[
            F.sum((F.col("kind") == k).cast("long")).alias(name)
            for name, k in (("wraps", WRAP), ("resets", RESET), ("glitches", GLITCH))
        ],
    )
    out = lines
    for name, tag in counters.items():
        mine = totals.where(F.col("tag") == tag).select(
            *key,
            F.col("total").alias(name),
            *[F.col(k).alias(f"{name}_{k}") for k in ("wraps", "resets", "glitches")],
            F.col("in_breaks").alias(f"{name}_in_breaks"),
        )
        out = out.join(mine, key, "left")
    filled = [
        F.coalesce(F.col(col), F.lit(0)).cast("long").alias(col)
        for name in counters
        for col in (name, f"{name}_wraps", f"{name}_resets", f"{name}_glitches", f"{name}_in_breaks")
    ]
    return out.select(*key, *filled).join(ideal, key, "left").withColumn("good", F.col("produced") - F.col("defective"))


def _ideal_time(parts: DataFrame, samples: DataFrame, speed_tag: str) -> DataFrame:
    """Per (shift, line), the parts' ideal time: each increment times the cycle time of the design speed in
    force when it was counted (as-of backward, else the first speed after); null when a line has no speed."""
    key = ["shift_id", "line_id"]
    speeds = samples.where((F.col("tag") == speed_tag) & F.col("is_good") & (F.col("value") > 0)).select(
        *key,
        "source_ts",
        F.lit(0).alias("k"),
        "seq",
        (F.lit(60.0) / F.col("value")).alias("cycle_s"),
        F.lit(None).cast("long").alias("increment"),
    )
    made = parts.select(
        *key, "source_ts", F.lit(1).alias("k"), "seq", F.lit(None).cast("double").alias("cycle_s"), "increment"
    )
    order = Window.partitionBy(*key).orderBy("source_ts", "k", "seq").rowsBetween(BEFORE, Window.currentRow)
    # the first speed at or after a part: the last one in reverse time (a running frame: a frame to the
    # partition's end would be recomputed per row)
    reverse = (
        Window.partitionBy(*key)
        .orderBy(F.col("source_ts").desc(), "k", F.col("seq").desc())
        .rowsBetween(BEFORE, Window.currentRow)
    )
    both = (
        speeds.unionByName(made)
        .withColumn("_back", F.last("cycle_s", True).over(order))
        .withColumn("_fwd", F.last("cycle_s", True).over(reverse))
        .where(F.col("k") == 1)
        .withColumn("cycle", F.coalesce("_back", "_fwd"))
    )
    return both.groupBy(*key).agg(
        F.when(F.count(F.when(F.col("cycle").isNull(), 1)) == 0, F.sum(F.col("increment") * F.col("cycle"))).alias(
            "ideal_time_s"
        )
    )


# ---------------------------------------------------------------- part measurements (transforms/spc.py)


def part_measurements(samples: DataFrame, c: dict[str, Any]) -> DataFrame:
    """Silver `part_measurements`: each own deviation sample with the tolerance in force (as-of backward)."""
    deviation_tag, tolerance_tag = c["tags"]["spc"]
    key = ["shift_id", "line_id"]
    good = samples.where(F.col("is_good") & F.col("value").isNotNull())
    parts = good.where((F.col("tag") == deviation_tag) & ~F.col("carried_in")).select(
        *key,
        "source_ts",
        F.lit(1).alias("k"),
        F.col("value").alias("deviation_mm"),
        F.lit(None).cast("double").alias("tol"),
    )
    tolerances = good.where(F.col("tag") == tolerance_tag).select(
        *key,
        "source_ts",
        F.lit(0).alias("k"),
        F.lit(None).cast("double").alias("deviation_mm"),
        F.col("value").alias("tol"),
    )
    order = Window.partitionBy(*key).orderBy("source_ts", "k").rowsBetween(BEFORE, Window.currentRow)
    return (
        parts.unionByName(tolerances)
        .withColumn("tolerance_mm", F.last("tol", True).over(order))
        .where(F.col("k") == 1)
        .select(
            *key,
            F.col("source_ts").alias("measured_ts"),
            "deviation_mm",
            "tolerance_mm",
            (F.abs("deviation_mm") > F.col("tolerance_mm")).alias("out_of_tolerance"),
        )
    )


# ---------------------------------------------------------------- the collectors' gaps, across edges


def _merged(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def _intersected(left: list[tuple[int, int]], right: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out, i, j = [], 0, 0
    while i < len(left) and j < len(right):
        a, b = max(left[i][0], right[j][0]), min(left[i][1], right[j][1])
        if a < b:
            out.append((a, b))
        if left[i][1] < right[j][1]:
            i += 1
        else:
            j += 1
    return out


def line_gaps(
    gap_rows: list[dict[str, Any]], subscribers: set[tuple[str, str]], windows: list[tuple[str, int, int]]
) -> list[tuple[str, str, int, int]]:
    """The outages of each line in each shift, in PLC time (epoch microseconds), across edges.

    The several-edges rule, the polars path's (`twin_pipeline/lib/edge_source.py`, `EdgeSource.gaps`), over the
    run's range: gap records are de-duplicated on `raw_zone.GAP_KEY` (a gap spanning shifts is landed with each);
    the edges that deliver a line are those with the line in their subscriptions manifest (`subscribers`:
    (edge_id, line_id)) or in their gap records; a line is in an outage only where *every* edge delivering it
    is in one of its own (each edge's records united, open-ended ones to the end of time, then intersected
    across the edges); with one edge per line, its records as they are. Each outage is then clipped to each
    shift it overlaps (`edge_source.plc_gaps`). `gap_rows`: dicts with edge_id, line_id, before_us, after_us
    (None when open); `windows`: (shift_id, start_us, end_us). Returns (shift_id, line_id, start_us, end_us)."""
    open_end = 1 << 62
    delivering: dict[str, set[str]] = {}
    for edge, line in subscribers:
        delivering.setdefault(line, set()).add(edge)
    spans: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for row in gap_rows:
        delivering.setdefault(row["line_id"], set()).add(row["edge_id"])
        end = row["after_us"] if row["after_us"] is not None else open_end
        spans.setdefault((row["line_id"], row["edge_id"]), []).append((row["before_us"], end))
    outages: list[tuple[str, int, int]] = []
    for line in sorted({line for line, _ in spans}):
        common: list[tuple[int, int]] | None = None
        for edge in sorted(delivering[line]):
            mine = _merged(spans.get((line, edge), []))
            common = mine if common is None else _intersected(common, mine)
        outages += [(line, a, b) for a, b in common or []]
    return [
        (shift_id, line, max(a, ws), min(b, we))
        for shift_id, ws, we in windows
        for line, a, b in outages
        if a < we and b > ws
    ]
