"""The lake as a Dagster resource: where every table of the pipeline lives, and the run's shared reads."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from twin_pipeline.lib import read_cache


class LakeResource(dg.ConfigurableResource):
    """The lake root; edge tables live under `<root>/edge/<table>`. For the length of a run, reads of the
    lake are shared between its assets and checks (`twin_pipeline/lib/read_cache.py`): a table is read
    once per run, and not at all after the run wrote it."""

    root: str

    def path(self) -> Path:
        return Path(self.root)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.activate()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        read_cache.deactivate()
