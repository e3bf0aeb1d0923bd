"""Asset checks on bronze samples, per shift partition: schema, duplicates, reconciliation with the
edge, completeness, gaps, value ranges and freshness.

(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

from collections.abc import Callable

import dagster as dg
import polars as pl

from edge_collector.schemas import TABLES
from twin_pipeline.defs.check_results import provisional_unless, shift_ids, shift_rows
from twin_pipeline.defs.partitions import BRONZE, CALENDAR, OEE_FIRST, SHIFTS
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.edge_source import plc_gaps
from twin_pipeline.lib.lake_io import is_table, open_table, read_bronze, read_shifts
from twin_pipeline.lib.quality.completeness import (
    OEE_REQUIRED_TAGS,
    Expected,
    MissingTag,
    expected_tags,
    missing_optional,
    missing_required,
)
from twin_pipeline.lib.quality.data_quality import (
    edge_keys,
    key_fingerprint,
    lines_not_caught_up,
    reconcile,
    schema_problems,
)
from twin_pipeline.lib.quality.silences import GAP_FACTOR, HEARTBEAT_TAG, MIN_GAP_S, SILENCE_TAGS, line_silences
from twin_pipeline.lib.quality.value_ranges import out_of_range
from twin_pipeline.lib.settings import profile
from twin_pipeline.lib.transforms.bronze import KEY
from twin_pipeline.resources.lake import LakeResource


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    blocking=True,
    op_tags=OEE_FIRST,
    description="Bronze has exactly the bronze contract's columns and types, and the edge table it was "
    "read from the edge contract's (edge_collector/schemas.py).",
)
def bronze_schema(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    path = table_path(lake.path(), Table.BRONZE_SAMPLES)
    problems = (
        schema_problems(pl.Schema(open_table(path).schema()))
        if is_table(path)
        else ["bronze/samples does not exist: materialize it first"]
    )
    ids = shift_ids(context)
    first, last = CALENDAR.window(ids[0]), CALENDAR.window(ids[-1])
    edge = lake.edge_source().scan("raw_samples", "source_ts", first.start, last.end)
    contract = pl.DataFrame(TABLES["raw_samples"].empty_table()).schema
    actual = edge.drop("edge_id").collect_schema()
    problems += [
        f"edge raw_samples.{c} is {actual.get(c)}, contract says {t}" for c, t in contract.items() if actual.get(c) != t
    ]
    return provisional_unless("bronze_schema", context, lake, not problems, {"problems": "; ".join(problems) or "none"})


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    blocking=True,
    op_tags=OEE_FIRST,
    description="No two rows share (line, tag, source_ts, value): a replay.",
)
def bronze_no_duplicates(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = shift_rows(lake, Table.BRONZE_SAMPLES, context)
    # hashes first (a string key compare per row cost seconds on a range); exact only when two collide
    suspect = rows.height > 0 and rows.select(pl.struct("shift_id", *KEY).hash().n_unique()).item() < rows.height
    dupes = int(rows.select("shift_id", *KEY).is_duplicated().sum()) if suspect else 0
    return provisional_unless(
        "bronze_no_duplicates", context, lake, dupes == 0, {"duplicate_rows": dupes, "rows": rows.height}
    )


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    blocking=True,
    op_tags=OEE_FIRST,
    additional_deps=[dg.AssetKey(["edge", "raw_samples"])],
    description="Reconciliation: bronze holds exactly the distinct (line, tag, source_ts, value) keys the edge holds "
    "for the shift (none lost, none invented; a late edge write makes it fail until re-run).",
)
def bronze_matches_edge(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    bronze = shift_rows(lake, Table.BRONZE_SAMPLES, context)
    ids = shift_ids(context)
    first, last = CALENDAR.window(ids[0]), CALENDAR.window(ids[-1])
    edges = lake.edge_source()
    edge = edges.scan("raw_samples", "source_ts", first.start, last.end)
    edge_fingerprint = key_fingerprint(edge.select(KEY).collect())
    own = bronze.lazy().filter(~pl.col("carried_in")).select("shift_id", *KEY).collect()  # 6 of 13 columns
    missing = extra = 0
    if key_fingerprint(own) != edge_fingerprint:  # the range differs somewhere: find where, shift by shift
        for shift_id in ids:
            m, e = reconcile(edge_keys(edges, CALENDAR.window(shift_id)), own.filter(pl.col("shift_id") == shift_id))
            missing, extra = missing + m, extra + e
    return provisional_unless(
        "bronze_matches_edge",
        context,
        lake,
        missing == 0 and extra == 0,
        {
            "edge_keys": edge_fingerprint[0],
            "bronze_rows": bronze.height,
            "missing_in_bronze": missing,
            "not_at_edge": extra,
        },
    )


def _missing_tags(
    context: dg.AssetCheckExecutionContext,
    lake: LakeResource,
    rule: Callable[[pl.DataFrame, dict[str, Expected]], list[MissingTag]],
) -> list[str]:
    """`rule` over each shift of the check: its bronze against each line's manifest in force at the shift
    end (the manifest is read once for the range)."""
    ids = shift_ids(context)
    manifest, missing = lake.edge_source().manifest(CALENDAR.window(ids[-1]).end), []
    for shift_id in shift_ids(context):
        samples = read_bronze(lake.path(), shift_id)
        lines = sorted(samples.lazy().filter(~pl.col("carried_in")).select("line_id").unique().collect()["line_id"])
        expected = expected_tags(manifest, lines, CALENDAR.window(shift_id).end)
        missing += [f"{shift_id} {m}" for m in rule(samples, expected)]
    return missing


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    blocking=True,
    op_tags=OEE_FIRST,
    additional_deps=[dg.AssetKey(["edge", "subscriptions"])],
    description=f"Completeness of what OEE needs: every line has a value of {', '.join(OEE_REQUIRED_TAGS)} known "
    "in the shift (sent in it or carried over). The expected tags come from the collector's subscriptions "
    "manifest; a missing one says whether the server lacks it, it is not subscribed, or it sent nothing.",
)
def bronze_complete(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    missing = _missing_tags(context, lake, missing_required)
    return provisional_unless(
        "bronze_complete",
        context,
        lake,
        not missing,
        {"missing_tags": "; ".join(missing) or "none", "missing_count": len(missing)},
    )


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    additional_deps=[dg.AssetKey(["edge", "subscriptions"])],
    description="Completeness of the other subscribed tags (a warning: OEE does not need them): every tag of "
    "the line's subscriptions manifest has a value known in the shift; tags the server does not have are "
    "listed.",
)
def bronze_optional_tags(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    missing = _missing_tags(context, lake, missing_optional)
    return dg.AssetCheckResult(
        passed=not missing,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"missing_tags": "; ".join(missing) or "none", "missing_count": len(missing)},
    )


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    additional_deps=[dg.AssetKey(["edge", "gaps"])],
    description=f"Gaps: collector outages recorded in edge/gaps, and silences longer than {GAP_FACTOR:g} "
    f"typical intervals (at least {MIN_GAP_S:g} s) of each line's heartbeat ({HEARTBEAT_TAG}) or, for a line "
    "without one, of its own changes (state, speed, part counter) while it runs.",
)
def bronze_no_gaps(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    ids = shift_ids(context)
    found, gaps = [], lake.edge_source().gaps(CALENDAR.window(ids[0]).start, CALENDAR.window(ids[-1]).end)
    for shift_id in shift_ids(context):
        window = CALENDAR.window(shift_id)
        found += [
            f"{shift_id} {line}: outage {start:%H:%M:%S}-{end:%H:%M:%S} UTC"
            for line, start, end in plc_gaps(gaps, window)
        ]
        samples = read_bronze(lake.path(), shift_id, list(SILENCE_TAGS))  # the same read as silver's gap flag
        found += [
            f"{shift_id} {s.line_id}: {s.signal} silent {s.seconds:.0f} s from {s.start:%H:%M:%S} UTC"
            for s in line_silences(samples, window)
        ]
    return dg.AssetCheckResult(
        passed=not found,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"gaps": "; ".join(found) or "none", "gap_count": len(found)},
    )


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    description="Value ranges from the tag map: PackML states, stop reasons, integer types, booleans, "
    "non-negative times and rates, plausible deviations (twin_pipeline/lib/quality/value_ranges.py).",
)
def bronze_value_ranges(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    rows = shift_rows(lake, Table.BRONZE_SAMPLES, context)
    bad = out_of_range(rows.filter(~pl.col("carried_in")))  # carried rows: checked in their shift
    by_tag = bad.group_by("line_id", "tag").agg(pl.len().alias("n"), pl.col("value").first().alias("example"))
    listed = [
        f"{r['line_id']}/{r['tag']}: {r['n']} (e.g. {r['example']})"
        for r in by_tag.sort("line_id", "tag").iter_rows(named=True)
    ]
    # WARN: what an implausible value does to OEE already shows in gold (unknown state time, counter glitches)
    return dg.AssetCheckResult(
        passed=bad.height == 0,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={"out_of_range": "; ".join(listed) or "none", "out_of_range_rows": bad.height},
    )


@dg.asset_check(
    asset=BRONZE,
    partitions_def=SHIFTS,
    additional_deps=[dg.AssetKey(["edge", "raw_samples"])],
    description="Freshness: the edge already holds samples of every line from after the shift end, so the "
    "shift was complete when bronze read it.",
)
def edge_caught_up(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    behind, edges = [], lake.edge_source()
    for shift_id in shift_ids(context):
        path = table_path(lake.path(), Table.BRONZE_SAMPLES)
        lines = sorted(read_shifts(path, [shift_id], ["line_id"])["line_id"].unique().to_list())
        behind += [f"{shift_id} {line}" for line in lines_not_caught_up(edges, CALENDAR.window(shift_id), lines)]
    return dg.AssetCheckResult(
        passed=not behind,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={
            "not_caught_up": ", ".join(behind) or "none",
            "hint": "re-run the shift once the collector has written past its end",
        },
    )


@dg.definitions
def bronze_checks() -> dg.Definitions:
    """Every check above; in the azure profile bronze reads the landed raw zone, which holds a shift's rows
    only once it is landed, so whether the edge had caught up is checked where it is known: at landing
    (`landing_edge_caught_up`, defs/landing/checks.py)."""
    checks = [c for c in globals().values() if isinstance(c, dg.AssetChecksDefinition)]
    return dg.Definitions(asset_checks=[c for c in checks if not (profile() == "azure" and c is edge_caught_up)])
