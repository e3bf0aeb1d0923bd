"""Latency of the live page (issue 16): from a PLC change's source timestamp to the browser showing it.

A real live line (plc-sim and edge-collector as `twin up` runs them, SignAndEncrypt, variability on, at
1x so that the plant clock is the wall clock), the dashboard server, and the live page in Chromium. The
page shows the plant time (the newest sample's source time, to the millisecond) with the figures it
computed from it; the bench polls the DOM and records, for every new plant time shown, the wall time it
appeared minus that source time: the change's latency to the page. Target: at most 3 s.

Baseline, measured in the same run: the collector's own latency, the newest source time of each new
edge Delta commit against the wall time the commit appeared (the row committed). The page can be no
faster; its ratio to the baseline is what the dashboard adds (its refresh period, the reads, the draw).

    python bench/dashboard_live.py [--seconds 60] [--lines L1,L2]
"""

from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import polars as pl
from common import free_port

from edge_collector.local_twin import LiveLine
from edge_collector.schemas import edge_table_path
from tests.support.browser import chromium
from twin_pipeline.launcher.dashboard_server import DashboardServer
from twin_pipeline.lib.lake_io import table_version

PLANT_TIME = re.compile(r"plant time (\d\d:\d\d:\d\d\.\d\d\d) UTC")
#: Streamlit probes these under every non-root page and logs a 404 for each: inherent, not ours.
INHERENT_404 = ("/_stcore/host-config", "/_stcore/health")


def _commits(raw: Path, stop: threading.Event, out: list[float]) -> None:
    """The collector's latency: per new Delta version, wall time seen minus the newest source time it added."""
    seen = table_version(raw)
    while not stop.is_set():
        version = table_version(raw)
        if version is not None and version != seen:
            wall = datetime.now(UTC)
            seen = version
            log = raw / "_delta_log" / f"{version:020d}.json"
            adds = [line for line in log.read_text().splitlines() if '"add"' in line]
            files = [re.search(r'"path":"([^"]+)"', a) for a in adds]
            newest = None
            for match in files:
                if match is None:
                    continue
                try:
                    ts = pl.read_parquet(raw / match.group(1), columns=["source_ts"])["source_ts"].max()
                except FileNotFoundError:  # compacted away already
                    continue
                newest = ts if newest is None or (ts is not None and ts > newest) else newest  # type: ignore[operator]  # datetimes
            if newest is not None and len(files) == 1:  # a flush (one file), not a compaction
                out.append((wall - newest).total_seconds())  # type: ignore[operator]  # a datetime
        time.sleep(0.02)


def _shown(today: datetime, text: str) -> datetime | None:
    match = PLANT_TIME.search(text)
    if match is None:
        return None
    clock = datetime.strptime(match.group(1), "%H:%M:%S.%f").time()
    return datetime.combine(today.date(), clock, tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to watch the page (default 60)")
    parser.add_argument("--lines", default="L1,L2", help="line ids (default L1,L2)")
    args = parser.parse_args(argv)

    home = Path(tempfile.mkdtemp(prefix="bench-live-"))
    config = home / "collector.toml"
    config.write_text((ROOT / "edge_collector" / "local.toml").read_text() + "\n[metrics]\nport = 0\n")
    line = LiveLine(home, lines=args.lines, port=free_port(), speed=1.0, seed=1, config_path=config)
    raw = edge_table_path(home / "lake", "raw_samples")
    env = {"TWIN_HOME": str(home), "TWIN_LAKE": str(home / "lake"), "TWIN_EDGES": ""}
    page_s: list[float] = []
    collector_s: list[float] = []
    errors: list[str] = []
    line.start()
    try:
        deadline = time.monotonic() + 60
        while table_version(raw) is None and time.monotonic() < deadline:
            time.sleep(0.2)
        with DashboardServer(port=free_port(), env=env, log_path=home / "dashboard.log") as server:
            server.wait_ready()
            stop = threading.Event()
            watcher = threading.Thread(target=_commits, args=(raw, stop, collector_s), daemon=True)
            watcher.start()
            with chromium() as browser:
                page = browser.new_page()
                page.on(
                    "console",
                    lambda m: (
                        errors.append(m.text)
                        if m.type == "error" and not any(p in (m.location.get("url") or "") for p in INHERENT_404)
                        else None
                    ),
                )
                page.goto(f"{server.url}/live")
                page.wait_for_selector("text=/plant time/", timeout=60_000)
                last = None
                end = time.monotonic() + args.seconds
                while time.monotonic() < end:
                    now = datetime.now(UTC)
                    shown = _shown(now, page.inner_text("body"))
                    if shown is not None and shown != last:
                        if last is not None:  # the first one was drawn before we looked
                            page_s.append((now - shown).total_seconds())
                        last = shown
                    time.sleep(0.05)
            stop.set()
            watcher.join()
    finally:
        codes = line.stop()
    if not page_s or not collector_s:
        print(f"dashboard_live: nothing measured (page {len(page_s)}, commits {len(collector_s)}); see {home}")
        return 1
    page_med, page_max = statistics.median(page_s), max(page_s)
    base_med, base_max = statistics.median(collector_s), max(collector_s)
    print(f"changes seen on the page: {len(page_s)} in {args.seconds:.0f} s; collector commits: {len(collector_s)}")
    print(f"collector (source_ts -> committed): median {base_med:.2f} s, max {base_max:.2f} s   (baseline 1.00x)")
    print(
        f"live page (source_ts -> shown):     median {page_med:.2f} s, max {page_max:.2f} s   "
        f"({page_med / base_med:.2f}x median, {page_max / base_max:.2f}x max)"
    )
    print(f"target: at most 3 s -> {'met' if page_max <= 3.0 else 'NOT met'}; browser console errors: {len(errors)}")
    for text in errors[:5]:
        print(f"  console: {text}")
    print(f"exit codes (collector, plc): {codes}")
    return 0 if page_max <= 3.0 else 1


if __name__ == "__main__":
    sys.exit(main())
