"""The Dagster code location (`workspace.yaml` loads this module): everything under `defs/`."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    # In-process runs: every asset here is a polars step that already uses all cores, and a process per
    # step and check (Dagster's default) costs ~8 s of imports each on a small edge box.
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(executor=dg.in_process_executor),
    )
