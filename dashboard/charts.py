"""Chart builders (Altair, rendered by Streamlit with Vega-Lite): one look for every page."""

from __future__ import annotations

import altair as alt
import polars as pl

#: What a builder returns: Altair types a layer's `.properties()` as either.
Chart = alt.Chart | alt.LayerChart | alt.FacetChart
#: Axis format of a ratio shown in percent.
PERCENT = ".0%"
PLANT = "plant"
#: One colour per line, distinct for up to ten lines.
LINES = alt.Scale(scheme="tableau10")


def oee_trend(per_line: pl.DataFrame, plant: pl.DataFrame, measure: str = "oee") -> Chart:
    """`measure` per shift: one line per production line (provisional shifts drawn hollow) and the plant's
    ratio of sums dashed on top."""
    tooltip = [
        alt.Tooltip("shift_id:N", title="shift"),
        alt.Tooltip("line_id:N", title="line"),
        alt.Tooltip(f"{measure}:Q", format=".1%"),
        alt.Tooltip("provisional_reason:N", title="provisional"),
    ]
    base = alt.Chart(per_line).encode(
        x=alt.X("shift_start:T", title="shift start"),
        y=alt.Y(f"{measure}:Q", title=measure.upper() if measure == "oee" else measure, axis=alt.Axis(format=PERCENT)),
        color=alt.Color("line_id:N", title="line", scale=LINES),
    )
    lines = base.mark_line(opacity=0.6)
    final = base.transform_filter("!datum.provisional").mark_circle(size=60, opacity=1).encode(tooltip=tooltip)
    provisional = (
        base.transform_filter("datum.provisional")
        .mark_point(size=80, shape="diamond", filled=False, strokeWidth=2)
        .encode(tooltip=tooltip)
    )
    total = (
        alt.Chart(plant)
        .mark_line(color="black", strokeDash=[6, 3], point=True)
        .encode(
            x="shift_start:T",
            y=f"{measure}:Q",
            tooltip=[alt.Tooltip("shift_id:N", title="shift"), alt.Tooltip(f"{measure}:Q", format=".1%", title=PLANT)],
        )
    )
    layers = [lines, final, *([provisional] if per_line["provisional"].any() else []), total]
    return alt.layer(*layers).properties(height=320)  # an empty layer would warn in the browser's console


def waterfall(steps: pl.DataFrame) -> Chart:
    """A waterfall of `steps` (label, kind = total | loss, hours, start, end, in order): totals stand on
    zero, each loss hangs from where the previous step ended."""
    order = steps["label"].to_list()
    bars = (
        alt.Chart(steps)
        .mark_bar()
        .encode(
            x=alt.X(
                "label:N", sort=order, title=None, axis=alt.Axis(labelAngle=-30, labelOverlap=False, labelLimit=160)
            ),
            y=alt.Y("start:Q", title="hours"),
            y2="end:Q",
            color=alt.Color(
                "factor:N",
                title="OEE factor",
                scale=alt.Scale(
                    domain=["time", "availability", "performance", "quality"],
                    range=["#4c78a8", "#e45756", "#f58518", "#b279a2"],
                ),
            ),
            tooltip=[alt.Tooltip("label:N", title="step"), alt.Tooltip("hours:Q", format=",.2f")],
        )
    )
    text = (
        alt.Chart(steps)
        .mark_text(dy=-8)
        .encode(x=alt.X("label:N", sort=order), y="top:Q", text=alt.Text("hours:Q", format=",.1f"))
    )
    return alt.layer(bars, text).properties(height=380)


def pareto(rows: pl.DataFrame, category: str, value: str, title: str) -> Chart:
    """Bars of `value` per `category`, largest first, with the cumulative share as a line (right axis)."""
    order = rows[category].to_list()
    bars = (
        alt.Chart(rows)
        .mark_bar()
        .encode(
            x=alt.X(f"{category}:N", sort=order, title=None),
            y=alt.Y(f"{value}:Q", title=title),
            tooltip=[f"{category}:N", alt.Tooltip(f"{value}:Q", format=",.2f"), "stops:Q"],
        )
    )
    cumulative = (
        alt.Chart(rows)
        .mark_line(point=True, color="#e45756")
        .encode(
            x=alt.X(f"{category}:N", sort=order),
            y=alt.Y("cumulative_share:Q", title="cumulative", axis=alt.Axis(format=PERCENT)),
        )
    )
    return alt.layer(bars, cumulative).resolve_scale(y="independent").properties(height=320)


def spc(parts: pl.DataFrame, limits: dict[str, float | None]) -> Chart:
    """An individuals chart of part deviation over time, with the control limits (process) and the
    tolerance (specification) as rules; out-of-tolerance parts in red."""
    points = (
        alt.Chart(parts)
        .mark_circle(size=8, opacity=0.5)
        .encode(
            x=alt.X("measured_ts:T", title="measured"),
            y=alt.Y("deviation_mm:Q", title="deviation (mm)"),
            color=alt.condition("datum.out_of_tolerance", alt.value("#e45756"), alt.value("#4c78a8")),
            tooltip=["measured_ts:T", alt.Tooltip("deviation_mm:Q", format=".4f")],
        )
    )
    rules = pl.DataFrame(
        [{"limit": name, "mm": value} for name, value in limits.items() if value is not None],
        schema={"limit": pl.String, "mm": pl.Float64},
    )
    lines = (
        alt.Chart(rules)
        .mark_rule(strokeDash=[6, 3])
        .encode(
            y="mm:Q",
            color=alt.Color("limit:N", title="limit", scale=alt.Scale(scheme="dark2")),
            tooltip=["limit:N", alt.Tooltip("mm:Q", format=".4f")],
        )
    )
    return alt.layer(points, lines).properties(height=340)


def per_shift(rows: pl.DataFrame, measures: list[str], title: str, fmt: str = ".2f", bars: bool = False) -> Chart:
    """`measures` (columns) per shift and line, as lines with points (or bars, stacked by line)."""
    long = rows.unpivot(index=["shift_id", "line_id"], on=measures, variable_name="measure", value_name="value")
    base = alt.Chart(long).encode(
        x=alt.X("shift_id:O", title="shift"),
        y=alt.Y("value:Q", title=title, axis=alt.Axis(format=fmt), stack=True if bars else None),
        color=alt.Color("line_id:N", title="line", scale=LINES),
        tooltip=["shift_id:N", "line_id:N", "measure:N", alt.Tooltip("value:Q", format=fmt)],
    )
    if bars:
        return base.mark_bar().properties(height=260)
    return base.mark_line(point=True).encode(strokeDash=alt.StrokeDash("measure:N", title=None)).properties(height=260)


def weibull_plot(points: pl.DataFrame, lines: pl.DataFrame) -> Chart:
    """A Weibull probability plot: ln t against ln(-ln(1 - F)); observed times to failure as points (median
    ranks), each distribution (fitted, injected) a straight line."""
    dots = (
        alt.Chart(points)
        .mark_circle(size=50, color="black")
        .encode(
            x=alt.X("ttf_h:Q", title="time to failure (h, log)", scale=alt.Scale(type="log")),
            y=alt.Y("weibull_y:Q", title="ln(-ln(1 - F))"),
            tooltip=[alt.Tooltip("ttf_h:Q", format=".2f"), alt.Tooltip("median_rank:Q", format=".1%")],
        )
    )
    model = (
        alt.Chart(lines)
        .mark_line()
        .encode(
            x="ttf_h:Q",
            y="weibull_y:Q",
            color=alt.Color("distribution:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400)),
            strokeDash=alt.StrokeDash("distribution:N", title=None, legend=alt.Legend(orient="bottom", labelLimit=400)),
        )
    )
    return alt.layer(model, dots).properties(height=360)
