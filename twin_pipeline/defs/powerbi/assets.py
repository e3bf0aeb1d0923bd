"""The Power BI semantic model (azure profile, when the Power BI settings are there): an asset
downstream of the gold tables it imports, refreshed in the service after they change. Each refresh first
sets the model's source parameters from the settings (`lib/integrations/powerbi_params.py`), so the
published model reads the lake (or the SQL warehouse) this deployment writes.

The asset is built from the PBIP project in git (`powerbi/`), not from the Power BI API, so the
definitions load offline: its dependencies are the gold tables named by the model's partitions.
(No `from __future__ import annotations` here: Dagster inspects the context annotation at run time.)
"""

import time

import dagster as dg
import requests

from twin_pipeline.lib.integrations.powerbi import PowerBISettings, powerbi_settings
from twin_pipeline.lib.integrations.powerbi_params import SourceSettingsError, apply, source_parameters
from twin_pipeline.lib.integrations.powerbi_rest import PowerBIError, SemanticModelApi
from twin_pipeline.lib.settings import profile
from twin_pipeline.lib.integrations.semantic_model import DEFINITION_DIR, MODEL_NAME, load

KEY = dg.AssetKey(["semantic_model", MODEL_NAME])
#: Refresh once the gold tables changed and none of them is still being written: the shift job
#: writes several, the dimensions refresh daily; one refresh after each.
AFTER_GOLD = (dg.AutomationCondition.any_deps_updated().since_last_handled()
              & ~dg.AutomationCondition.any_deps_in_progress()
              & ~dg.AutomationCondition.in_progress()).with_label("after the gold tables")


def model_url(settings: PowerBISettings) -> str:
    return f"https://app.powerbi.com/groups/{settings.workspace_id}/datasets/{settings.semantic_model_id}"


def semantic_model_spec(settings: PowerBISettings) -> dg.AssetSpec:
    """The semantic model as dagster-powerbi would key and tag it, with the PBIP's gold tables as deps."""
    from dagster_powerbi.translator import PowerBIMetadataSet, PowerBITagSet

    model = load(DEFINITION_DIR)
    return dg.AssetSpec(
        key=KEY, deps=[dg.AssetKey(["gold", table]) for table in model.gold_tables()], group_name="powerbi",
        kinds={"powerbi", "semantic_model"}, owners=["team:data"], automation_condition=AFTER_GOLD,
        tags={**PowerBITagSet(asset_type="semantic_model")},
        metadata={**PowerBIMetadataSet(id=settings.semantic_model_id, name=MODEL_NAME, web_url=dg.MetadataValue.url(model_url(settings))),
                  "pbip": dg.MetadataValue.path(str(DEFINITION_DIR.parent))},
        description=f"The {MODEL_NAME} semantic model in Power BI (powerbi/ in git, published with fabric-cicd): "
                    "its source parameters set from the settings (TWIN_POWERBI_SOURCE, TWIN_LAKE, ...), then a "
                    "full refresh of the published model once the gold tables it imports have changed.",
    )


def refresh_asset(settings: PowerBISettings) -> dg.AssetsDefinition:
    spec = semantic_model_spec(settings)

    @dg.multi_asset(specs=[spec], name="semantic_model_" + MODEL_NAME, required_resource_keys={"power_bi"})
    def refresh(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
        where = (f"Power BI refresh of semantic model {MODEL_NAME} (dataset {settings.semantic_model_id} in "
                 f"workspace {settings.workspace_id})")
        started = time.monotonic()
        workspace = context.resources.power_bi
        try:
            wanted = source_parameters()
            api = SemanticModelApi(workspace.credentials.api_token, settings.workspace_id, settings.semantic_model_id)
            applied = apply(api, wanted)
            context.log.info("source parameters sent %s, unchanged %s", applied.sent, applied.unchanged)
            workspace.trigger_and_poll_refresh(settings.semantic_model_id)
        except SourceSettingsError as error:  # the settings do not say where the service can read gold
            raise dg.Failure(description=f"{where}: cannot set its source parameters: {error}") from error
        except PowerBIError as error:  # reading or setting the parameters was refused
            raise dg.Failure(description=f"{where}: {error}") from error
        except dg.Failure as failure:  # refresh failed, timed out or was not accepted
            raise dg.Failure(
                description=f"{where} failed: {failure.description}. The published model keeps its previous data; "
                            f"see its refresh history ({model_url(settings)}), fix the "
                            "cause (often the data source credentials of the model) and materialize this asset again.",
            ) from failure
        except requests.HTTPError as error:  # the token or the REST call was refused
            response = error.response
            raise dg.Failure(
                description=f"{where}: {response.url} answered {response.status_code} "
                            f"{response.text[:500]}. Check POWERBI_TENANT_ID, POWERBI_CLIENT_ID and "
                            "POWERBI_CLIENT_SECRET, and that the service principal is a member of the workspace.",
            ) from error
        seconds = round(time.monotonic() - started, 1)
        context.log.info("%s completed in %.1f s", where, seconds)
        return dg.MaterializeResult(metadata={
            "refresh_seconds": seconds, "dataset_id": settings.semantic_model_id, "source": wanted["SourceKind"],
            "parameters_set": dg.MetadataValue.json(applied.sent),
            "parameters_unchanged": dg.MetadataValue.json(applied.unchanged),
        })

    return refresh


@dg.definitions
def powerbi() -> dg.Definitions:
    if profile() != "azure":
        return dg.Definitions()
    settings = powerbi_settings()
    return dg.Definitions(assets=[refresh_asset(settings)] if settings else [])
