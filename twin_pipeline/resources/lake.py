"""The lake as a Dagster resource: where every table of the pipeline lives, and the run's shared reads."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from twin_pipeline.lib import read_cache
from twin_pipeline.lib.settings import DEFAULT_EDGE_ID


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`. For the length of a run, reads of the
    lake are shared between its assets and checks (`twin_pipeline/lib/read_cache.py`): a table is read
    once per run, and not at all after the run wrote it."""

    root: str
    #: The edge lakes, by edge id (`settings.edges()`): each a collector's lake root, its tables under `edge/`.
    edges: dict[str, str] = Field(default_factory=dict)

    def path(self) -> Path:
        return Path(self.root)

    def edge_lakes(self) -> dict[str, Path]:
        """Each edge's lake root by edge id; without `edges`, the lake root itself holds the one edge's tables."""
        if not self.edges:
            return {DEFAULT_EDGE_ID: Path(self.root)}
        return {edge_id: Path(folder) for edge_id, folder in self.edges.items()}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.activate()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.deactivate()
