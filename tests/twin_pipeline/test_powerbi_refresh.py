"""The Power BI refresh of the azure profile: the semantic model's asset sits downstream of the gold
tables, and materializing it refreshes the published model through the Power BI REST API.

The service cannot exist here, so the boundary is faked at `requests`' transport (Session.send):
every request dagster-powerbi sends is recorded and answered like the service would, and anything
else fails the test (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import dagster as dg
import pytest
import requests

from twin_pipeline.defs.resources import resources_for

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
REFRESHES = f"https://api.powerbi.com/v1.0/myorg/groups/{WORKSPACE}/datasets/{DATASET}/refreshes"


@pytest.fixture
def azure(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Callable[[dict[str, str]], None]:
    """The azure profile (loading connects to nothing, so the storage URL is never used) with the given
    Power BI settings and no others."""
    for var in (*SETTINGS, "DATABRICKS_HOST", "TWIN_OEE_ENGINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TWIN_PROFILE", "azure")
    monkeypatch.setenv("TWIN_HOME", str(tmp_path / "twin"))
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", "http://127.0.0.1:9/devstoreaccount1")

    def configure(settings: dict[str, str]) -> None:
        for var, value in settings.items():
            monkeypatch.setenv(var, value)

    return configure


class FakePowerBI:
    """Answers the token endpoint and the refreshes endpoint; `statuses` are what the polls see."""

    def __init__(self, statuses: list[dict]) -> None:
        self.statuses = statuses
        self.sent: list[requests.PreparedRequest] = []

    def send(self, session: requests.Session, request: requests.PreparedRequest, **kwargs: object) -> requests.Response:
        self.sent.append(request)
        if request.url == f"https://login.microsoftonline.com/{TENANT}/oauth2/token" and request.method == "POST":
            return self._answer(request, 200, {"token_type": "Bearer", "expires_in": 3599, "access_token": "tok-1"})
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


def test_materializing_it_refreshes_the_published_model(azure, service) -> None:
    azure(SETTINGS)
    fake = service([{"status": "Unknown"}, {"status": "Completed", "refreshType": "ViaApi"}])
    _, asset = _load()
    result = dg.materialize([asset])  # bound to the profile's power_bi resource
    assert result.success
    token, trigger, *polls = fake.sent
    assert (token.method, token.url) == ("POST", f"https://login.microsoftonline.com/{TENANT}/oauth2/token")
    assert token.body == (
        "grant_type=client_credentials&resource=https://analysis.windows.net/powerbi/api"
        f"&client_id={CLIENT}&client_secret={SECRET}"
    )
    assert (trigger.method, trigger.url) == ("POST", REFRESHES)
    assert json.loads(trigger.body) == {"notifyOption": "NoNotification"}
    assert trigger.headers["Authorization"] == "Bearer tok-1"
    assert [(p.method, p.url) for p in polls] == [("GET", REFRESHES)] * 2
    assert fake.sleeps == [10, 10]  # the poll interval of twin_pipeline/lib/integrations/powerbi.py
    (materialization,) = result.asset_materializations_for_node("semantic_model_IndustrialTwin")
    assert materialization.metadata["dataset_id"].value == DATASET


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
