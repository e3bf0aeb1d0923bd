"""Resources, bound once, chosen by the profile."""

from __future__ import annotations

import dagster as dg

from twin_pipeline.profiles import profile, resources_for


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources=resources_for(profile()))
