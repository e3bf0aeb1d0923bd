"""The two Power BI REST calls that set a published semantic model's parameters, and a service
principal's token for them.

Why not dagster-powerbi: its workspace resource triggers and polls refreshes but has no public call for
parameters, and the deploy CLI (`powerbi_params`) must run without Dagster. The token request is the one
dagster-powerbi sends (client credentials for `https://analysis.windows.net/powerbi/api`), so both need
the same service principal and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

API = "https://api.powerbi.com/v1.0/myorg"
LOGIN = "https://login.microsoftonline.com/{tenant}/oauth2/token"
TIMEOUT_S = 60


class PowerBIError(RuntimeError):
    """A Power BI REST call that was refused, with the service's answer and what to check."""


def service_principal_token(tenant_id: str, client_id: str, client_secret: str) -> str:
    """An access token for the Power BI API (client credentials grant)."""
    response = requests.post(
        LOGIN.format(tenant=tenant_id),
        data={
            "grant_type": "client_credentials",
            "resource": "https://analysis.windows.net/powerbi/api",
            "client_id": client_id,
            "client_secret": client_secret,
        },
        timeout=TIMEOUT_S,
    )
    _check(response, "Check POWERBI_TENANT_ID, POWERBI_CLIENT_ID and POWERBI_CLIENT_SECRET.")
    return str(response.json()["access_token"])


@dataclass(frozen=True)
class SemanticModelApi:
    """One published semantic model (dataset) in one workspace (group)."""

    token: str
    workspace_id: str
    dataset_id: str

    @property
    def url(self) -> str:
        return f"{API}/groups/{self.workspace_id}/datasets/{self.dataset_id}"

    def parameters(self) -> dict[str, str]:
        """The model's parameters and their current values ("Datasets - Get Parameters In Group")."""
        response = requests.get(f"{self.url}/parameters", headers=self._headers(), timeout=TIMEOUT_S)
        _check(
            response,
            "Check POWERBI_WORKSPACE_ID and POWERBI_SEMANTIC_MODEL_ID, and that the service "
            "principal is a member of the workspace.",
        )
        return {p["name"]: p.get("currentValue") or "" for p in response.json().get("value", [])}

    def update_parameters(self, values: dict[str, str]) -> None:
        """Set these parameters ("Datasets - Update Parameters In Group"); a refresh applies them."""
        body: dict[str, Any] = {"updateDetails": [{"name": k, "newValue": v} for k, v in values.items()]}
        response = requests.post(
            f"{self.url}/Default.UpdateParameters", json=body, headers=self._headers(), timeout=TIMEOUT_S
        )
        _check(
            response,
            "Only the model's owner may set its parameters: publish the model with this service "
            "principal (fabric-cicd), or let it take the model over (Settings > Take over, or "
            f"POST {self.url}/Default.TakeOver with its token).",
        )

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def _check(response: requests.Response, hint: str) -> None:
    if not response.ok:
        raise PowerBIError(
            f"{response.request.method} {response.url} answered {response.status_code} {response.text[:500]}. {hint}"
        )
