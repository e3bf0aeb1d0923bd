"""Where the pipeline's resources are chosen: `TWIN_PROFILE` (`local` by default).

`local`: the lake on local disk under `$TWIN_HOME/lake`, OEE in polars, no account needed.
`azure`: the same, plus each shift's raw slice landed in Azure Blob Storage. Settings and secrets
come only from the environment (see `AZURE_SETTINGS`); a missing one is a clear error at load time.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROFILES = ("local", "azure")
#: The environment of the azure profile: (variable, required, what it is).
AZURE_SETTINGS = (
    ("AZURE_STORAGE_ACCOUNT_URL", True, "blob endpoint, e.g. https://<account>.blob.core.windows.net"),
    ("AZURE_STORAGE_ACCOUNT", False, "account name, with AZURE_STORAGE_KEY for shared-key auth"),
    ("AZURE_STORAGE_KEY", False, "account key (secret); without it and a SAS token: DefaultAzureCredential"),
    ("AZURE_STORAGE_SAS_TOKEN", False, "a SAS token (secret) instead of the key"),
    ("TWIN_LANDING_CONTAINER", False, "container of the landing zone (default: landing)"),
)


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`."""

    root: str

    def path(self) -> Path:
        return Path(self.root)


def profile() -> str:
    name = os.environ.get("TWIN_PROFILE", "local")
    if name not in PROFILES:
        raise ValueError(f"TWIN_PROFILE={name!r} is not a profile; set it to one of: {', '.join(PROFILES)}")
    return name


def resources_for(name: str) -> dict[str, object]:
    """The resources of a profile, bound once for the whole code location."""
    home = Path(os.environ.get("TWIN_HOME", ".twin")).resolve()
    lake = LakeResource(root=str(home / "lake"))
    if name == "local":
        return {"lake": lake}
    if name == "azure":
        from twin_pipeline.landing import LandingResource

        missing = [var for var, required, _ in AZURE_SETTINGS if required and not os.environ.get(var)]
        if missing:
            listed = "\n".join(f"  {var}{' (required)' if req else ''}: {what}" for var, req, what in AZURE_SETTINGS)
            raise ValueError(f"TWIN_PROFILE=azure needs {', '.join(missing)} in the environment (or in .env "
                             f"beside workspace.yaml):\n{listed}")
        secret = {var: dg.EnvVar(var) for var in ("AZURE_STORAGE_KEY", "AZURE_STORAGE_SAS_TOKEN") if os.environ.get(var)}
        return {"lake": lake, "landing": LandingResource(
            account_url=os.environ["AZURE_STORAGE_ACCOUNT_URL"],
            account_name=os.environ.get("AZURE_STORAGE_ACCOUNT", ""),
            account_key=secret.get("AZURE_STORAGE_KEY", ""), sas_token=secret.get("AZURE_STORAGE_SAS_TOKEN", ""),
            container=os.environ.get("TWIN_LANDING_CONTAINER", "landing"))}
    raise ValueError(f"unknown profile {name!r}")
