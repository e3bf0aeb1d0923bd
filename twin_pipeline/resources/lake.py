"""The lake as a Dagster resource: where every table of the pipeline lives."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`."""

    root: str

    def path(self) -> Path:
        return Path(self.root)
