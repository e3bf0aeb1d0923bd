"""The semantic model's contract with the gold tables and with its report, as lists of differences
(empty when it holds), so the tests can show exactly what a broken copy reports."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from twin_pipeline.lib.contracts import TABLES
from twin_pipeline.lib.integrations.semantic_model import SemanticModel

#: The one table that is not a gold table: the measures (and the loss waterfall's steps).
MEASURES_TABLE = "_Measures"
#: Polars contract type -> TMDL dataType.
TMDL_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "string",
    pl.Int8: "int64",
    pl.Int16: "int64",
    pl.Int32: "int64",
    pl.Int64: "int64",
    pl.UInt8: "int64",
    pl.UInt16: "int64",
    pl.UInt32: "int64",
    pl.Float32: "double",
    pl.Float64: "double",
    pl.Boolean: "boolean",
    pl.Datetime: "dateTime",
    pl.Date: "dateTime",
}
GOLD: dict[str, pl.Schema] = {key.split("/", 1)[1]: schema for key, schema in TABLES.items() if key.startswith("gold/")}
#: The star: every fact to the shift and line dimensions, the shift dimension to the dates.
RELATIONSHIPS = {
    (fact, key, dim, key)
    for fact in ("fact_oee_shift", "fact_downtime", "fact_quality", "fact_reliability", "fact_losses")
    for key, dim in (("shift_id", "dim_shift"), ("line_id", "dim_line"))
} | {("dim_shift", "local_date", "dim_date", "date")}
PARAMETERS = ("SourceKind", "DatabricksHost", "DatabricksHttpPath", "DatabricksCatalog", "DatabricksSchema", "AdlsRoot")


def tmdl_type(dtype: pl.DataType) -> str:
    return TMDL_TYPES[dtype.base_type()]


def table_differences(model: SemanticModel, contract: dict[str, pl.Schema] = GOLD) -> list[str]:
    """Tables and columns (name, data type) of the model against the gold contract."""
    found = []
    for table in sorted(contract.keys() - model.tables.keys()):
        found.append(f"table {table}: in the contract, not in the model")
    for table in sorted(model.tables.keys() - contract.keys() - {MEASURES_TABLE}):
        found.append(f"table {table}: in the model, not a gold table")
    for table in sorted(contract.keys() & model.tables.keys()):
        columns, schema = model.tables[table].columns, contract[table]
        found += [f"{table}.{c}: in the contract, not in the model" for c in schema if c not in columns]
        found += [f"{table}.{c}: in the model, not in the contract" for c in columns if c not in schema]
        found += [
            f"{table}.{c}: dataType {columns[c].data_type}, the contract's {dtype} is {tmdl_type(dtype)}"
            for c, dtype in schema.items()
            if c in columns and columns[c].data_type != tmdl_type(dtype)
        ]
    return found


def description_problems(model: SemanticModel, descriptions: dict[str, dict[str, str]] | None = None) -> list[str]:
    """Gold columns whose TMDL description is not the contract's (twin_pipeline/lib/column_descriptions.py)."""
    from twin_pipeline.lib.integrations.tmdl_descriptions import gold_descriptions

    found = []
    for table, columns in sorted((descriptions or gold_descriptions()).items()):
        have = model.tables[table].columns if table in model.tables else {}
        found += [
            f"{table}.{c}: TMDL description {have[c].description!r}, the contract says {text!r}"
            for c, text in columns.items()
            if c in have and have[c].description != text
        ]
    return found


def relationship_problems(model: SemanticModel) -> list[str]:
    found = []
    for r in model.relationships:
        for table, column in ((r.from_table, r.from_column), (r.to_table, r.to_column)):
            if table not in model.tables or column not in model.tables[table].columns:
                found.append(f"relationship {r.name}: {table}.{column} does not exist")
        for prop, default in (
            ("fromCardinality", "many"),
            ("toCardinality", "one"),
            ("crossFilteringBehavior", "oneDirection"),
            ("isActive", "true"),
        ):
            if r.properties.get(prop, default) != default:
                found.append(f"relationship {r.name}: {prop} is {r.properties[prop]}, not {default}")
    have = {(r.from_table, r.from_column, r.to_table, r.to_column) for r in model.relationships}
    found += [f"relationship {f}.{fc} -> {t}.{tc} is missing" for f, fc, t, tc in sorted(RELATIONSHIPS - have)]
    found += [f"relationship {f}.{fc} -> {t}.{tc} is not in the star" for f, fc, t, tc in sorted(have - RELATIONSHIPS)]
    return found


def partition_problems(model: SemanticModel) -> list[str]:
    """Every gold table imports itself, in both branches of the source switch, and nothing else does."""
    found = []
    for name, table in sorted(model.tables.items()):
        if name == MEASURES_TABLE:
            if any(p.kind != "calculated" for p in table.partitions):
                found.append(f"{name}: only calculated partitions belong here")
            continue
        if [(p.kind, p.mode) for p in table.partitions] != [("m", "import")]:
            found.append(
                f"{name}: expected one import partition in M, found {[(p.kind, p.mode) for p in table.partitions]}"
            )
            continue
        databricks, adls = model.source_tables(name)
        if databricks != [name]:
            found.append(f"{name}: the Databricks branch reads {databricks}")
        if adls != [name]:
            found.append(f"{name}: the ADLS branch reads {adls}")
        source = table.partitions[0].source
        for needed in (
            'SourceKind = "Databricks"',
            'SourceKind = "ADLS"',
            "Databricks.Catalogs(DatabricksHost, DatabricksHttpPath",
            '{[Name=DatabricksCatalog,Kind="Database"]}[Data]',
            '{[Name=DatabricksSchema,Kind="Schema"]}[Data]',
            "DeltaLake.Table(AzureStorage.DataLake(AdlsRoot",
        ):
            if needed not in source:
                found.append(f"{name}: the partition lacks {needed}")
    return found


_QUALIFIED = re.compile(r"(?:'((?:[^']|'')+)'|\b([A-Za-z_]\w*))\[([^\]]+)\]")
_BARE = re.compile(r"(?<![\w'\]])\[([^\]@][^\]]*)\]")


def measure_reference_problems(model: SemanticModel) -> list[str]:
    """DAX references in the measures: Table[Column or measure] and bare [Measure] must exist."""
    measures = {m for t in model.tables.values() for m in t.measures}
    found = []
    for table in model.tables.values():
        for m in table.measures.values():
            for quoted, bare, field in _QUALIFIED.findall(m.expression):
                target = model.tables.get((quoted or bare).replace("''", "'"))
                if target is None or (field not in target.columns and field not in target.measures):
                    found.append(f"measure {m.name}: {quoted or bare}[{field}] does not exist")
            found += [
                f"measure {m.name}: [{name}] is not a measure"
                for name in _BARE.findall(m.expression)
                if name not in measures
            ]
    return found


def field_references(node: object) -> Iterator[tuple[str, str, str]]:
    """(Column|Measure, table, name) of every field a PBIR visual uses."""
    if isinstance(node, dict):
        for kind in ("Column", "Measure"):
            ref = node.get(kind)
            if isinstance(ref, dict) and "Property" in ref:
                yield kind, ref["Expression"]["SourceRef"]["Entity"], ref["Property"]
        for value in node.values():
            yield from field_references(value)
    elif isinstance(node, list):
        for value in node:
            yield from field_references(value)


def report_problems(report: Path, model: SemanticModel) -> list[str]:
    """Pages listed and present, visuals named as their folders, every field they use in the model."""
    found = []
    pages_dir = report / "definition" / "pages"
    order = json.loads((pages_dir / "pages.json").read_text())["pageOrder"]
    present = sorted(p.name for p in pages_dir.iterdir() if p.is_dir())
    if sorted(order) != present:
        found.append(f"pages.json lists {sorted(order)}, the folder holds {present}")
    for visual_file in sorted(pages_dir.glob("*/visuals/*/visual.json")):
        where = f"{visual_file.parent.parent.parent.name}/{visual_file.parent.name}"
        visual = json.loads(visual_file.read_text())
        if visual.get("name") != visual_file.parent.name:
            found.append(f"{where}: name {visual.get('name')!r} differs from its folder")
        for kind, table, name in field_references(visual):
            fields = (
                model.tables[table].columns
                if table in model.tables and kind == "Column"
                else (model.tables[table].measures if table in model.tables else {})
            )
            if name not in fields:
                found.append(f"{where}: {kind.lower()} {table}[{name}] is not in the model")
    return found
