"""A CODESYS-style line served by node-opcua (npm `node-opcua`, an OPC UA stack independent of asyncua),
for tests that must not only pass against our own simulator.

`node_opcua_line(workdir, timeline)` starts `node_opcua_line.mjs` on a free loopback port: the seven core
PackTags of one line under CODESYS symbolic node ids, SignAndEncrypt (Basic256Sha256) only, one user. The
line plays a scripted, deterministic timeline when told to (`play()`, after the collector subscribed), one
step every `step_ms` of wall time with the step's simulated source timestamp. `scripted_shift()` builds a
PackML sequence (execute with counting parts, a stop with a reason, a fault, back to execute) and returns
what any correct pipeline must find in it (`Expected`: counts, time per state, stops).

    timeline, expected = scripted_shift(shift_start)
    with node_opcua_line(tmp_path, timeline) as line:
        config = line.collector_config(tmp_path)          # a CollectorConfig: configuration alone
        async with running(Collector(config, environ=line.environ())):
            await line.play_async()                        # returns when the last step was served
"""

from __future__ import annotations

import asyncio
import json
import queue
import shutil
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from edge_collector.config import CollectorConfig
from plc.tagmap import TAGS, symbol
from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_suffix(".mjs")
MODULE = ROOT / "node_modules" / "node-opcua" / "package.json"
#: The seven PackTags a CODESYS program typically exposes, and all this line has.
CORE_TAGS = (
    "Status.StateCurrent",
    "Status.CurMachSpeed",
    "Admin.MachDesignSpeed",
    "Admin.ProdProcessedCount",
    "Admin.ProdDefectiveCount",
    "Admin.StopReason.ID",
    "Quality.LastPartDeviation",
)
USER, PASSWORD = "collector", "line-secret-1"
EXECUTE, STOPPING, STOPPED, STARTING, ABORTING, ABORTED, CLEARING, RESETTING, IDLE = 6, 7, 2, 3, 8, 9, 1, 15, 4
OPERATOR_STOP, FAULT = TAGS.stop_reasons["OperatorStop"], TAGS.stop_reasons["UnspecifiedFault"]


@dataclass(frozen=True)
class Step:
    t_s: float  # simulated seconds after the timeline's base (whole milliseconds: a JS Date)
    set: dict[str, float | int]


@dataclass
class Timeline:
    base: datetime
    steps: list[Step]
    mode: str = "normal"  # or "no_source_ts": no source timestamp (absent, or the null DateTime, alternately)
    step_ms: int = 150  # wall time between steps: >= 2 x node-opcua's 50 ms sampling floor

    def config(self) -> dict[str, Any]:
        return {
            "base_ms": round(self.base.timestamp() * 1000),
            "steps": [{"t_ms": round(s.t_s * 1000), "set": s.set} for s in self.steps],
            "mode": self.mode,
            "step_ms": self.step_ms,
        }


@dataclass
class Expected:
    """What the timeline holds, for any consumer to reconcile with (computed here, never measured)."""

    start: datetime
    end: datetime
    processed: int
    defective: int
    state_s: dict[int, float]  # PackML state -> seconds in it, over [start, end)
    stops: list[tuple[datetime, float, int]]  # (start, seconds, reason) of each stop (left Execute)
    design_speed: float
    same_stamp: list[tuple[str, datetime, list[float]]] = field(default_factory=list)  # tag, stamp, values


def scripted_shift(base: datetime, hours: float = 8.0, same_stamp: bool = False) -> tuple[Timeline, Expected]:
    """A shift of `hours` from `base`: execute at 110 of 120 parts/min with counts every 20 min, an operator
    stop (20 min), execute, a fault (aborted 15 min, then clearing, stopped, resetting, idle, starting),
    execute to the end (the last count 1 s before it), then one deviation change 60 s after the end (so a
    pipeline sees the line caught up past the shift). `Expected` covers [base, base + hours). With
    `same_stamp`, one count update is followed by a second, different value with the same source
    timestamp (a server stamping two changes in one tick): both are data."""
    end_s = hours * 3600
    steps: list[Step] = []
    state_s: dict[int, float] = {}
    stops: list[tuple[datetime, float, int]] = []
    processed = defective = 0
    state, since = EXECUTE, 0.0
    doubled: list[tuple[str, datetime, list[float]]] = []
    rate, design = 110.0, 120.0

    def go(t: float, new: int, **extra: float | int) -> None:
        nonlocal state, since
        state_s[state] = state_s.get(state, 0.0) + (t - since)
        state, since = new, t
        steps.append(Step(t, {"Status.StateCurrent": new, **extra}))

    steps.append(
        Step(
            0.0,
            {
                "Status.StateCurrent": EXECUTE,
                "Admin.MachDesignSpeed": design,
                "Status.CurMachSpeed": rate,
                "Admin.StopReason.ID": 0,
                "Admin.ProdProcessedCount": 0,
                "Admin.ProdDefectiveCount": 0,
                "Quality.LastPartDeviation": 0.0,
            },
        )
    )

    def execute(t0: float, t1: float) -> None:
        nonlocal processed, defective
        t = t0
        while t < t1:
            dt = min(1200.0, t1 - t)
            t += dt
            parts = round(rate * dt / 60)
            processed += parts
            defective += parts // 100
            deviation = round(0.01 * ((processed // 7) % 5 - 2), 3)
            steps.append(
                Step(
                    t,
                    {
                        "Admin.ProdProcessedCount": processed,
                        "Admin.ProdDefectiveCount": defective,
                        "Quality.LastPartDeviation": deviation,
                    },
                )
            )
            if same_stamp and not doubled:
                processed += 3  # a second change in the same tick, e.g. a burst of the counter
                steps.append(Step(t, {"Admin.ProdProcessedCount": processed}))
                doubled.append(("Admin.ProdProcessedCount", base + timedelta(seconds=t), [processed - 3, processed]))

    t_stop = round(end_s * 0.25)
    execute(0.0, t_stop)
    go(t_stop, STOPPING, **{"Admin.StopReason.ID": OPERATOR_STOP, "Status.CurMachSpeed": 0.0})
    go(t_stop + 30, STOPPED)
    go(t_stop + 1200, STARTING)
    go(t_stop + 1230, EXECUTE, **{"Admin.StopReason.ID": 0, "Status.CurMachSpeed": rate})
    stops.append((base + timedelta(seconds=t_stop), 1230.0, OPERATOR_STOP))
    t_fault = round(end_s * 0.6)
    execute(t_stop + 1230, t_fault)
    go(t_fault, ABORTING, **{"Admin.StopReason.ID": FAULT, "Status.CurMachSpeed": 0.0})
    t = t_fault + 5
    for new, dt in ((ABORTED, 900), (CLEARING, 60), (STOPPED, 60), (RESETTING, 30), (IDLE, 30), (STARTING, 30)):
        go(t, new)
        t += dt
    go(t, EXECUTE, **{"Admin.StopReason.ID": 0, "Status.CurMachSpeed": rate})
    stops.append((base + timedelta(seconds=t_fault), t - t_fault, FAULT))
    execute(t, end_s - 1)  # the last count inside the shift ([start, end) holds it)
    state_s[state] = state_s.get(state, 0.0) + (end_s - since)
    # one change after the end (no count): the line has caught up past the shift, so the shift can be final
    steps.append(Step(end_s + 60, {"Quality.LastPartDeviation": 0.123}))
    expected = Expected(base, base + timedelta(seconds=end_s), processed, defective, state_s, stops, design, doubled)
    return Timeline(base, steps), expected


class NodeOpcuaLine:
    """The running node-opcua server; see the module docstring."""

    def __init__(self, workdir: Path, timeline: Timeline, line: str, port: int) -> None:
        self.workdir, self.timeline, self.line, self.port = workdir, timeline, line, port
        self.process: subprocess.Popen[str] | None = None
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready: dict[str, Any] = {}
        self.runs = 0

    # ------------------------------------------------------------------ the process
    def start(self, timeout: float = 90.0) -> None:
        """Start (or restart, on the same port and PKI) the server and wait until it listens."""
        node = shutil.which("node")
        if node is None or not MODULE.exists():
            raise RuntimeError(f"node or {MODULE.parent} is missing: run `make test` (it runs `npm ci`) or `npm ci`")
        config = {
            "port": self.port,
            "pki_dir": str(self.workdir / "pki"),
            "user": USER,
            "password": PASSWORD,
            "namespace_uri": TAGS.namespace_uri,
            "runtime": TAGS.default_runtime,
            "line": self.line,
            "tags": {path: TAGS.line_tag(path).type for path in CORE_TAGS},
            **self.timeline.config(),
        }
        path = self.workdir / "node_opcua_line.json"
        path.write_text(json.dumps(config), encoding="utf-8")
        self.runs += 1
        log = (self.workdir / f"node_opcua_line.{self.runs}.log").open("w")
        self.events = queue.Queue()
        self.process = subprocess.Popen(
            [node, str(SCRIPT), str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=ROOT,
            start_new_session=True,
        )
        threading.Thread(target=self._read, args=(self.process,), daemon=True).start()
        self.ready = self.wait_for("ready", timeout)

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for text in process.stdout:
            try:
                self.events.put(json.loads(text))
            except json.JSONDecodeError:
                continue  # a library's own print
        self.events.put({"event": "exit", "code": process.wait()})

    def wait_for(self, event: str, timeout: float) -> dict[str, Any]:
        try:
            while True:
                got = self.events.get(timeout=timeout)
                if got["event"] == event:
                    return got
                if got["event"] in ("exit", "error"):
                    raise RuntimeError(f"node-opcua line ended before {event!r}: {got}; see {self.workdir}/*.log")
        except queue.Empty:
            raise TimeoutError(f"node-opcua line: no {event!r} within {timeout} s; see {self.workdir}/*.log") from None

    def _send(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()

    def play(self, timeout: float | None = None) -> dict[str, Any]:
        """Serve the timeline's steps; returns when the last one was served (and one more step passed)."""
        self._send("play")
        limit = timeout or 30.0 + len(self.timeline.steps) * self.timeline.step_ms / 1000 * 3
        return self.wait_for("done", limit)

    async def play_async(self, timeout: float | None = None) -> dict[str, Any]:
        return await asyncio.to_thread(self.play, timeout)

    def stop(self) -> None:
        """SIGTERM, as a PLC runtime stopping; waits for the process."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    # ------------------------------------------------------------------ what a collector needs
    @property
    def endpoint(self) -> str:
        return f"opc.tcp://127.0.0.1:{self.port}"

    @property
    def certificate(self) -> Path:
        return self.workdir / "pki" / "own" / "certs" / "certificate.pem"

    def node_id(self, tag: str) -> str:
        return f"ns={self.ready['namespace_index']};s={symbol(TAGS.default_runtime, self.line, tag)}"

    def environ(self) -> dict[str, str]:
        return {"EDGE_OPCUA_USER": USER, "EDGE_OPCUA_PASSWORD": PASSWORD}

    def collector_config(self, tmp_path: Path, tags: list[str] | str = "default", **sections: Any) -> CollectorConfig:
        """A secure collector config for this line, by configuration alone: endpoint, Basic256Sha256
        SignAndEncrypt, the pinned server certificate, user and password from the environment
        (`environ()`), the line's id and `tags` (default: the tag map's default subscription, of which
        this line has only the seven core tags: the others are `missing` in the manifest)."""
        raw: dict[str, Any] = {
            "collector": {"id": "node-opcua-edge", "lake": str(tmp_path / "lake"), "spool": str(tmp_path / "spool")},
            "opcua": {
                "endpoint": self.endpoint,
                "security_policy": "Basic256Sha256",
                "security_mode": "SignAndEncrypt",
                "pki": str(tmp_path / "pki-collector"),
                "server_certificate": str(self.certificate),
                "reconnect_max_delay_s": 1.0,
            },
            "subscription": {"lines": [self.line], "tags": tags, "publishing_interval_ms": 50},
            "datalogger": {"flush_interval_s": 0.2},
            "metrics": {"port": 0},
        }
        for name, values in sections.items():
            raw.setdefault(name, {}).update(values)
        return CollectorConfig.model_validate(raw)


@contextmanager
def node_opcua_line(
    workdir: Path, timeline: Timeline, line: str = "L1", port: int | None = None
) -> Iterator[NodeOpcuaLine]:
    """Start the line on a free loopback port; stop it (SIGTERM) after the block."""
    workdir.mkdir(parents=True, exist_ok=True)
    server = NodeOpcuaLine(workdir, timeline, line, port or free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
