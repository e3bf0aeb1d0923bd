"""The lake as a Dagster resource: where every table of the pipeline lives, and the run's shared reads."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
from pydantic import Field

from twin_pipeline.lib import read_cache
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.edge_source import EdgeSource, LocalEdges, RawZone, local_lister
from twin_pipeline.lib.integrations.blob_listing import blob_lister
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.settings import DEFAULT_EDGE_ID

CALENDAR = load_calendar()


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`. For the length of a run, reads of the
    lake are shared between its assets and checks (`twin_pipeline/lib/read_cache.py`): a table is read
    once per run, and not at all after the run wrote it."""

    root: str
    #: The edge lakes, by edge id (`settings.edges()`): each a collector's lake root, its tables under `edge/`.
    edges: dict[str, str] = Field(default_factory=dict)

    #: The landed raw zone's root (`az://<landing container>`, or a local folder), set in the azure profile:
    #: then the edge tables are read from there (`lib/edge_source.RawZone`), never from an edge's disk.
    raw_zone: str = ""

    def path(self) -> Location:
        """The lake root: a local folder or an object-store URI (`TWIN_LAKE`)."""
        return Location.of(self.root)

    def edge_source(self) -> EdgeSource:
        """Where this deployment reads the edge tables: the raw zone when one is set, else the edges' disks."""
        if self.raw_zone:
            root = Location.of(self.raw_zone)
            return RawZone(root, CALENDAR, local_lister(root.local) if root.is_local else blob_lister(root))
        return LocalEdges(self.edge_lakes())

    def edge_lakes(self) -> dict[str, Path]:
        """Each edge's lake root by edge id; without `edges`, the lake root itself holds the one edge's tables."""
        if not self.edges:
            return {DEFAULT_EDGE_ID: Path(self.root)}
        return {edge_id: Path(folder) for edge_id, folder in self.edges.items()}

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.activate()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.deactivate()
