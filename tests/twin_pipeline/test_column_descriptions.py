"""Every column of every table contract (edge, bronze, silver, gold) has a description ending with its
unit in brackets, no description names a column the contract lacks, and the asset specs carry them."""

from __future__ import annotations

import re

import pytest

from edge_collector.column_descriptions import DESCRIPTIONS as EDGE_DESCRIPTIONS
from edge_collector.schemas import TABLES as EDGE_TABLES
from twin_pipeline.lib.column_descriptions import DESCRIPTIONS, describe
from twin_pipeline.lib.contracts import TABLES

UNIT = re.compile(r"\S.{10,}\s\[[^\[\]]+\]$")  # some words, then the unit in brackets at the end

CONTRACTS = {
    **{
        f"edge/{name}": ([f.name for f in schema], EDGE_DESCRIPTIONS.get(name, {}))
        for name, schema in EDGE_TABLES.items()
    },
    **{str(key): (list(schema), DESCRIPTIONS.get(key, {})) for key, schema in TABLES.items()},
}


@pytest.mark.parametrize("table", sorted(CONTRACTS))
def test_every_column_has_a_description_with_its_unit(table: str) -> None:
    columns, described = CONTRACTS[table]
    missing = [c for c in columns if not described.get(c, "").strip()]
    assert not missing, f"{table}: columns without a description: {missing}"
    assert [c for c in described if c not in columns] == [], f"{table}: descriptions of columns not in the contract"
    no_unit = {c: d for c, d in described.items() if not UNIT.match(d)}
    assert not no_unit, f"{table}: a description must end with its unit in brackets: {no_unit}"


def test_a_missing_description_names_the_file_to_edit() -> None:
    with pytest.raises(KeyError, match=r"column_descriptions\.py"):
        describe("gold/fact_oee_shift", "lsl_mm")


def test_the_asset_specs_show_the_descriptions() -> None:
    from twin_pipeline.defs.edge.assets import EDGE_ASSETS
    from twin_pipeline.defs.partitions import column_schema

    oee = {c.name: c.description for c in column_schema("gold/fact_oee_shift").columns}
    assert oee["oee"] == DESCRIPTIONS["gold/fact_oee_shift"]["oee"] and oee["oee"].endswith("[ratio, 1 = 100 %]")
    raw = next(spec for spec in EDGE_ASSETS if spec.key.path == ["edge", "raw_samples"])
    columns = {c.name: c.description for c in raw.metadata["dagster/column_schema"].columns}
    assert columns == EDGE_DESCRIPTIONS["raw_samples"]
