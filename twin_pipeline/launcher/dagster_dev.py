"""A real `dagster dev` (webserver + daemon + code server) as a child process, and a small GraphQL
client: `twin up` runs the UI with it, and the end-to-end tests drive it (tests/support/dagster_dev.py).

    dev = DagsterDev(repo_root / "workspace.yaml", dagster_home=..., log_path=..., env={...})
    try:
        dev.start_and_wait()                          # GET /server_info answers (retries on a taken port)
        dev.wait_for_assets(["gold/fact_oee_shift"])  # location LOADED, asset nodes listed
        data = dev.graphql("{ version }")
    finally:
        dev.stop()                                    # raises if a process of its session is left

(`with DagsterDev(...) as dev:` starts it without waiting and stops it at the end.)

`dagster dev` is started in its own session (= its own process group, pgid == sid == its pid) with
SIGINT restored to the default: a process started from a non-interactive shell with `&` inherits an
ignored SIGINT, and `dagster dev` maps SIGTERM onto its SIGINT handler, so it would then ignore both
(shared notes: dagster.md §9, stack.md). `stop()` sends SIGINT to the whole group (what Ctrl-C
in a terminal does), waits, then SIGTERM, then SIGKILL, and reports which signal ended it; `leftovers()`
scans /proc for live processes still in that session (webserver, daemon, code server, run workers).
A new session is out of reach of a Ctrl-C on the test run, so the child also asks the kernel for a
SIGINT when its parent dies (PR_SET_PDEATHSIG): a killed test process does not leave it running.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO

DAGSTER_YAML = "telemetry:\n  enabled: false\n"


def write_dagster_home(path: Path, extra_yaml: str = "") -> Path:
    """A DAGSTER_HOME with telemetry off (plus `extra_yaml`, appended to dagster.yaml)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(DAGSTER_YAML + extra_yaml)
    return path


try:  # Linux: prctl(PR_SET_PDEATHSIG), loaded here, called in the child
    import ctypes

    _prctl: Any = ctypes.CDLL(None, use_errno=True).prctl
except (OSError, AttributeError):
    _prctl = None
_PR_SET_PDEATHSIG = 1


def _child_setup() -> None:  # runs in the child between fork and exec: keep it to these calls
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if _prctl is not None:
        # if the test process dies without tearing down (SIGKILL, CI timeout), dagster dev gets a SIGINT and
        # shuts its webserver, daemon and code server down itself (its own session is out of reach of Ctrl-C)
        _prctl(_PR_SET_PDEATHSIG, int(signal.SIGINT), 0, 0, 0)


def session_members(sid: int) -> list[tuple[int, str, str]]:
    """(pid, state, command line) of every process in session `sid`; zombies included (state 'Z')."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        try:
            if os.getsid(pid) != sid:
                continue
            stat = (entry / "stat").read_text()
            state = stat[stat.rindex(")") + 2 :].split()[0]
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except (ProcessLookupError, PermissionError, FileNotFoundError, ValueError):
            continue  # gone meanwhile
        found.append((pid, state, cmdline))
    return found


class DagsterDevError(RuntimeError):
    pass


class PortInUse(DagsterDevError):
    pass


class DagsterDev:
    """One `dagster dev -h 127.0.0.1 -p <port> -w <workspace>` process tree (see the module docstring)."""

    def __init__(
        self,
        workspace: Path,
        *,
        dagster_home: Path,
        log_path: Path,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        port: int = 3000,
        host: str = "127.0.0.1",
        executable: Path | None = None,
        next_port: Callable[[], int] | None = None,
    ) -> None:
        self.workspace = Path(workspace)
        self.dagster_home = Path(dagster_home)
        self.log_path = Path(log_path)
        self.env = dict(env or {})
        self.cwd = Path(cwd) if cwd else self.workspace.parent
        self.host = host
        self.port = port
        self.next_port = next_port  # where to retry when the port is taken (tests); None: say so and stop
        self.executable = executable or Path(sys.executable).parent / "dagster"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log_offset = 0
        self.sid: int | None = None
        self.stopped_by: str | None = None  # "exited", "SIGINT", "SIGTERM" or "SIGKILL"
        self.timings: dict[str, float] = {}
        self._t0 = time.monotonic()  # reset by start(); a client of a running UI counts from here
        self._log: BinaryIO | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        """The process to start (a subclass may run another Dagster service the same way)."""
        return [str(self.executable), "dev", "-h", self.host, "-p", str(self.port), "-w", str(self.workspace)]

    def start(self) -> DagsterDev:
        if not (self.dagster_home / "dagster.yaml").exists():
            write_dagster_home(self.dagster_home)
        env = {**os.environ, **self.env, "DAGSTER_HOME": str(self.dagster_home)}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self._log = self.log_path.open("ab")
        self._log_offset = log.tell()  # this attempt's part of the log starts here
        self._t0 = time.monotonic()
        self.proc = subprocess.Popen(
            self.command(),
            cwd=self.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_child_setup,
        )
        self.sid = self.proc.pid  # setsid(): the leader's pid is the session and process group id
        return self

    def start_and_wait(self, timeout: float = 120.0, attempts: int = 3) -> dict[str, Any]:
        """`start()` and `wait_until_up()`; on `next_port()` if the chosen port was taken meanwhile
        (a free port found by a test is only free a moment ago)."""
        for attempt in range(attempts):
            self.start()
            try:
                return self.wait_until_up(timeout)
            except PortInUse:
                if attempt == attempts - 1 or self.next_port is None:
                    self.stop()
                    raise
                self.stop()
                self.stopped_by, self.sid, self.proc, self.port = None, None, None, self.next_port()
        raise AssertionError("unreachable")

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace_s: float = 20.0, term_s: float = 10.0, settle_s: float = 10.0) -> str:
        """Stop the whole process group: SIGINT, then SIGTERM, then SIGKILL. Returns the signal that
        ended it (also in `stopped_by`); raises if a live process of the session is left."""
        if self.proc is None:
            return "not started"
        if self.stopped_by is not None:
            return self.stopped_by
        t0 = time.monotonic()
        if self.proc.poll() is not None and not self._live():
            self.stopped_by = "exited"
        for name, sig, wait_s in (
            ("SIGINT", signal.SIGINT, grace_s),
            ("SIGTERM", signal.SIGTERM, term_s),
            ("SIGKILL", signal.SIGKILL, term_s),
        ):
            if self.stopped_by is not None:
                break
            self._signal_group(sig)
            if self._wait_all(wait_s):
                self.stopped_by = name
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        if self._log is not None:
            self._log.close()
            self._log = None
        self.timings["stop_s"] = time.monotonic() - t0
        self.stopped_by = self.stopped_by or "still running"
        # orphans are re-parented and reaped by init; give that a moment before calling them leftovers
        deadline = time.monotonic() + settle_s
        while self._live() and time.monotonic() < deadline:
            time.sleep(0.2)
        left = self.leftovers()
        if left:
            raise DagsterDevError(f"processes of dagster dev's session {self.sid} left after {self.stopped_by}: {left}")
        return self.stopped_by

    def leftovers(self) -> list[tuple[int, str, str]]:
        """Live (non-zombie) processes still in dagster dev's session."""
        return self._live()

    def _live(self) -> list[tuple[int, str, str]]:
        if self.sid is None:
            return []
        return [m for m in session_members(self.sid) if m[1] != "Z"]

    def _signal_group(self, sig: int) -> None:
        if self.sid is None:
            return
        try:
            os.killpg(self.sid, sig)
        except ProcessLookupError:
            pass

    def _wait_all(self, timeout: float) -> bool:
        """Wait until the leader has exited and no live process of the session is left."""
        proc = self.proc
        if proc is None:
            return not self._live()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader
            if proc.returncode is not None and not self._live():
                return True
            time.sleep(0.2)
        proc.poll()
        return proc.returncode is not None and not self._live()

    # -- diagnostics -----------------------------------------------------------------------------
    def log_text(self, this_attempt: bool = False) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(self._log_offset if this_attempt else 0)
                return f.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, chars: int = 4000) -> str:
        return self.log_text()[-chars:]

    def _check_alive(self, what: str) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise DagsterDevError(
                f"dagster dev exited with {self.proc.returncode} while {what}; log tail:\n" + self.log_tail()
            )

    # -- HTTP / GraphQL ----------------------------------------------------------------------------
    def _request(self, path: str, body: bytes | None = None, timeout: float = 30.0) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        # self.url is always http://<host>:<port> of the dagster dev this object started, never a file: URL
        request = urllib.request.Request(self.url + path, data=body, headers=headers)  # noqa: S310 - our own http URL
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - our own http URL
            return json.loads(response.read())

    def wait_until_up(self, timeout: float = 120.0) -> dict[str, Any]:
        """Poll GET /server_info until the webserver answers; returns that answer."""
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if "address already in use" in self.log_text(this_attempt=True).lower():
                raise PortInUse(
                    f"port {self.port} on {self.host} is taken (another dagster dev?): stop that, or pick "
                    f"another port; log tail:\n{self.log_tail()}"
                )
            self._check_alive("starting")
            try:
                info = self._request("/server_info", timeout=5)
                self.timings["webserver_up_s"] = time.monotonic() - self._t0
                return info
            except (urllib.error.URLError, ConnectionError, TimeoutError, json.JSONDecodeError) as e:
                last = e
            time.sleep(0.5)
        raise DagsterDevError(
            f"dagster dev did not answer /server_info within {timeout:.0f} s ({last!r}); log tail:\n{self.log_tail()}"
        )

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """POST /graphql; returns `data`, raises on GraphQL errors."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        try:
            answer = self._request("/graphql", body, timeout=timeout)
        except urllib.error.HTTPError as e:
            raise DagsterDevError(f"GraphQL HTTP {e.code}: {e.read()[:2000]!r}") from e
        if answer.get("errors"):
            raise DagsterDevError(f"GraphQL errors: {json.dumps(answer['errors'])[:3000]}")
        return answer["data"]

    def locations(self) -> dict[str, dict[str, Any]]:
        """Code locations by name: loadStatus and, when loading failed, the error message."""
        data = self.graphql("""{ workspaceOrError { __typename
            ... on Workspace { locationEntries { name loadStatus
                locationOrLoadError { __typename ... on PythonError { message } } } }
            ... on PythonError { message } } }""")["workspaceOrError"]
        if data["__typename"] != "Workspace":
            raise DagsterDevError(f"workspaceOrError: {data}")
        return {
            e["name"]: {"loadStatus": e["loadStatus"], "error": (e["locationOrLoadError"] or {}).get("message")}
            for e in data["locationEntries"]
        }

    def asset_keys(self) -> set[str]:
        nodes = self.graphql("{ assetNodes { assetKey { path } } }")["assetNodes"]
        return {"/".join(n["assetKey"]["path"]) for n in nodes}

    def wait_for_assets(self, keys: Iterable[str], location: str | None = None, timeout: float = 120.0) -> set[str]:
        """Wait until every location (or `location`) is LOADED and `keys` ("a/b") are asset nodes."""
        wanted = set(keys)
        deadline = time.monotonic() + timeout
        state = "no answer"
        while time.monotonic() < deadline:
            self._check_alive("loading the code location")
            try:
                locs = self.locations()
                failed = {n: loc["error"] for n, loc in locs.items() if loc["error"]}
                if failed:
                    raise DagsterDevError(f"code location failed to load: {failed}")
                chosen = {n: loc for n, loc in locs.items() if location is None or n == location}
                state = f"locations { ({n: loc['loadStatus'] for n, loc in locs.items()}) }"
                if chosen and all(loc["loadStatus"] == "LOADED" for loc in chosen.values()):
                    have = self.asset_keys()
                    state += f", missing assets {sorted(wanted - have)}"
                    if wanted <= have:
                        self.timings["location_loaded_s"] = time.monotonic() - self._t0
                        return have
            except (urllib.error.URLError, ConnectionError, TimeoutError) as e:
                state = repr(e)
            time.sleep(1.0)
        raise DagsterDevError(f"code location not ready within {timeout:.0f} s ({state}); log tail:\n{self.log_tail()}")
