"""The Power BI refresh of the azure profile: the semantic model's asset sits downstream of the gold
tables, and materializing it refreshes the published model through the Power BI REST API.

The service cannot exist here, so the boundary is faked at `requests`' transport (Session.send):
every request (dagster-powerbi's token and refresh, the source parameters' read and update) is recorded
and answered like the service would, and anything else fails the test (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import dagster as dg
import pytest
import requests

from twin_pipeline.defs.resources import resources_for
from twin_pipeline.lib.integrations.semantic_model import load, parameter_values

KEY = dg.AssetKey(["semantic_model", "IndustrialTwin"])
GOLD = [
    "dim_date",
    "dim_line",
    "dim_shift",
    "fact_downtime",
    "fact_losses",
    "fact_oee_shift",
    "fact_quality",
    "fact_reliability",
]
WORKSPACE, DATASET, TENANT, CLIENT, SECRET = "ws-0001", "ds-0002", "tenant-0003", "client-0004", "s3cret&x=1"
SETTINGS = {
    "POWERBI_WORKSPACE_ID": WORKSPACE,
    "POWERBI_SEMANTIC_MODEL_ID": DATASET,
    "POWERBI_TENANT_ID": TENANT,
    "POWERBI_CLIENT_ID": CLIENT,
    "POWERBI_CLIENT_SECRET": SECRET,
}
MODEL = f"https://api.powerbi.com/v1.0/myorg/groups/{WORKSPACE}/datasets/{DATASET}"
REFRESHES, PARAMETERS, UPDATE = f"{MODEL}/refreshes", f"{MODEL}/parameters", f"{MODEL}/Default.UpdateParameters"
LOGIN = f"https://login.microsoftonline.com/{TENANT}/oauth2/token"
LAKE = "abfss://lake@plantlake.dfs.core.windows.net/twin"
#: The parameters as published from git: the current values of expressions.tmdl.
PUBLISHED = parameter_values(load())


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Callable[[dict[str, str]], None]:
    """The azure profile (loading connects to nothing, so the storage URL is never used) with the given
    Power BI settings and no others."""
    for var in (
        *SETTINGS,
        "DATABRICKS_HOST",
        "TWIN_OEE_ENGINE",
        "TWIN_POWERBI_SOURCE",
        "DATABRICKS_SQL_HTTP_PATH",
        "TWIN_UC_CATALOG",
        "TWIN_UC_SCHEMA",
        "AZURE_STORAGE_ACCOUNT",
        "AZURE_STORAGE_USE_EMULATOR",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TWIN_PROFILE", "azure")
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "twin"))
    monkeypatch.setenv("TWIN_LAKE", LAKE)
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "http://127.0.0.1:9/devstoreaccount1")

    def configure(settings: dict[str, str]) -> None:
        for var, value in settings.items():
            monkeypatch.setenv(var, value)

    return configure


class FakePowerBI:
    """Answers the token endpoint, the model's parameters and its refreshes; `statuses` are what the
    polls see, `published` the model's parameters (updated by UpdateParameters, as the service does)."""

    def __init__(self, statuses: list[dict]) -> None:
        self.statuses = statuses
        self.published = dict(PUBLISHED)
        self.sent: list[requests.PreparedRequest] = []
        self.refuse_update = False

    def send(self, session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.sent.append(request)
        if request.url == LOGIN and request.method == "POST":
            return self._answer(request, 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "tok-1"})
        if request.url == PARAMETERS and request.method == "GET":
            value = [
                {"name": k, "type": "Text", "isRequired": True, "currentValue": v} for k, v in self.published.items()
            ]
            return self._answer(request, 200, {"value": value})
        if request.url == UPDATE and request.method == "POST":
            if self.refuse_update:
                return self._answer(request, 403, {"error": {"code": "PowerBINotAuthorizedException"}})
            self.published.update({d["name"]: d["newValue"] for d in json.loads(request.body)["updateDetails"]})
            return self._answer(request, 200, None)
        if request.url == REFRESHES and request.method == "POST":
            return self._answer(request, 202, None)
        if request.url == REFRESHES and request.method == "GET":
            return self._answer(request, 200, {"value": [self.statuses.pop(0)]})
        raise AssertionError(f"unexpected request {request.method} {request.url}")

    @staticmethod
    def _answer(request: requests.PreparedRequest, status: int, body: dict | None) -> requests.Response:
        response = requests.Response()
        response.status_code, response.url, response.request = status, request.url or "", request
        response._content = json.dumps(body).encode() if body is not None else b""
        response.headers["Content-Type"] = "application/json"
        return response


@pytest.fixture
def service(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[dict]], FakePowerBI]]:
    import dagster_powerbi.resource

    sleeps: list[float] = []
    monkeypatch.setattr(
        dagster_powerbi.resource, "time", SimpleNamespace(sleep=sleeps.append, monotonic=__import__("time").monotonic)
    )

    def start(statuses: list[dict]) -> FakePowerBI:
        fake = FakePowerBI(statuses)
        monkeypatch.setattr(requests.Session, "send", lambda session, request, **kw: fake.send(session, request, **kw))
        fake.sleeps = sleeps
        return fake

    yield start


def _load() -> tuple[dg.Definitions, dg.AssetsDefinition]:
    from twin_pipeline.definitions import defs

    loaded = defs()
    return loaded, loaded.resolve_assets_def(KEY)


def test_the_semantic_model_is_downstream_of_exactly_the_gold_tables(azure) -> None:
    azure(SETTINGS)
    loaded, _ = _load()
    graph = loaded.resolve_asset_graph()
    node = graph.get(KEY)
    assert sorted(p.to_user_string() for p in node.parent_keys) == [f"gold/{t}" for t in GOLD]
    assert node.group_name == "powerbi" and set(node.kinds) == {"powerbi", "semantic_model"}
    assert node.automation_condition is not None and node.automation_condition.get_label() == "after the gold tables"
    spec = next(s for s in loaded.resolve_all_asset_specs() if s.key == KEY)
    assert spec.metadata["dagster-powerbi/id"] == DATASET
    assert spec.tags["dagster-powerbi/asset_type"] == "semantic_model"
    # not part of the shift job: the shift job is partitioned, the model is refreshed as a whole
    assert KEY not in loaded.resolve_job_def("shift_oee").asset_layer.executable_asset_keys


def test_it_is_requested_once_after_gold_changes(azure) -> None:
    """The automation sensor asks for one refresh after the gold tables of a shift were written, not
    before and not again until they change again."""
    azure(SETTINGS)
    loaded, _ = _load()
    selection = dg.AssetSelection.assets(KEY)
    with dg.instance_for_test() as instance:
        tick = dg.evaluate_automation_conditions(defs=loaded, instance=instance, asset_selection=selection)
        assert tick.total_requested == 0
        for table in ("fact_oee_shift", "fact_downtime"):
            instance.report_runless_asset_event(dg.AssetMaterialization(["gold", table], partition="2026-11-24-0600"))
        tick = dg.evaluate_automation_conditions(
            defs=loaded, instance=instance, asset_selection=selection, cursor=tick.cursor
        )
        assert tick.total_requested == 1 and tick.get_requested_partitions(KEY) == {None}
        tick = dg.evaluate_automation_conditions(
            defs=loaded, instance=instance, asset_selection=selection, cursor=tick.cursor
        )
        assert tick.total_requested == 0


def test_materializing_it_sets_the_source_parameters_then_refreshes_the_published_model(azure, service) -> None:
    azure(SETTINGS)
    fake = service([{"status": "Unknown"}, {"status": "Completed", "refreshType": "ViaApi"}])
    _, asset = _load()
    result = dg.materialize([asset])  # bound to the profile's power_bi resource
    assert result.success
    token, read, update, trigger, *polls = fake.sent
    assert (token.method, token.url) == ("POST", LOGIN)
    assert token.body == (
        "grant_type=client_credentials&resource=https://analysis.windows.net/powerbi/api"
        f"&client_id={CLIENT}&client_secret={SECRET}"
    )
    assert (read.method, read.url, read.headers["Authorization"]) == ("GET", PARAMETERS, "Bearer tok-1")
    assert (update.method, update.url, update.headers["Authorization"]) == ("POST", UPDATE, "Bearer tok-1")
    assert json.loads(update.body) == {
        "updateDetails": [
            {"name": "SourceKind", "newValue": "ADLS"},
            {"name": "AdlsRoot", "newValue": "https://plantlake.dfs.core.windows.net/lake/twin"},
        ]
    }
    assert (trigger.method, trigger.url) == ("POST", REFRESHES)
    assert json.loads(trigger.body) == {"notifyOption": "NoNotification"}
    assert trigger.headers["Authorization"] == "Bearer tok-1"
    assert [(p.method, p.url) for p in polls] == [("GET", REFRESHES)] * 2
    assert fake.sleeps == [10, 10]  # the poll interval of twin_pipeline/lib/integrations/powerbi.py
    (materialization,) = result.asset_materializations_for_node("semantic_model_IndustrialTwin")
    assert materialization.metadata["dataset_id"].value == DATASET
    assert materialization.metadata["source"].value == "ADLS"
    assert materialization.metadata["parameters_set"].value == {
        "SourceKind": "ADLS",
        "AdlsRoot": "https://plantlake.dfs.core.windows.net/lake/twin",
    }
    assert materialization.metadata["parameters_unchanged"].value == {}


def test_a_databricks_source_sends_only_what_differs_and_nothing_once_set(azure, service) -> None:
    """The published model already reads Databricks on this host: only the HTTP path and the catalog
    are sent; the next refresh finds them set and sends no update."""
    azure(
        {
            **SETTINGS,
            "TWIN_POWERBI_SOURCE": "databricks",
            "DATABRICKS_HOST": f"https://{PUBLISHED['DatabricksHost']}/",
            "DATABRICKS_SQL_HTTP_PATH": "/sql/1.0/warehouses/f00d",
            "TWIN_UC_CATALOG": "plant_a",
            "TWIN_OEE_ENGINE": "polars",
        }
    )  # the SQL warehouse only: OEE stays in this process
    fake = service([{"status": "Completed"}, {"status": "Completed"}])
    _, asset = _load()
    first = dg.materialize([asset])
    assert [(r.method, r.url) for r in fake.sent] == [
        ("POST", LOGIN),
        ("GET", PARAMETERS),
        ("POST", UPDATE),
        ("POST", REFRESHES),
        ("GET", REFRESHES),
    ]
    assert json.loads(fake.sent[2].body) == {
        "updateDetails": [
            {"name": "DatabricksHttpPath", "newValue": "/sql/1.0/warehouses/f00d"},
            {"name": "DatabricksCatalog", "newValue": "plant_a"},
        ]
    }
    (materialization,) = first.asset_materializations_for_node("semantic_model_IndustrialTwin")
    assert materialization.metadata["parameters_unchanged"].value == {
        "SourceKind": "Databricks",
        "DatabricksHost": PUBLISHED["DatabricksHost"],
        "DatabricksSchema": "gold",
    }
    fake.sent.clear()
    assert dg.materialize([asset]).success
    assert [(r.method, r.url) for r in fake.sent] == [
        ("POST", LOGIN),
        ("GET", PARAMETERS),
        ("POST", REFRESHES),
        ("GET", REFRESHES),
    ]


def test_a_lake_on_this_machine_fails_before_any_request(azure, service, monkeypatch) -> None:
    azure(SETTINGS)
    monkeypatch.delenv("TWIN_LAKE")
    fake = service([])
    _, asset = _load()
    result = dg.materialize([asset], raise_on_error=False)
    assert not result.success and fake.sent == []
    message = result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "cannot set its source parameters: the lake is the folder" in message
    assert "set TWIN_LAKE=abfss://<container>@<account>.dfs.core.windows.net/<path>" in message
    assert "TWIN_POWERBI_SOURCE=databricks" in message


def test_a_refused_parameter_update_fails_with_what_to_do_and_no_refresh(azure, service) -> None:
    azure(SETTINGS)
    fake = service([])
    fake.refuse_update = True
    _, asset = _load()
    result = dg.materialize([asset], raise_on_error=False)
    assert not result.success and [r.url for r in fake.sent] == [LOGIN, PARAMETERS, UPDATE]
    message = result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert f"POST {UPDATE} answered 403" in message and "Only the model's owner may set its parameters" in message
    assert "Default.TakeOver" in message


def test_the_cli_prints_the_parameters_and_applies_them(azure, service, capsys) -> None:
    from twin_pipeline.lib.integrations.powerbi_params import main

    azure(SETTINGS)
    fake = service([])
    assert main([]) == 0 and fake.sent == []
    wanted = {"SourceKind": "ADLS", "AdlsRoot": "https://plantlake.dfs.core.windows.net/lake/twin"}
    assert json.loads(capsys.readouterr().out) == wanted
    assert main(["--apply"]) == 0
    assert json.loads(capsys.readouterr().out) == {"sent": wanted, "unchanged": {}}
    token, read, update = fake.sent
    assert (token.url, read.url, update.url) == (LOGIN, PARAMETERS, UPDATE)
    assert json.loads(update.body) == {"updateDetails": [{"name": k, "newValue": v} for k, v in wanted.items()]}
    assert main(["--apply"]) == 0 and [r.url for r in fake.sent[3:]] == [LOGIN, PARAMETERS]  # nothing differs now
    assert json.loads(capsys.readouterr().out) == {"sent": {}, "unchanged": wanted}


def test_a_failed_refresh_fails_the_materialization_and_says_why(azure, service) -> None:
    azure(SETTINGS)
    error = '{"errorCode":"ModelRefreshFailed_CredentialsNotSpecified"}'
    service([{"status": "Failed", "serviceExceptionJson": error}])
    _, asset = _load()
    result = dg.materialize([asset], raise_on_error=False)
    assert not result.success
    (failure,) = result.get_step_failure_events()
    message = failure.step_failure_data.user_failure_data.description
    assert message.startswith(
        f"Power BI refresh of semantic model IndustrialTwin (dataset {DATASET} in workspace "
        f"{WORKSPACE}) failed: Refresh failed: {error}. The published model keeps its previous data"
    )
    assert f"https://app.powerbi.com/groups/{WORKSPACE}/datasets/{DATASET}" in message


def test_a_refused_token_fails_with_what_to_check(azure, service) -> None:
    azure(SETTINGS)
    fake = service([])

    def refuse(session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        fake.sent.append(request)
        return FakePowerBI._answer(request, 401, {"error": "invalid_client"})

    import unittest.mock

    _, asset = _load()
    with unittest.mock.patch.object(requests.Session, "send", refuse):
        result = dg.materialize([asset], raise_on_error=False)
    assert not result.success and len(fake.sent) == 1
    message = result.get_step_failure_events()[0].step_failure_data.user_failure_data.description
    assert "answered 401" in message and "service principal is a member of the workspace" in message


def test_without_power_bi_settings_or_outside_azure_there_is_no_refresh(azure, monkeypatch) -> None:
    from twin_pipeline.definitions import defs

    azure({})
    assert KEY not in defs().resolve_asset_graph().get_all_asset_keys()
    assert "power_bi" not in resources_for("azure")
    azure(SETTINGS)
    monkeypatch.setenv("TWIN_PROFILE", "local")
    assert KEY not in defs().resolve_asset_graph().get_all_asset_keys()
    assert "power_bi" not in resources_for("local")


def test_partial_power_bi_settings_are_an_error_listing_the_missing_ones(azure) -> None:
    azure({"POWERBI_WORKSPACE_ID": WORKSPACE, "POWERBI_CLIENT_SECRET": SECRET})
    expected = (
        "the Power BI refresh needs all of its settings or none; missing POWERBI_SEMANTIC_MODEL_ID, "
        "POWERBI_TENANT_ID, POWERBI_CLIENT_ID"
    )
    with pytest.raises(ValueError, match=expected):
        resources_for("azure")
    from twin_pipeline.definitions import defs

    with pytest.raises(Exception) as loading:
        defs()
    assert expected in "".join(str(e) for e in _chain(loading.value))


def _chain(error: BaseException | None) -> Iterator[BaseException]:
    while error is not None:
        yield error
        error = error.__cause__ or error.__context__
