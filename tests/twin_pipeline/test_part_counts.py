"""Silver part counts, computed on whole frames (`counters.part_counts`), equal the scalar rule
(`counters.increments`, pair by pair in Python, as the first implementation did) on generated series:
steps, UInt32 wraps, PLC restarts, glitches, samples in planned breaks, with and without a carried-in
baseline and a design speed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st

from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import BRONZE_SAMPLES, SILVER_PART_COUNTS
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DESIGN_SPEED_TAG, UINT32, increments, part_counts

WINDOW = CALENDAR.window("2026-11-24-0600")  # 05:00-13:00 UTC, breaks inside


def reference(samples: pl.DataFrame) -> pl.DataFrame:
    """The scalar definition: per line and counter, `increments()` over the series after the baseline,
    and over each break's samples after the sample before them."""

    def series(frame: pl.DataFrame, line_id: str, tag: str) -> tuple[list[int], list[float]]:
        rows = frame.filter(
            (pl.col("line_id") == line_id) & (pl.col("tag") == tag) & pl.col("is_good") & pl.col("value").is_not_null()
        ).sort("source_ts")
        return [int(v) for v in rows["value"].to_list()], [t.timestamp() for t in rows["source_ts"].to_list()]

    rows = []
    before, inside = samples.filter(pl.col("carried_in")), samples.filter(~pl.col("carried_in"))
    for line_id in sorted(samples["line_id"].unique().to_list()):
        speed = samples.filter((pl.col("line_id") == line_id) & (pl.col("tag") == DESIGN_SPEED_TAG))
        rate = (float(speed["value"].max()) if speed.height else 1000.0) / 60.0
        row: dict[str, Any] = {"shift_id": WINDOW.shift_id, "line_id": line_id}
        for name, tag in COUNT_TAGS.items():
            base_v, base_s = series(before, line_id, tag)
            values, seconds = series(inside, line_id, tag)
            r = increments(values, seconds, rate, base_v[-1] if base_v else None, base_s[-1] if base_s else None)
            in_breaks = 0
            for b_start, b_end in WINDOW.breaks:
                prior = [(v, t) for v, t in zip(values, seconds) if t < b_start.timestamp()]
                during = [(v, t) for v, t in zip(values, seconds) if b_start.timestamp() <= t < b_end.timestamp()]
                if during:
                    base = prior[-1] if prior else ((base_v[-1], base_s[-1]) if base_v else (None, None))
                    in_breaks += increments(
                        [v for v, _ in during], [t for _, t in during], rate, base[0], base[1]
                    ).total
            row.update(
                {
                    name: r.total,
                    f"{name}_wraps": r.wraps,
                    f"{name}_resets": r.resets,
                    f"{name}_glitches": r.glitches,
                    f"{name}_in_breaks": in_breaks,
                }
            )
        row["good"] = row["produced"] - row["defective"]
        # one design speed here: the ideal time is the parts made outside breaks at its cycle time
        made = row["produced"] - row["produced_in_breaks"]
        row["ideal_time_s"] = made * 60.0 / float(speed["value"][0]) if speed.height and made else None
        rows.append(row)
    return pl.DataFrame(rows, schema=SILVER_PART_COUNTS)


moves = st.tuples(
    st.integers(1, 900),  # seconds since the previous sample
    st.sampled_from(["step", "step", "step", "wrap", "reset", "glitch"]),
    st.integers(0, 50),
)


@st.composite
def bronze(draw: st.DrawFn) -> pl.DataFrame:
    rows: list[dict[str, Any]] = []
    for line_id in draw(st.sampled_from([["L1"], ["L1", "L2"]])):
        speed = draw(st.sampled_from([None, 60.0, 120.0]))
        if speed is not None:
            rows.append(
                {
                    "line_id": line_id,
                    "tag": DESIGN_SPEED_TAG,
                    "t": WINDOW.start - timedelta(hours=3),
                    "value": speed,
                    "carried_in": True,
                }
            )
        for tag in COUNT_TAGS.values():
            value = draw(st.integers(0, UINT32 - 1))
            t = WINDOW.start - timedelta(seconds=draw(st.integers(1, 600)))
            if draw(st.booleans()):  # a carried-in baseline
                rows.append({"line_id": line_id, "tag": tag, "t": t, "value": float(value), "carried_in": True})
            t = WINDOW.start
            for gap, move, size in draw(st.lists(moves, max_size=60)):
                t += timedelta(seconds=gap)
                if t >= WINDOW.end:
                    break
                value = {
                    "step": (value + size) % UINT32,
                    "wrap": (value + UINT32 - 2 + size) % UINT32,
                    "reset": size,
                    "glitch": (value + 10_000_000) % UINT32,
                }[move]
                rows.append({"line_id": line_id, "tag": tag, "t": t, "value": float(value), "carried_in": False})
    frame = pl.DataFrame(
        [
            {
                "shift_id": WINDOW.shift_id,
                "line_id": r["line_id"],
                "tag": r["tag"],
                "source_ts": r["t"],
                "server_ts": r["t"],
                "received_ts": r["t"],
                "value": r["value"],
                "value_text": None,
                "status_code": 0,
                "is_good": True,
                "session_id": "gen",
                "seq": i,
                "carried_in": r["carried_in"],
            }
            for i, r in enumerate(rows)
        ],
        schema=BRONZE_SAMPLES,
    )
    return frame


@settings(max_examples=150, deadline=None)
@given(bronze())
def test_whole_frame_counts_equal_the_scalar_rule(samples: pl.DataFrame) -> None:
    if not samples.height:
        return
    got = part_counts(samples, WINDOW).sort("line_id")
    assert got.to_dicts() == reference(samples).sort("line_id").to_dicts()


def test_the_generator_reaches_every_kind_of_pair() -> None:
    """The property above is only worth something if wraps, resets, glitches and break samples occur."""
    t0 = WINDOW.breaks[0][0]
    rows = [
        ("L1", DESIGN_SPEED_TAG, t0 - timedelta(hours=3), 60.0, True),
        ("L1", COUNT_TAGS["produced"], WINDOW.start - timedelta(seconds=5), float(UINT32 - 3), True),
        ("L1", COUNT_TAGS["produced"], WINDOW.start + timedelta(seconds=10), 5.0, False),  # wrap: 8
        ("L1", COUNT_TAGS["produced"], WINDOW.start + timedelta(seconds=900), 2.0, False),  # reset: 2
        ("L1", COUNT_TAGS["produced"], WINDOW.start + timedelta(seconds=901), 9e6, False),  # glitch
        ("L1", COUNT_TAGS["produced"], t0 + timedelta(seconds=30), 9e6 + 40, False),
    ]  # in a break: 40
    samples = pl.DataFrame(
        [
            {
                "shift_id": WINDOW.shift_id,
                "line_id": line,
                "tag": tag,
                "source_ts": t,
                "server_ts": t,
                "received_ts": t,
                "value": v,
                "value_text": None,
                "status_code": 0,
                "is_good": True,
                "session_id": "x",
                "seq": i,
                "carried_in": c,
            }
            for i, (line, tag, t, v, c) in enumerate(rows)
        ],
        schema=BRONZE_SAMPLES,
    )
    [row] = part_counts(samples, WINDOW).to_dicts()
    assert (
        row["produced"],
        row["produced_wraps"],
        row["produced_resets"],
        row["produced_glitches"],
        row["produced_in_breaks"],
    ) == (8 + 2 + 40, 1, 1, 1, 40)
    assert row == reference(samples).to_dicts()[0]
