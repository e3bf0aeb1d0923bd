"""The Dagster instance `twin up` runs (`$TWIN_HOME/dagster/dagster.yaml`): the settings a user gets
without learning Dagster's instance configuration.

- `concurrency.pools.default_limit: 1`: every pool without a limit of its own (set in the UI or with
  `dagster instance concurrency set`) runs one step at a time. The only pool is `delta_local`
  (`POOL`): Delta maintenance of the local lake and the landing upload that reads it, so a vacuum
  never runs beside the upload of the files it is about to remove, and two maintenance runs never
  compact the same table at once.
- `run_retries` for crashes only: a run whose process died (killed, out of memory, the box rebooted
  mid-run) is re-executed from the failed step; an asset that raised is not retried (its error is
  what the user must see). Every asset replaces its shift in one commit, so a retry cannot duplicate.
- `run_queue.dequeue_interval_seconds: 1`: a launched run (the seeded history's, a schedule's) leaves the
  queue within a second instead of Dagster's default five.
- `run_monitoring`: needed for `free_slots_after_run_end_seconds`, which gives back the pool slot of
  a run that ended without releasing it (force-terminated while hung, or its process killed).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import yaml

from twin_pipeline.launcher.dagster_dev import DAGSTER_YAML
from twin_pipeline.lib.settings import DELTA_POOL

#: The Dagster pool of every step that reads or rewrites the local Delta files in bulk (limit 1).
POOL = DELTA_POOL
#: The first line of the file `twin up` writes: the SHA-256 of the rest tells an untouched file (updated
#: by a newer `twin up`) from an edited one (left alone).
HEADER = (
    "# Written by `twin up` (twin_pipeline/launcher/instance.py), sha256 {digest}: "
    "edit freely, an edited file is kept.\n"
)
#: What earlier versions of `twin up` wrote (replaced by the current settings, since nobody edited them).
PREVIOUS = (DAGSTER_YAML,)


@dataclass(frozen=True)
class InstanceSettings:
    pool_limit: int = 1
    max_run_retries: int = 2
    free_slots_after_run_end_s: int = 60
    monitoring_poll_s: int = 30
    dequeue_interval_s: int | None = 1  # None: Dagster's default (5 s); 1 s: a launched run starts sooner


def instance_config(settings: InstanceSettings = InstanceSettings()) -> dict:
    config: dict = {
        "telemetry": {"enabled": False},
        "concurrency": {"pools": {"default_limit": settings.pool_limit}},
        "run_retries": {
            "enabled": True,
            "max_retries": settings.max_run_retries,
            "retry_on_asset_or_op_failure": False,
        },
        "run_monitoring": {
            "enabled": True,
            "poll_interval_seconds": settings.monitoring_poll_s,
            "free_slots_after_run_end_seconds": settings.free_slots_after_run_end_s,
        },
    }
    if settings.dequeue_interval_s is not None:
        config["run_queue"] = {"dequeue_interval_seconds": settings.dequeue_interval_s}
    return config


def instance_yaml(settings: InstanceSettings = InstanceSettings()) -> str:
    body = yaml.safe_dump(instance_config(settings), sort_keys=False)
    return HEADER.format(digest=hashlib.sha256(body.encode()).hexdigest()) + body


def _untouched(text: str) -> bool:
    """Written by `twin up` (this or an earlier version) and not edited since."""
    if text in PREVIOUS:
        return True
    first, _, body = text.partition("\n")
    prefix, _, _ = HEADER.partition("{digest}")
    if not (first + "\n").startswith(prefix):
        return False
    return first[len(prefix) :].split(":")[0] == hashlib.sha256(body.encode()).hexdigest()


def ensure_instance(dagster_home: Path, settings: InstanceSettings = InstanceSettings()) -> str:
    """Write `dagster.yaml` unless the user edited it; returns what happened ("written", "updated" or
    "kept: ..." naming the settings an edited file lacks)."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / "dagster.yaml"
    wanted = instance_yaml(settings)
    if not path.exists():
        path.write_text(wanted)
        return "written"
    text = path.read_text()
    if text == wanted:
        return "unchanged"
    if _untouched(text):
        path.write_text(wanted)
        return "updated"
    have = yaml.safe_load(text) or {}
    missing = [key for key in ("concurrency", "run_retries", "run_monitoring") if key not in have]
    return "kept (edited by hand)" + (
        f"; it lacks {', '.join(missing)}: see twin_pipeline/launcher/instance.py" if missing else ""
    )
