"""Dagster as separate services, the way a deployment runs it: one code server (it launches the run
workers), a webserver (GraphQL) and a daemon (run queue, backfills, run retries, monitoring), each
in its own session, on one DAGSTER_HOME. Unlike `dagster dev` (which stops everything when its
daemon dies), the daemon can be killed and restarted while runs go on, and a run worker can be
killed while the rest stays up: the crash tests of O2/O3 need exactly that.

Each service is a `DagsterDev` (tests/support/dagster_dev.py) with another command: same start in its own
session, same stop of the whole group, same check that nothing of it is left.
"""

from __future__ import annotations

import os
import re
import signal
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import free_port
from tests.support.dagster_dev import DagsterDev, DagsterDevError

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LOCATION = "twin_pipeline"


class Webserver(DagsterDev):
    def command(self) -> list[str]:
        return [str(BIN / "dagster-webserver"), "-h", self.host, "-p", str(self.port), "-w", str(self.workspace)]


class Daemon(DagsterDev):
    def command(self) -> list[str]:
        return [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)]


class CodeServer(DagsterDev):
    def command(self) -> list[str]:
        return [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-h",
            self.host,
            "-p",
            str(self.port),
            "-m",
            "twin_pipeline.definitions",
            "--location-name",
            LOCATION,
        ]

    def wait_until_up(self, timeout: float = 120.0) -> dict[str, Any]:
        """Until the code is loaded (the proxy says so); a webserver started before gets UNAVAILABLE."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive("loading the code")
            if "Started Dagster code proxy server" in self.log_text(this_attempt=True):
                self.timings["code_loaded_s"] = time.monotonic() - self._t0
                return {}
            time.sleep(0.2)
        raise DagsterDevError(f"the code server did not load within {timeout:.0f} s; log tail:\n{self.log_tail()}")


@dataclass
class Services:
    """The running services and what the tests need to reach them."""

    web: Webserver
    daemon: Daemon
    code: CodeServer
    dagster_home: Path
    workspace: Path
    env: dict[str, str]
    log_dir: Path
    restarts: int = 0

    _instance: Any = None

    def instance(self):
        from dagster import DagsterInstance
        from dagster._core.instance.ref import InstanceRef

        if self._instance is None:
            self._instance = DagsterInstance.from_ref(InstanceRef.from_dir(str(self.dagster_home)))
        return self._instance

    def kill_daemon(self) -> float:
        """SIGKILL the daemon process (a crash: no shutdown of its threads); returns when it died."""
        os.kill(self.daemon.proc.pid, signal.SIGKILL)
        self.daemon.proc.wait(timeout=10)
        killed = time.time()
        self.daemon.stop(grace_s=1, term_s=1)  # reaps it; raises if anything of its session is left
        return killed

    def start_daemon(self) -> Daemon:
        self.restarts += 1
        self.daemon = Daemon(
            self.workspace,
            dagster_home=self.dagster_home,
            cwd=ROOT,
            env=self.env,
            log_path=self.log_dir / f"daemon-{self.restarts}.log",
        )
        self.daemon.start()
        return self.daemon

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}" for p in sorted(self.log_dir.glob("*.log"))
        )


@contextmanager
def dagster_services(
    dagster_home: Path, env: Mapping[str, str], log_dir: Path, wait_for: list[str]
) -> Iterator[Services]:
    """Start code server, webserver and daemon; yield once the location is loaded with `wait_for` assets."""
    log_dir.mkdir(parents=True, exist_ok=True)
    code_port = free_port()
    workspace = log_dir / "workspace.yaml"
    workspace.write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {code_port}\n"
        f"      location_name: {LOCATION}\n"
    )
    env = dict(env)
    with ExitStack() as stack:
        code = CodeServer(
            workspace,
            dagster_home=dagster_home,
            cwd=ROOT,
            env=env,
            port=code_port,
            log_path=log_dir / "code-server.log",
        )
        stack.callback(_stop, code)
        code.start()
        code.wait_until_up(timeout=180)
        web = Webserver(
            workspace,
            dagster_home=dagster_home,
            cwd=ROOT,
            env=env,
            port=free_port(),
            log_path=log_dir / "webserver.log",
        )
        stack.callback(_stop, web)
        web.start()
        services = Services(
            web=web,
            daemon=None,
            code=code,
            dagster_home=dagster_home,
            workspace=workspace,
            env=env,
            log_dir=log_dir,
        )
        services.start_daemon()
        stack.callback(lambda: _stop(services.daemon))
        web.wait_until_up(timeout=120)
        # the webserver retries an unreachable code server, so LOADED means the code server answers
        web.wait_for_assets(wait_for, location=LOCATION, timeout=180)
        yield services


def _stop(service: DagsterDev) -> None:
    how = service.stop()
    print(f"{type(service).__name__} stopped by {how} in {service.timings.get('stop_s', 0):.1f} s")


# ------------------------------------------------------------------------------------------------ GraphQL

LAUNCH_RUN = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on Error { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

TERMINATE = """
mutation Terminate($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) {
    __typename
    ... on TerminateRunSuccess { run { runId status } }
    ... on TerminateRunFailure { message }
    ... on PythonError { message }
    ... on RunNotFoundError { message }
  }
}"""


def launch_run(web: Webserver, job: str, assets: list[str] | None = None, tags: Mapping[str, str] | None = None) -> str:
    selector: dict[str, Any] = {"repositoryLocationName": LOCATION, "repositoryName": "__repository__", "jobName": job}
    if assets:
        selector["assetSelection"] = [{"path": a.split("/")} for a in assets]
    answer = web.graphql(
        LAUNCH_RUN,
        {
            "params": {
                "selector": selector,
                "runConfigData": {},
                "mode": "default",
                "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in (tags or {}).items()]},
            }
        },
    )["launchRun"]
    if answer["__typename"] != "LaunchRunSuccess":
        raise DagsterDevError(f"launchRun {job} {assets}: {answer}")
    return answer["run"]["runId"]


def force_terminate(web: Webserver, run_id: str) -> dict[str, Any]:
    """The UI's "Force termination": the run is marked CANCELED at once, whatever its process does."""
    return web.graphql(TERMINATE, {"runId": run_id, "policy": "MARK_AS_CANCELED_IMMEDIATELY"})["terminateRun"]


# ------------------------------------------------------------------------------------------------ events

WORKER_PID = re.compile(r"Started process for run \(pid: (\d+)\)")


def wait_for(what: str, condition, timeout: float, services: Services | None = None, poll_s: float = 0.1):
    """Poll `condition()` until it returns something truthy; fail with the services' logs otherwise."""
    from sqlalchemy.exc import OperationalError

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = condition()
        except OperationalError:  # SQLite "database is locked" while a run worker writes: read again
            value = None
        if value:
            return value
        time.sleep(poll_s)
    raise AssertionError(f"not within {timeout:.0f} s: {what}" + (f"\n{services.logs()}" if services else ""))
