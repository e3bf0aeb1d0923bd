"""Where the pipeline's resources are chosen: `TWIN_PROFILE` (`local` by default).

`local`: the lake on local disk under `$TWIN_HOME/lake`, OEE in polars, no account needed.
The `azure` profile arrives with the cloud issue; asking for it now is a clear error.
"""

from __future__ import annotations

import os
from pathlib import Path

import dagster as dg

PROFILES = ("local",)


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`."""

    root: str

    def path(self) -> Path:
        return Path(self.root)


def profile() -> str:
    name = os.environ.get("TWIN_PROFILE", "local")
    if name not in PROFILES:
        raise ValueError(f"TWIN_PROFILE={name!r} is not available; profiles: {', '.join(PROFILES)} "
                         "(the azure profile comes with the cloud part)")
    return name


def resources_for(name: str) -> dict[str, object]:
    """The resources of a profile, bound once for the whole code location."""
    home = Path(os.environ.get("TWIN_HOME", ".twin")).resolve()
    if name == "local":
        return {"lake": LakeResource(root=str(home / "lake"))}
    raise ValueError(f"unknown profile {name!r}")
