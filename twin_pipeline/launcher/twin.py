"""`twin`: the whole twin with one command (`make run` is `twin up`).

`twin up` prepares, then runs until Ctrl-C or SIGTERM, everything on loopback under `TWIN_HOME`:
1. history: the last `--days` days seeded in-process by `edge_collector/variability/history.py` (the same line
   models and variability engine, tens of thousands of times real time, written to the same edge
   tables, session `seed-...`), once: `TWIN_HOME/history.json` records it, an interrupted seeding
   resumes, and a lake that already has live data is not seeded again (no duplicate history);
2. the live line: the PLC simulator and the edge collector (`edge_collector/local_twin.py`), from now,
   in real time (with `--speed K` > 1: from `--behind` hours ago, at K until the plant clock reaches
   the wall clock, see plant_clock.py); the time a previous `twin up` was down is recorded as a collector gap;
3. Dagster: `dagster dev` (webserver + daemon: schedules, sensors, backfills) over `workspace.yaml`,
   `DAGSTER_HOME` = `TWIN_HOME/dagster` (its `dagster.yaml` from twin_pipeline/launcher/instance.py: pool limit,
   crash-only run retries), log in `TWIN_HOME/logs/dagster.log`;
4. the seeded history's gold: as soon as the UI is up, one run of bronze -> silver -> gold over the seeded
   shifts (twin_pipeline/launcher/history_run.py), unless gold already has them; the banner links it and
   says when gold is ready, with the last shift's OEE.
It stops Dagster first (runs in flight are interrupted, never half-written: every table write is one
Delta commit), then the collector (it flushes), then the PLC, and checks that no child is left.

`twin up` also serves the dashboard (`dashboard/app.py`) on http://127.0.0.1:8501; `twin dashboard` serves it
alone over any lake (`TWIN_LAKE`). `twin reset` wipes `TWIN_HOME` after asking.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twin_pipeline.launcher import plant_clock
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.location import Location

UTC = UTC
ROOT = Path(__file__).resolve().parents[2]
HISTORY = "history.json"


def twin_home() -> Path:
    return Path(os.environ.get("TWIN_HOME", ".twin")).resolve()


def _say(text: str) -> None:
    print(f"twin: {text}", flush=True)


# ---------------------------------------------------------------------------------------------- history


def _has_live_data(lake: Path) -> bool:
    from edge_collector.schemas import edge_table_path

    return (edge_table_path(lake, "raw_samples") / "_delta_log").exists()


def seed_once(home: Path, lines: list[str], days: float, now: datetime, collector_config: Path) -> dict[str, Any]:
    """Seed the `days` before `now` unless done (or the lake already holds live data); resume an
    interrupted seeding with its original range. Returns what `history.json` records."""
    from edge_collector.variability.history import seed_history, variability_from_toml

    marker, lake = home / HISTORY, home / "lake"
    state: dict[str, Any] = json.loads(marker.read_text()) if marker.exists() else {}
    if state.get("done") or state.get("skipped"):
        return state
    resuming = bool(state)
    if not state:
        if days <= 0:
            state = {"skipped": "--days 0"}
        elif _has_live_data(lake):
            state = {"skipped": "the lake already had live data, so no history was seeded before it"}
        else:
            end = now.replace(microsecond=0)
            state = {
                "start": (end - timedelta(days=days)).isoformat(),
                "end": end.isoformat(),
                "lines": lines,
                "done": False,
            }
        marker.write_text(json.dumps(state, indent=2))
        if "skipped" in state:
            return state
    start, end = datetime.fromisoformat(state["start"]), datetime.fromisoformat(state["end"])
    _say(
        f"history: seeding {(end - start).total_seconds() / 86400:g} days ({start:%Y-%m-%d %H:%M} .. "
        f"{end:%Y-%m-%d %H:%M} UTC) of {', '.join(state['lines'])} with the line models and the variability "
        f"engine{' (resuming where it was interrupted)' if resuming else ''}"
    )
    variability, vseed = variability_from_toml(collector_config)
    total = (end - start).total_seconds()

    def bar(stats: Any) -> None:
        done = stats.simulated_s / total
        print(
            f"\r  [{'#' * int(done * 30):<30}] {done:6.1%}  {stats.simulated_to:%Y-%m-%d %H:%M} UTC  "
            f"{stats.rows:,} samples  {stats.sim_per_wall_per_line:,.0f}x real time per line",
            end="",
            file=sys.stderr,
            flush=True,
        )

    stats = seed_history(
        lake, state["lines"], start, end, seed=1, progress=bar, variability=variability, variability_seed=vseed
    )
    print(file=sys.stderr)
    state.update(
        {
            "done": True,
            "session_id": stats.session_id,
            "samples": stats.rows,
            "injected_events": stats.events,
            "wall_s": round(stats.wall_s, 1),
            "x_real_time_per_line": round(stats.sim_per_wall_per_line),
        }
    )
    marker.write_text(json.dumps(state, indent=2))
    _say(
        f"history: {stats.rows:,} samples and {stats.events:,} injected events in {stats.wall_s:.1f} s "
        f"({stats.sim_per_wall_per_line:,.0f}x real time per line), session {stats.session_id}"
    )
    return state


def seeded_shifts(state: dict[str, Any]) -> list[str]:
    """The shifts the seeded history covers completely: ready to backfill."""
    if not state.get("done"):
        return []
    start, end = datetime.fromisoformat(state["start"]), datetime.fromisoformat(state["end"])
    return [w.shift_id for w in load_calendar().windows(start, end) if w.start >= start and w.end <= end]


# ---------------------------------------------------------------------------------------------- up


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def up(args: argparse.Namespace) -> int:
    from edge_collector.local_twin import LiveLine
    from twin_pipeline.launcher.dagster_dev import DagsterDev, DagsterDevError
    from twin_pipeline.launcher.dashboard_server import DashboardError, DashboardServer
    from twin_pipeline.launcher.history_run import HistoryRun
    from twin_pipeline.launcher.instance import POOL, ensure_instance

    home = twin_home()
    home.mkdir(parents=True, exist_ok=True)
    (home / "logs").mkdir(exist_ok=True)
    os.environ["TWIN_HOME"] = str(home)
    lines = [s.strip() for s in args.lines.split(",") if s.strip()]
    collector_config = args.collector_config or ROOT / "edge_collector" / "local.toml"
    signal.signal(signal.SIGTERM, _raise_interrupt)  # SIGTERM stops like Ctrl-C
    line: LiveLine | None = None
    dev: DagsterDev | None = None
    board: DashboardServer | None = None
    history: HistoryRun | None = None
    t0 = time.monotonic()
    code = 0
    try:
        _say(f"TWIN_HOME is {home}")
        clock = plant_clock.plan(
            args.speed, timedelta(hours=args.behind), datetime.now(UTC), plant_clock.newest_plant_time(home)
        )
        state = seed_once(home, lines, args.days, clock.start or clock.wall_start, collector_config)
        if state.get("skipped"):
            _say(f"history: not seeded ({state['skipped']})")
        clock = clock.started(datetime.now(UTC))
        _say(f"starting the PLC simulator and the edge collector; plant clock {clock.describe()}")
        line = LiveLine(
            home,
            lines=",".join(lines),
            port=args.port,
            speed=clock.speed,
            seed=args.seed,
            config_path=collector_config,
            start=clock.start,
        )
        line.start()
        if args.dashboard_port:  # beside the UI; it shows the live line at once, gold as it lands
            board = DashboardServer(
                port=args.dashboard_port, env={"TWIN_HOME": str(home)}, log_path=home / "logs" / "dashboard.log"
            )
            board.start()
        if not args.no_ui:
            _say("starting Dagster: webserver, daemon, code location (about 20 s) ...")
            dagster_home = home / "dagster"
            _say(
                f"Dagster instance {dagster_home / 'dagster.yaml'}: {ensure_instance(dagster_home)} (pool "
                f"{POOL} one step at a time, crashed runs retried: twin_pipeline/launcher/instance.py)"
            )
            dev = DagsterDev(
                ROOT / "workspace.yaml",
                dagster_home=dagster_home,
                log_path=home / "logs" / "dagster.log",
                env={"TWIN_HOME": str(home)},
                cwd=ROOT,
                port=args.ui_port,
            )
            dev.start_and_wait(timeout=180)
            ui_up = time.monotonic()
            _say(f"Dagster UI up after {ui_up - t0:.1f} s: {dev.url}")
            dev.wait_for_assets(["gold/fact_oee_shift"], timeout=180)
        shifts = seeded_shifts(state)
        gold_lake = Location.of(os.environ.get("TWIN_LAKE", "").strip() or home / "lake")  # as the code server sees it
        ui = dev.url if dev else "(not started: --no-ui)"
        board_line = "(off: --dashboard-port 0)"
        if board is not None:
            try:
                board.wait_ready(timeout=60)
                board_line = f"{board.url}   OEE trend, losses, stops, quality, reliability; live: {board.url}/live"
            except DashboardError as exc:  # the twin runs on without it
                board_line = f"did not start ({exc})"
        if dev is not None:
            history = HistoryRun(dev, gold_lake, shifts, ui_up=ui_up)
            try:
                past = history.launch()
            except (OSError, RuntimeError) as exc:  # the twin runs on; the user can still backfill by hand
                past = f"{len(shifts)} seeded shifts; launching their run failed ({exc}): backfill them by hand"
        else:
            past = f"{len(shifts)} seeded shifts (no Dagster: --no-ui)" if shifts else "none seeded"
        print(
            f"""
  Dagster UI     {ui}   lineage: Assets > Lineage; OEE: Assets > gold > fact_oee_shift
  dashboard      {board_line}
  past shifts    {past}
  live line      opc.tcp://127.0.0.1:{args.port} ({", ".join(lines)}, SignAndEncrypt)
  plant clock    {clock.describe()}
  metrics        {line.metrics_url or "(off)"}
  lake           {gold_lake}{"" if gold_lake == Location.of(home / "lake") else f" (edge tables: {home / 'lake'})"}
  Dagster home   {home / "dagster"} (log: {home / "logs" / "dagster.log"})
Ctrl-C stops everything; `make run` again continues where it stopped.
""",
            flush=True,
        )
        _say("running")
        while line.alive() and (dev is None or dev.proc is None or dev.proc.poll() is None):
            if history is not None and (done := history.poll()):
                _say(done)
            time.sleep(0.5)
        _say("a process ended by itself; stopping the others")
        code = 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        _say("stopping")
    except DagsterDevError as exc:
        _say(f"Dagster did not start (another port: twin up --ui-port N): {exc}")
        code = 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the clean stop short
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if dev is not None:
            try:
                how = dev.stop()
                _say(f"Dagster stopped ({how})")
            except DagsterDevError as exc:
                _say(str(exc))
                code = 1
        if board is not None:
            board.stop()
            _say("dashboard stopped")
        if line is not None:
            codes = line.stop()
            _say("edge collector and PLC stopped" + ("" if not any(codes) else f" (exit codes {codes})"))
            code = code or int(any(codes))
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    _say("stopped")
    return code


# ---------------------------------------------------------------------------------------------- reset


def reset(args: argparse.Namespace) -> int:
    from edge_collector.lake import LOCK_NAME, WriterLock, WriterLocked

    home = twin_home()
    if not home.exists():
        _say(f"nothing to reset: {home} does not exist")
        return 0
    lock_path = home / "lake" / "edge" / LOCK_NAME
    if lock_path.exists():
        lock = WriterLock(lock_path)
        try:
            lock.acquire("twin reset")
            lock.release()
        except WriterLocked:
            _say(f"a collector is writing {home / 'lake'}: stop `twin up` (Ctrl-C) first")
            return 1
    size = sum(f.stat().st_size for f in home.rglob("*") if f.is_file())
    if not args.yes:
        if not sys.stdin.isatty():
            _say(f"would delete {home} ({size / 1e6:,.1f} MB); not a terminal: pass --yes to confirm")
            return 1
        answer = input(f"Delete {home} ({size / 1e6:,.1f} MB: lake, Dagster history, certificates)? Type yes: ")
        if answer.strip().lower() != "yes":
            _say("kept")
            return 1
    shutil.rmtree(home)
    _say(f"deleted {home}")
    return 0


def dashboard(args: argparse.Namespace) -> int:
    from twin_pipeline.launcher.dashboard_server import DashboardError, DashboardServer
    from twin_pipeline.lib.settings import lake_root

    env = {"TWIN_LAKE": args.lake} if args.lake else {}
    server = DashboardServer(port=args.port, address=args.address, env=env)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        server.start()
        server.wait_ready()
        _say(f"dashboard {server.url} over the lake {args.lake or lake_root()}; Ctrl-C stops it")
        while server.alive():
            time.sleep(0.5)
        _say("the dashboard exited by itself")
        return 1
    except DashboardError as exc:
        _say(f"{exc}; another port: twin dashboard --port N")
        return 1
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 0
    finally:
        server.stop()
        _say("dashboard stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="twin", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "up",
        help="seed history once, run the live line and Dagster until Ctrl-C",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("--days", type=float, default=3.0, help="days of history to seed before now, once (default 3)")
    run.add_argument("--lines", default="L1,L2", help="line ids (default L1,L2)")
    run.add_argument(
        "--port", type=int, default=4840, help="OPC UA port of the PLC simulator on 127.0.0.1 (default 4840)"
    )
    run.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="simulated seconds per wall second of the live line until its plant clock, started --behind hours "
        "in the past, reaches the wall clock; then real time (default 1: real time from now)",
    )
    run.add_argument(
        "--behind",
        type=float,
        default=plant_clock.DEFAULT_BEHIND_HOURS,
        help="with --speed > 1: hours the plant clock starts behind the wall clock, never before the lake's newest "
        f"data; the seeded history ends there (default {plant_clock.DEFAULT_BEHIND_HOURS:g})",
    )
    run.add_argument("--seed", type=int, default=1, help="seed of the live line models (default 1)")
    run.add_argument("--ui-port", type=int, default=3000, help="Dagster UI port on 127.0.0.1 (default 3000)")
    run.add_argument("--no-ui", action="store_true", help="run the line only, without Dagster")
    run.add_argument(
        "--dashboard-port",
        type=int,
        default=8501,
        help="port of the dashboard on 127.0.0.1 (default 8501; 0: no dashboard)",
    )
    run.add_argument(
        "--collector-config",
        type=Path,
        help="edge collector config (default edge_collector/local.toml: variability on, metrics on 9464)",
    )
    board = commands.add_parser(
        "dashboard",
        help="serve the dashboard alone (OEE, losses, stops, quality, reliability, live line) over a lake",
        description="Serve the dashboard (dashboard/app.py, Streamlit) until Ctrl-C. It reads gold and silver "
        "of the lake TWIN_LAKE names (a folder, or abfss://... with the Azure settings of "
        "docs/operations/cloud.md) and, for the live line, the edge tables of TWIN_EDGES.",
    )
    board.add_argument("--lake", help="the lake to read (default: TWIN_LAKE, else $TWIN_HOME/lake)")
    board.add_argument("--port", type=int, default=8501, help="port (default 8501)")
    board.add_argument(
        "--address", default="127.0.0.1", help="address to listen on (default 127.0.0.1: this machine only)"
    )
    wipe = commands.add_parser("reset", help=f"delete TWIN_HOME (now {twin_home()}) after asking")
    wipe.add_argument("--yes", action="store_true", help="do not ask")
    args = parser.parse_args(argv)
    return {"up": up, "dashboard": dashboard, "reset": reset}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
