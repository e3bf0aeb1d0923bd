"""Column lineage (twin_pipeline/lib/column_lineage.py): it covers exactly the contracts' columns, every
upstream column exists, an OEE cell traces back to the PackTags it is computed from, and the asset
specs carry it as definition metadata (shown before anything is materialized)."""

from __future__ import annotations

import pytest

from edge_collector.schemas import TABLES as EDGE_TABLES
from twin_pipeline.lib.column_lineage import (
    BRONZE,
    LINEAGE,
    TAGS,
    Dep,
    tag_column,
    tags_of,
    upstream,
)
from twin_pipeline.lib.contracts import TABLES

#: Every column a lineage entry may name: the lake contracts, the edge tables, bronze's per-tag pseudo-columns.
KNOWN: set[Dep] = (
    {(str(key), c) for key, schema in TABLES.items() for c in schema}
    | {(f"edge/{name}", f.name) for name, schema in EDGE_TABLES.items() for f in schema}
    | {(BRONZE, tag_column(tag)) for tag in TAGS}
)


@pytest.mark.parametrize("table", sorted(str(t) for t in TABLES))
def test_lineage_covers_exactly_the_contract_and_names_existing_columns(table: str) -> None:
    lineage = LINEAGE[table]
    contract = set(TABLES[table])
    assert contract - set(lineage) == set(), f"{table}: columns without lineage"
    extra = set(lineage) - contract
    assert extra == ({tag_column(t) for t in TAGS} if table == BRONZE else set()), extra
    unknown = {(c, dep) for c, deps in lineage.items() for dep in deps if dep not in KNOWN}
    assert unknown == set(), f"{table}: lineage names columns no contract has"


def test_an_oee_cell_traces_back_to_the_packtags_it_uses() -> None:
    deps = upstream("gold/fact_oee_shift", "oee")
    assert tags_of(deps) == {
        "Status.StateCurrent",
        "Admin.ProdProcessedCount",
        "Admin.ProdDefectiveCount",
        "Admin.MachDesignSpeed",
    }
    # through silver, down to the edge columns the collector wrote
    assert {("silver/state_intervals", "time_element"), ("silver/part_counts", "produced")} <= deps
    assert {("edge/raw_samples", "value"), ("edge/raw_samples", "tag")} <= deps
    # availability needs no counter, quality no state
    assert tags_of(upstream("gold/fact_oee_shift", "availability")) == {"Status.StateCurrent"}
    assert tags_of(upstream("gold/fact_oee_shift", "quality")) >= {
        "Admin.ProdProcessedCount",
        "Admin.ProdDefectiveCount",
    }
    assert "Status.StateCurrent" not in tags_of(upstream("gold/fact_oee_shift", "quality"))
    assert tags_of(upstream("gold/fact_quality", "cpk")) == {"Quality.LastPartDeviation", "Quality.ToleranceMm"}


def test_a_broken_chain_loses_the_tag() -> None:
    """The traversal follows the mapping: cut silver's state and interval bounds off bronze, and availability no
    longer reaches the state tag."""
    states = {**LINEAGE["silver/state_intervals"], "state": (), "start": (), "end": ()}
    cut = {**LINEAGE, "silver/state_intervals": states}
    assert "Status.StateCurrent" in tags_of(upstream("gold/fact_oee_shift", "availability"))
    assert "Status.StateCurrent" not in tags_of(upstream("gold/fact_oee_shift", "availability", cut))


def test_the_asset_specs_carry_the_lineage_as_definition_metadata() -> None:
    import dagster as dg

    from twin_pipeline.definitions import defs

    graph = (defs() if callable(defs) else defs).get_repository_def().asset_graph
    for key in ("gold/fact_oee_shift", "silver/part_counts", "bronze/samples", "gold/dim_line"):
        lineage = graph.get(dg.AssetKey(key.split("/"))).metadata["dagster/column_lineage"]
        assert isinstance(lineage, dg.TableColumnLineage)
        assert set(lineage.deps_by_column) == set(LINEAGE[key]), key
    oee = graph.get(dg.AssetKey(["gold", "fact_oee_shift"])).metadata["dagster/column_lineage"]
    assert {(d.asset_key.to_user_string(), d.column_name) for d in oee.deps_by_column["produced"]} == {
        ("silver/part_counts", "produced"),
        ("silver/part_counts", "produced_in_breaks"),
    }
    bronze = graph.get(dg.AssetKey(["bronze", "samples"])).metadata["dagster/column_lineage"]
    assert {d.column_name for d in bronze.deps_by_column["value[Admin.ProdProcessedCount]"]} == {"value", "tag"}
