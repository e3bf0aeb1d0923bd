"""The semantic model's source parameters from the settings (lib/integrations/powerbi_params.py): the lake
root as the DFS URL Power BI takes, the Databricks SQL warehouse, and errors that say what to set."""

from __future__ import annotations

import pytest

from twin_pipeline.lib.integrations.powerbi_params import SourceSettingsError, changes, dfs_url, source_parameters


@pytest.mark.parametrize(
    ("lake", "env", "url"),
    [
        ("abfss://lake@acct.dfs.core.windows.net/twin/prod", {}, "https://acct.dfs.core.windows.net/lake/twin/prod"),
        ("abfs://lake@acct.blob.core.windows.net/twin", {}, "https://acct.dfs.core.windows.net/lake/twin"),
        ("abfss://lake@acct.dfs.core.windows.net", {}, "https://acct.dfs.core.windows.net/lake"),
        ("az://lake/twin", {"AZURE_STORAGE_ACCOUNT": "acct"}, "https://acct.dfs.core.windows.net/lake/twin"),
        ("az://lake/twin", {"AZURE_STORAGE_ACCOUNT_NAME": "acct2"}, "https://acct2.dfs.core.windows.net/lake/twin"),
        (
            "az://lake",
            {"AZURE_STORAGE_ACCOUNT_URL": "https://acct3.blob.core.windows.net"},
            "https://acct3.dfs.core.windows.net/lake",
        ),
    ],
)
def test_the_lake_root_as_a_dfs_url(lake: str, env: dict[str, str], url: str) -> None:
    assert dfs_url(lake, env) == url
    assert source_parameters(env, lake=lake) == {"SourceKind": "ADLS", "AdlsRoot": url}


@pytest.mark.parametrize(
    ("lake", "env", "says"),
    [
        (
            "/srv/twin/lake",
            {},
            "the lake is the folder /srv/twin/lake on this machine (TWIN_LAKE), which the Power BI "
            "service cannot read: set TWIN_LAKE=abfss://",
        ),
        ("az://lake/twin", {}, "'az://lake/twin' names no storage account: set AZURE_STORAGE_ACCOUNT"),
        (
            "az://lake/twin",
            {"AZURE_STORAGE_ACCOUNT_URL": "http://127.0.0.1:10000/devstoreaccount1"},
            "names no storage account",
        ),
        (
            "az://lake/twin",
            {"AZURE_STORAGE_ACCOUNT": "devstoreaccount1", "AZURE_STORAGE_USE_EMULATOR": "true"},
            "is in the storage emulator",
        ),
        ("abfss://acct.dfs.core.windows.net/twin", {}, "is not abfss://<container>@<account>"),
        ("s3://bucket/twin", {}, "Power BI cannot read the lake 's3://bucket/twin'"),
    ],
)
def test_a_lake_power_bi_cannot_read_is_an_error_saying_what_to_set(lake: str, env: dict[str, str], says: str) -> None:
    with pytest.raises(SourceSettingsError) as error:
        source_parameters(env, lake=lake)
    assert says in str(error.value)


def test_the_databricks_sql_warehouse() -> None:
    env = {
        "TWIN_POWERBI_SOURCE": "Databricks",
        "DATABRICKS_HOST": "https://adb-42.1.azuredatabricks.net/",
        "DATABRICKS_SQL_HTTP_PATH": "/sql/1.0/warehouses/f00d",
    }
    assert source_parameters(env, lake="/not/read") == {
        "SourceKind": "Databricks",
        "DatabricksHost": "adb-42.1.azuredatabricks.net",
        "DatabricksHttpPath": "/sql/1.0/warehouses/f00d",
        "DatabricksCatalog": "industrial_twin",
        "DatabricksSchema": "gold",
    }
    with pytest.raises(SourceSettingsError, match="databricks needs DATABRICKS_HOST and DATABRICKS_SQL_HTTP_PATH"):
        source_parameters({"TWIN_POWERBI_SOURCE": "databricks"})
    with pytest.raises(
        SourceSettingsError, match="TWIN_POWERBI_SOURCE='fabric' is not a source; set adls or databricks"
    ):
        source_parameters({"TWIN_POWERBI_SOURCE": "fabric"})


def test_only_differing_parameters_are_changes_and_a_missing_one_is_an_error() -> None:
    published = {"SourceKind": "ADLS", "AdlsRoot": "https://old", "DatabricksHost": "x"}
    assert changes(published, {"SourceKind": "ADLS", "AdlsRoot": "https://new"}) == {"AdlsRoot": "https://new"}
    assert changes(published, {"SourceKind": "ADLS"}) == {}
    with pytest.raises(
        SourceSettingsError,
        match="the published model has no parameter DatabricksSchema .* publish "
        "powerbi/IndustrialTwin.SemanticModel from git again",
    ):
        changes(published, {"DatabricksSchema": "gold"})
