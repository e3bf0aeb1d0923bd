"""dagster-powerbi's workspace resource for the azure profile's refresh.

dagster-powerbi comes with the `cloud` extra, which the local profile (`make run`) does not install; the
code location imports this module in every profile, so the package is imported where it is used.
"""

from __future__ import annotations

import dagster as dg

from twin_pipeline.lib.integrations.powerbi import REFRESH_POLL_S, REFRESH_TIMEOUT_S, PowerBISettings


def powerbi_workspace(settings: PowerBISettings) -> dg.ConfigurableResource:
    """dagster-powerbi's workspace resource with a service principal; the secret stays an EnvVar, so
    it is read at run time and never shown in the UI."""
    from dagster_powerbi import PowerBIServicePrincipal, PowerBIWorkspace

    return PowerBIWorkspace(
        credentials=PowerBIServicePrincipal(
            client_id=settings.client_id, tenant_id=settings.tenant_id, client_secret=dg.EnvVar("POWERBI_CLIENT_SECRET")
        ),
        workspace_id=settings.workspace_id,
        refresh_poll_interval=REFRESH_POLL_S,
        refresh_timeout=REFRESH_TIMEOUT_S,
    )
