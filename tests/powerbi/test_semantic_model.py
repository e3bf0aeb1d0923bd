"""The PBIP project under powerbi/ against the gold contract (twin_pipeline/lib/contracts.py): tables,
columns and types, the star's relationships, the partitions' sources, the measures, the report's
fields. Each check is also run on a broken copy, to show it fails with exactly that difference."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.support.contract import (
    GOLD, MEASURES_TABLE, PARAMETERS, description_problems, measure_reference_problems, partition_problems,
    relationship_problems, report_problems, table_differences,
)
from twin_pipeline.lib.contracts import table_path
from twin_pipeline.lib.integrations.powerbi_params import dfs_url, source_parameters, uc_table
from twin_pipeline.lib.integrations.semantic_model import (
    M_NAVIGATION, PROJECT_DIR, SemanticModel, TmdlError, load, parameter_values, parse,
)

REPORT = PROJECT_DIR / "IndustrialTwin.Report"
#: The measures the report and the issue name.
REQUIRED_MEASURES = (
    "Availability", "Performance", "Quality", "OEE", "Utilisation", "TEEP", "Planned Busy Time (s)",
    "Actual Production Time (s)", "Ideal Production Time (s)", "Availability Loss (s)", "Performance Loss (s)",
    "Quality Loss (s)", "Fully Productive Time (s)", "Loss Waterfall (s)", "Downtime (s)", "Stops", "Microstops",
    "Downtime Share", "Downtime Cumulative Share", "Mean Deviation (mm)", "Sigma (mm)", "Cp", "Cpk", "MTBF (s)",
    "MTTR (s)",
)
PAGES = {"OEE trend", "Loss waterfall", "Downtime Pareto", "SPC"}


@pytest.fixture(scope="module")
def model():
    return load()


@pytest.fixture
def broken(tmp_path: Path):
    """A copy of the project to break: `broken(path, old, new)` edits one file (old must be there once)."""
    copy = tmp_path / "powerbi"
    shutil.copytree(PROJECT_DIR, copy)

    def edit(relative: str, old: str, new: str) -> Path:
        path = copy / relative
        text = path.read_text()
        assert text.count(old) == 1, f"{old!r} is not once in {relative}"
        path.write_text(text.replace(old, new))
        return copy

    return edit


# --- the model against the gold contract ---------------------------------------------------------

def test_every_gold_table_and_column_is_in_the_model_with_its_type(model) -> None:
    assert set(GOLD) == {"fact_oee_shift", "fact_downtime", "fact_quality", "fact_reliability", "fact_losses", "dim_shift",
                         "dim_date", "dim_line"}
    assert table_differences(model) == []
    assert set(model.tables) == set(GOLD) | {MEASURES_TABLE}


def test_a_renamed_column_is_reported_on_both_sides(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/fact_oee_shift.tmdl",
                  "\tcolumn good\n", "\tcolumn good_parts\n")
    assert table_differences(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "fact_oee_shift.good: in the contract, not in the model",
        "fact_oee_shift.good_parts: in the model, not in the contract",
    ]


def test_a_changed_data_type_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/dim_line.tmdl",
                  "\tcolumn design_speed_ppm\n\t\tdataType: double\n", "\tcolumn design_speed_ppm\n\t\tdataType: int64\n")
    assert table_differences(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "dim_line.design_speed_ppm: dataType int64, the contract's Float64 is double"]


def test_a_missing_or_extra_table_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/dim_date.tmdl", "table dim_date\n", "table calendar\n")
    assert table_differences(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "table dim_date: in the contract, not in the model", "table calendar: in the model, not a gold table"]


def test_the_contract_follows_the_schemas_module(model) -> None:
    """A column added to the gold contract (as a pipeline change would) fails until the model has it."""
    import polars as pl

    contract = {**GOLD, "fact_quality": pl.Schema({**GOLD["fact_quality"], "lsl_mm": pl.Float64})}
    assert table_differences(model, contract) == ["fact_quality.lsl_mm: in the contract, not in the model"]


def test_every_gold_column_carries_its_contract_description(model) -> None:
    """The TMDL `///` descriptions are the contract's (twin_pipeline/lib/column_descriptions.py), units included."""
    assert description_problems(model) == []
    assert model.tables["fact_oee_shift"].columns["oee"].description.endswith("[ratio, 1 = 100 %]")


def test_a_stale_description_is_reported_and_the_sync_repairs_it(broken) -> None:
    from twin_pipeline.lib.integrations.tmdl_descriptions import sync

    copy = broken("IndustrialTwin.SemanticModel/definition/tables/dim_line.tmdl",
                  "\t/// Latest quality tolerance of the line (Quality.ToleranceMm) [mm]\n", "\t/// tolerance\n")
    definition = copy / "IndustrialTwin.SemanticModel" / "definition"
    assert description_problems(load(definition)) == [
        "dim_line.tolerance_mm: TMDL description 'tolerance', the contract says "
        "'Latest quality tolerance of the line (Quality.ToleranceMm) [mm]'"]
    assert sync(definition) == [definition / "tables" / "dim_line.tmdl"]
    assert description_problems(load(definition)) == [] and sync(definition) == []


def test_ratio_columns_are_hidden_and_never_summed(model) -> None:
    for table, column in [("fact_oee_shift", c) for c in ("availability", "performance", "quality", "oee")] + [
            ("fact_quality", "cp"), ("fact_quality", "cpk"), ("fact_reliability", "mtbf_s"), ("fact_reliability", "mttr_s")]:
        props = model.tables[table].columns[column].properties
        assert props.get("isHidden") == "true" and props["summarizeBy"] == "none", (table, column)
    for table in GOLD:
        for column in ("shift_id", "line_id"):
            if column in model.tables[table].columns:
                assert model.tables[table].columns[column].properties["summarizeBy"] == "none"


# --- relationships, partitions, parameters -------------------------------------------------------

def test_the_star_relationships_are_many_to_one_single_direction(model) -> None:
    assert relationship_problems(model) == []
    assert len(model.relationships) == 11


def test_a_relationship_to_a_missing_column_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/relationships.tmdl",
                  "\ttoColumn: dim_date.date\n", "\ttoColumn: dim_date.day\n")
    assert relationship_problems(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "relationship dim_shift_dim_date: dim_date.day does not exist",
        "relationship dim_shift.local_date -> dim_date.date is missing",
        "relationship dim_shift.local_date -> dim_date.day is not in the star"]


def test_every_table_imports_itself_from_databricks_and_from_adls(model) -> None:
    assert partition_problems(model) == []
    assert model.gold_tables() == sorted(GOLD)


def test_a_partition_reading_another_table_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/fact_quality.tmdl",
                  '{[Name="fact_quality",Kind="Table"]}', '{[Name="fact_downtime",Kind="Table"]}')
    assert partition_problems(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "fact_quality: the Databricks branch reads ['fact_downtime']"]


def test_the_table_steps_are_what_dagster_powerbi_parses_for_lineage(model) -> None:
    from dagster_powerbi.translator import PARSE_M_QUERY_OBJECT

    assert M_NAVIGATION.pattern == PARSE_M_QUERY_OBJECT.pattern
    source = model.tables["fact_oee_shift"].partitions[0].source
    assert ("fact_oee_shift", "Table") in PARSE_M_QUERY_OBJECT.findall(source)


def test_the_source_parameters_are_required_text_parameters(model) -> None:
    assert set(model.expressions) == set(PARAMETERS)
    for name in PARAMETERS:
        value = model.expressions[name].value or ""
        assert 'meta [IsParameterQuery=true' in value and 'Type="Text"' in value, name
        assert "IsParameterQueryRequired=true" in value and model.expressions[name].description, name
    assert 'List={"Databricks", "ADLS"}' in (model.expressions["SourceKind"].value or "")


# --- the partitions' sources against the lake paths of the gold tables -----------------------------

LAKES = ("abfss://lake@plantlake.dfs.core.windows.net/twin", "az://lake/twin")
DATABRICKS = {"TWIN_POWERBI_SOURCE": "databricks", "DATABRICKS_HOST": "https://adb-42.1.azuredatabricks.net",
              "DATABRICKS_SQL_HTTP_PATH": "/sql/1.0/warehouses/f00d", "TWIN_UC_CATALOG": "plant_a",
              "TWIN_UC_SCHEMA": "gold"}


def source_path_problems(model: SemanticModel, lake: str, env: dict[str, str]) -> list[str]:
    """Each gold table's partition, with the parameters the settings give, reads where the pipeline writes
    that table: the Delta folder `table_path(lake, "gold/<table>")` (ADLS) or its Unity Catalog table."""
    adls = {**parameter_values(model), **source_parameters(env, lake=lake)}
    databricks = {**parameter_values(model), **source_parameters({**env, **DATABRICKS})}
    found = []
    for table in sorted(GOLD):
        expected = dfs_url(str(table_path(lake, f"gold/{table}")), env)
        if (folder := model.adls_folder(table, adls)) != expected:
            found.append(f"{table}: the ADLS branch reads {folder}, the lake has it at {expected}")
        expected = uc_table(DATABRICKS["TWIN_UC_CATALOG"], DATABRICKS["TWIN_UC_SCHEMA"], table)
        if (name := model.databricks_table(table, databricks)) != expected:
            found.append(f"{table}: the Databricks branch reads {name}, the table is {expected}")
    return found


@pytest.mark.parametrize("lake", LAKES)
def test_each_table_reads_the_lake_path_of_its_gold_table(model, lake: str) -> None:
    env = {"AZURE_STORAGE_ACCOUNT": "plantlake"}
    assert source_path_problems(model, lake, env) == []
    assert model.adls_folder("fact_oee_shift", source_parameters(env, lake=lake)) == (
        "https://plantlake.dfs.core.windows.net/lake/twin/gold/fact_oee_shift")


def test_a_broken_source_path_is_reported(broken) -> None:
    broken("IndustrialTwin.SemanticModel/definition/tables/fact_quality.tmdl",
           '"/gold/fact_quality"', '"/gold/fact_qualities"')
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/dim_line.tmdl",
                  '{[Name=DatabricksSchema,Kind="Schema"]}', '{[Name="silver",Kind="Schema"]}')
    model = load(copy / "IndustrialTwin.SemanticModel" / "definition")
    assert source_path_problems(model, LAKES[0], {}) == [
        "dim_line: the Databricks branch reads plant_a.silver.dim_line, the table is plant_a.gold.dim_line",
        "fact_quality: the ADLS branch reads https://plantlake.dfs.core.windows.net/lake/twin/gold/fact_qualities, "
        "the lake has it at https://plantlake.dfs.core.windows.net/lake/twin/gold/fact_quality",
    ]


# --- measures ------------------------------------------------------------------------------------

def test_the_measures_exist_with_a_format_and_a_description(model) -> None:
    measures = model.tables[MEASURES_TABLE].measures
    assert [m for m in REQUIRED_MEASURES if m not in measures] == []
    assert [m.name for m in measures.values() if not m.properties.get("formatString") or not m.description] == []
    assert all(not t.measures for name, t in model.tables.items() if name != MEASURES_TABLE)


def test_ratios_are_ratios_of_sums(model) -> None:
    m = {name: " ".join(x.expression.split()) for name, x in model.tables[MEASURES_TABLE].measures.items()}
    assert m["Availability"] == "DIVIDE([Actual Production Time (s)], [Planned Busy Time (s)])"
    assert m["Ideal Production Time (s)"] == (
        "SUMX(fact_oee_shift, fact_oee_shift[ideal_cycle_time_s] * fact_oee_shift[produced])")
    assert "DIVIDE([Ideal Production Time (s)], [Actual Production Time (s)])" in m["Performance"]
    assert m["Quality"] == "DIVIDE([Good], [Produced])"
    assert m["OEE"] == "[Availability] * [Performance] * [Quality]"
    assert m["TEEP"] == "[OEE] * [Utilisation]"
    assert m["MTBF (s)"] == "DIVIDE(SUM(fact_reliability[production_time_s]), [Failures])"
    for name, expression in m.items():  # the shift's own ratio columns are never aggregated
        for column in ("[availability]", "[performance]", "[quality]", "[oee]", "[cp]", "[cpk]", "[mtbf_s]"):
            assert column not in expression, (name, column)
        assert "AVERAGE" not in expression.upper(), name


def test_measures_reference_only_existing_fields(model) -> None:
    assert measure_reference_problems(model) == []


def test_a_measure_with_a_mistyped_field_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.SemanticModel/definition/tables/_Measures.tmdl",
                  "SUM(fact_oee_shift[good])", "SUM(fact_oee_shift[good_parts])")
    assert measure_reference_problems(load(copy / "IndustrialTwin.SemanticModel" / "definition")) == [
        "measure Good: fact_oee_shift[good_parts] does not exist"]


# --- the report ----------------------------------------------------------------------------------

def test_the_report_binds_to_the_model_and_has_its_pages(model) -> None:
    pbir = json.loads((REPORT / "definition.pbir").read_text())
    assert pbir["datasetReference"] == {"byPath": {"path": "../IndustrialTwin.SemanticModel"}}
    pbip = json.loads((PROJECT_DIR / "IndustrialTwin.pbip").read_text())
    assert [a["report"]["path"] for a in pbip["artifacts"]] == ["IndustrialTwin.Report"]
    pages = {json.loads(p.read_text())["displayName"] for p in REPORT.glob("definition/pages/*/page.json")}
    assert pages == PAGES
    assert report_problems(REPORT, model) == []


def test_every_json_file_names_its_schema() -> None:
    files = [p for p in PROJECT_DIR.rglob("*") if p.suffix in (".json", ".pbir", ".pbism", ".pbip", ".platform")]
    assert len(files) > 20
    for path in files:
        schema = json.loads(path.read_text()).get("$schema", "")
        assert schema.startswith("https://developer.microsoft.com/json-schemas/fabric/"), path


def test_a_visual_using_a_missing_measure_is_reported(broken) -> None:
    copy = broken("IndustrialTwin.Report/definition/pages/spc/visuals/capability_by_shift/visual.json",
                  '"Property": "Cpk Target"', '"Property": "Cpk Goal"')
    assert report_problems(copy / "IndustrialTwin.Report", model=load()) == [
        "spc/capability_by_shift: measure _Measures[Cpk Goal] is not in the model"]


# --- the TMDL reader -----------------------------------------------------------------------------

def test_the_reader_refuses_space_indentation_and_reads_quoted_names() -> None:
    with pytest.raises(TmdlError, match="<tmdl>:2: indented with spaces"):
        parse("table t\n    column c\n")
    (table,) = parse("/// doc\ntable 'it''s'\n\tmeasure 'a b' =\n\t\t\tSUM(t[c])\n\t\tformatString: 0\n")
    assert (table.name, table.description) == ("it's", "doc")
    assert (table.children[0].name, table.children[0].value, table.children[0].properties) == (
        "a b", "SUM(t[c])", {"formatString": "0"})
