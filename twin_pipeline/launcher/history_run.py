"""The seeded history's gold, without a click: once `dagster dev` is up, `twin up` launches one run of
the `shift_oee` job (bronze -> silver -> gold with their checks) over the range of seeded shifts, then
one run of the dimensions, and reports in the banner when the seeded shifts' OEE is in gold (its steps run
first in the run) and when the run is done, each time with the last shift's OEE.

Why a run and not a backfill: a backfill waits for the backfill daemon, which ticks every 30 s
(hard-coded in Dagster), then for the run queue. A run launched through GraphQL is dequeued within
the queue's interval (`dequeue_interval_seconds`, 1 s in the instance `twin up` writes), and every
shift asset has a single-run backfill policy, so one run tagged with the range
(`dagster/asset_partition_range_start`/`_end`) materializes every seeded shift, each partition with
its own materialization, exactly as a single-run backfill would. The run shows under Runs, and the
partitions fill on each asset's page.

Nothing is launched when gold already holds every seeded shift (a second `twin up`), or when there is
nothing seeded. Launcher code: it speaks GraphQL to the webserver and reads gold from the lake.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.lake_io import is_table, read_shifts
from twin_pipeline.lib.location import Location, polars_options
from twin_pipeline.lib.transforms.oee import roll_up

LOCATION = "twin_pipeline"
REPOSITORY = "__repository__"
#: The job of the shift assets (twin_pipeline/defs/automation.py) and the dimensions of the star.
SHIFT_JOB = "shift_oee"
ASSET_JOB = "__ASSET_JOB"
DIMENSIONS = (Table.DIM_SHIFT, Table.DIM_LINE, Table.DIM_DATE)
DONE = {"SUCCESS", "FAILURE", "CANCELED"}

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = """
query Status($runId: ID!) {
  runOrError(runId: $runId) { __typename ... on Run { status } ... on Error { message } }
}"""


class GraphQL(Protocol):
    @property
    def url(self) -> str:
        """The webserver's base URL."""
        ...

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """POST /graphql; returns `data`."""
        ...


def gold_shifts(lake: Path | Location) -> set[str]:
    """The shifts `gold/fact_oee_shift` holds rows of (none when the table does not exist yet)."""
    path = table_path(lake, Table.OEE_SHIFT)
    if not is_table(path):
        return set()
    return set(
        pl.scan_delta(str(path), **polars_options(path)).select("shift_id").unique().collect()["shift_id"].to_list()
    )


def launch_run(ui: GraphQL, job: str, tags: dict[str, str] | None = None, assets: list[list[str]] | None = None) -> str:
    selector: dict[str, Any] = {"repositoryLocationName": LOCATION, "repositoryName": REPOSITORY, "jobName": job}
    if assets:
        selector["assetSelection"] = [{"path": path} for path in assets]
    params = {
        "selector": selector,
        "runConfigData": {},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
    }
    answer = ui.graphql(LAUNCH_RUN, {"params": params})["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise RuntimeError(f"launchRun {job}: {answer}")
    return str(answer["run"]["runId"])


def run_status(ui: GraphQL, run_id: str) -> str:
    answer = ui.graphql(RUN_STATUS, {"runId": run_id}, timeout=10)["runOrError"]
    return str(answer.get("status") or answer.get("message"))


def last_shift_oee(lake: Path | Location, shift_id: str) -> str:
    """`OEE 81.2 % (L1 80.4 %, L2 82.0 %)` of one shift, rolled up over its lines from gold."""
    rows = read_shifts(table_path(lake, Table.OEE_SHIFT), [shift_id])

    def pct(value: float | None) -> str:
        return "n/a" if value is None else f"{100 * value:.1f} %"

    by_line = ", ".join(
        f"{line_id} {pct(roll_up(mine).oee)}"
        for (line_id,), mine in sorted(rows.group_by(["line_id"]), key=lambda g: str(g[0][0]))
    )
    provisional = int(rows["provisional"].sum())
    return f"OEE {pct(roll_up(rows).oee)} ({by_line})" + (f", {provisional} line(s) provisional" if provisional else "")


@dataclass
class HistoryRun:
    """The run that materializes the seeded shifts, polled from `twin up`'s main loop."""

    ui: GraphQL
    lake: Path | Location
    shifts: list[str]
    ui_up: float = field(default_factory=time.monotonic)  # time.monotonic() when the UI answered
    run_id: str | None = None
    dims_run_id: str | None = None
    started: float = field(default_factory=time.monotonic)
    finished_s: float | None = None
    status: str = "not launched"
    oee_s: float | None = None  # seconds from the UI up to every seeded shift's OEE in gold
    _next_poll: float = 0.0

    @property
    def link(self) -> str:
        return f"{self.ui.url}/runs/{self.run_id}"

    def launch(self) -> str:
        """Launch it unless gold already has every seeded shift; returns the banner's line."""
        if not self.shifts:
            return "none seeded"
        span = f"{self.shifts[0]} .. {self.shifts[-1]} ({len(self.shifts)} seeded shifts)"
        if set(self.shifts) <= gold_shifts(self.lake):
            self.status = "SUCCESS"
            return f"{span}: gold done earlier, {last_shift_oee(self.lake, self.shifts[-1])} in {self.shifts[-1]}"
        tags = {
            "dagster/asset_partition_range_start": self.shifts[0],
            "dagster/asset_partition_range_end": self.shifts[-1],
            "twin/launched_by": "twin up: seeded history",
            "dagster/priority": "10",  # the run queue takes it before runs queued at the same time (a user waits)
        }
        self.started = time.monotonic()
        self.run_id = launch_run(self.ui, SHIFT_JOB, tags)
        self.status = "QUEUED"
        return f"{span}: materializing bronze -> silver -> gold now, run {self.link}"

    def _oee_ready(self) -> str | None:
        """The line saying the seeded shifts' OEE is in gold, once, while the run goes on: its OEE steps run
        first (`dagster/priority`), its checks and the other gold tables after."""
        if self.oee_s is not None:
            return None
        try:
            if not set(self.shifts) <= gold_shifts(self.lake):
                return None
        except Exception:  # noqa: BLE001 - gold mid-commit or not readable yet: ask again at the next poll
            return None
        self.oee_s = time.monotonic() - self.ui_up
        try:
            oee = last_shift_oee(self.lake, self.shifts[-1])
        except Exception as exc:  # noqa: BLE001 - a report line must never stop the twin: say what went wrong instead
            oee = f"OEE not readable yet ({exc})"
        return (
            f"history: OEE of {len(self.shifts)} seeded shifts in gold {self.oee_s:.1f} s after the UI came up; "
            f"{self.shifts[-1]}: {oee} (Assets > gold > fact_oee_shift); its checks and the other gold tables "
            "are still running"
        )

    def poll(self, every_s: float = 1.0) -> str | None:
        """Ask for the run's status (at most every `every_s`); returns a line to print once it ended."""
        if self.run_id is None or self.status in DONE or time.monotonic() < self._next_poll:
            return None
        self._next_poll = time.monotonic() + every_s
        try:
            self.status = run_status(self.ui, self.run_id)
        except (OSError, RuntimeError):  # the webserver is busy, restarting or answered an error: ask again later
            return None
        if self.status not in DONE:
            return self._oee_ready() if self.status == "STARTED" else None
        self.finished_s = time.monotonic() - self.started
        if self.status != "SUCCESS":
            return f"history: the seeded shifts' run ended {self.status} after {self.finished_s:.0f} s: {self.link}"
        try:
            self.dims_run_id = launch_run(self.ui, ASSET_JOB, assets=[t.asset_path for t in DIMENSIONS])
        except (OSError, RuntimeError) as exc:
            return f"history: gold ready, but the dimensions' run did not launch ({exc})"
        ready = (
            f"history: gold ready for {len(self.shifts)} shifts {time.monotonic() - self.ui_up:.1f} s after the UI "
            f"came up (run {self.finished_s:.1f} s from launch)"
        )
        try:
            oee = last_shift_oee(self.lake, self.shifts[-1])
            return f"{ready}; {self.shifts[-1]}: {oee} (Assets > gold > fact_oee_shift)"
        except Exception as exc:  # noqa: BLE001 - a report line must never stop the twin: say what went wrong instead
            return f"{ready}; its OEE could not be read from the lake ({exc})"
