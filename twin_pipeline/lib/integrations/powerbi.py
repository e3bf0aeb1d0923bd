"""The Power BI service of the azure profile: its settings (all of them or none). The workspace resource
that refreshes the published semantic model is `defs/powerbi/resource.py`.

Why all or none: without any setting the azure profile simply has no Power BI step; with some but
not all, the operator meant to configure it and a silent skip would hide the mistake.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from twin_pipeline.lib.settings import POWERBI_SETTINGS

#: How often the refresh is polled, and how long it may take (dagster-powerbi's default, 300 s, is
#: too short for a real model; a refresh that takes longer fails the step, not the refresh).
REFRESH_POLL_S = 10
REFRESH_TIMEOUT_S = 2 * 60 * 60


@dataclass(frozen=True)
class PowerBISettings:
    workspace_id: str
    semantic_model_id: str
    tenant_id: str
    client_id: str


def powerbi_settings() -> PowerBISettings | None:
    """The Power BI settings from the environment; None when none is set, an error listing the
    missing ones when only some are."""
    present = {var: os.environ.get(var, "") for var, _ in POWERBI_SETTINGS}
    if not any(present.values()):
        return None
    missing = [var for var, value in present.items() if not value]
    if missing:
        listed = "\n".join(f"  {var}: {what}" for var, what in POWERBI_SETTINGS)
        raise ValueError(f"the Power BI refresh needs all of its settings or none; missing {', '.join(missing)} "
                         f"(in the environment, or in .env beside workspace.yaml):\n{listed}")
    return PowerBISettings(present["POWERBI_WORKSPACE_ID"], present["POWERBI_SEMANTIC_MODEL_ID"],
                           present["POWERBI_TENANT_ID"], present["POWERBI_CLIENT_ID"])
