"""First render of the dashboard's OEE page over 28 days x 8 lines of gold, against reading those gold rows.

Issue 16's target: the OEE page's first render with 28 days x 8 lines of gold (672 line-shifts) in at most
2 s on this machine. The lake holds only `gold/fact_oee_shift` (the one table the page reads): synthetic
but contract-true rows (`contracts.FACT_OEE_SHIFT`, the shift calendar's windows, every ratio from
`oee.oee()`), written with `lake_io.replace_shifts` as gold writes them.

Measured:
- baseline: reading those gold rows with polars as the dashboard does (`dashboard.lake.read_all`), median of
  `--reads`;
- first render: `twin_pipeline/launcher/dashboard_server.py` serving the dashboard, /oee opened in a fresh
  Chromium context (Debian's, tests/support/browser.py), timed from navigation start to the four metrics
  shown and every visible chart drawn, as the page itself records it (performance.now(), so Playwright's
  own round trips are outside). Cold: the first page of a fresh server (its imports, the first gold read);
  `--cold` servers, median. Warm: a new browser context (a new Streamlit session) on a server that has
  served the page before, `--warm` times, median; and as a returning browser (one context reloading the
  page: a new session each time, Streamlit's JavaScript from the browser's cache). The server imports the
  page's libraries (pandas, altair, polars, deltalake) before Streamlit starts
  (`dashboard_server.PRELOAD`), so a cold first page does not pay them.
Each render is split into its phases: the HTML and Streamlit's JavaScript loaded, the websocket
connected, the page's Python run (script state running -> notRunning), then the metrics and the charts
drawn after the run.

    python bench/dashboard_render.py [--days 28] [--lines 8] [--cold 3] [--warm 5] [--reads 7]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import polars as pl
from common import free_port
from playwright.sync_api import Browser, Page, ViewportSize

from dashboard.lake import read_all
from tests.support.browser import chromium
from twin_pipeline.launcher.dashboard_server import DashboardServer
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.contracts import FACT_OEE_SHIFT, Table, table_path
from twin_pipeline.lib.lake_io import replace_shifts
from twin_pipeline.lib.location import Location
from twin_pipeline.lib.transforms.oee import OeeInputs, oee

TARGET_S = 2.0
START = datetime(2026, 11, 1, 5, 0, tzinfo=UTC)  # 06:00 in Berlin, a shift start
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
TIMEOUT_MS = 120_000

#: Recorded by the page from its first script on: when each phase was first seen (ms since navigation start).
RECORDER = """
(() => {
  const seen = {};
  window.__twinRender = seen;
  const mark = (name, done) => { if (!(name in seen) && done) seen[name] = performance.now(); };
  const poll = () => {
    const app = document.querySelector('[data-testid="stApp"]');
    const state = app && app.getAttribute('data-test-script-state');
    mark('connected', app && app.getAttribute('data-test-connection-state') === 'CONNECTED');
    mark('run_start', state === 'running');
    mark('run_end', 'run_start' in seen && state === 'notRunning');
    const values = [...document.querySelectorAll('[data-testid="stMetricValue"]')].filter(
      v => v.offsetParent !== null && v.textContent.trim() !== '');
    mark('metrics', values.length >= 4);
    const charts = [...document.querySelectorAll('[data-testid="stVegaLiteChart"]')].filter(
      c => c.offsetParent !== null);
    mark('charts', charts.length > 0 && charts.every(c => c.querySelector('svg, canvas')));
    if (!('metrics' in seen && 'charts' in seen && 'run_end' in seen)) setTimeout(poll, 5);
  };
  poll();
})();
"""


@dataclass(frozen=True)
class Render:
    """One first render, in seconds since navigation start."""

    html: float  # the document loaded (Streamlit's JavaScript included)
    connected: float
    run_start: float
    run_end: float
    metrics: float
    charts: float
    wall: float  # from Playwright's goto to the page reporting both, outside the page's clock

    @property
    def first_render(self) -> float:
        return max(self.metrics, self.charts)


def gold_rows(days: int, lines: int, seed: int = 16) -> tuple[pl.DataFrame, list[str]]:
    """`days` x the calendar's shifts x `lines` rows of fact_oee_shift, each consistent with `oee.oee()`."""
    rng = random.Random(seed)
    windows = load_calendar().windows(START, START + timedelta(days=days))
    rows = []
    for number, window in enumerate(windows):
        for line in range(1, lines + 1):
            pbt = window.planned_busy_time_s
            apt = pbt * rng.uniform(0.70, 0.95)
            unknown = 0.0
            fault, stop = (pbt - apt) * rng.uniform(0.2, 0.5), (pbt - apt) * rng.uniform(0.2, 0.4)
            setup = pbt - apt - fault - stop - unknown
            cycle = 60.0 / (100 + 10 * line)  # design speed in parts per minute
            produced = int(apt * rng.uniform(0.80, 0.98) / cycle)
            reject = int(produced * rng.uniform(0.005, 0.03))
            figures = oee(OeeInputs(pbt, apt, cycle, produced, produced - reject))
            last = number == len(windows) - 1
            rows.append(
                {
                    "shift_id": window.shift_id,
                    "line_id": f"L{line}",
                    "shift_name": window.name,
                    "shift_start": window.start,
                    "shift_end": window.end,
                    "shift_length_s": window.duration_s,
                    "planned_downtime_s": window.planned_downtime_s,
                    "planned_busy_time_s": pbt,
                    "actual_production_time_s": apt,
                    "downtime_fault_s": fault,
                    "downtime_stop_s": stop,
                    "downtime_setup_s": setup,
                    "unknown_time_s": unknown,
                    "ideal_cycle_time_s": cycle,
                    "produced": produced,
                    "good": produced - reject,
                    "reject": reject,
                    "produced_in_breaks": 0,
                    "production_in_breaks_s": 0.0,
                    "availability": figures.availability,
                    "performance": figures.performance,
                    "quality": figures.quality,
                    "oee": figures.oee,
                    "performance_above_1": figures.performance_above_1,
                    "provisional": last,  # the shift still running, as in a live twin
                    "provisional_reason": "shift not over" if last else None,
                }
            )
    return pl.DataFrame(rows, schema=FACT_OEE_SHIFT), [w.shift_id for w in windows]


def read_seconds(lake: Path, times: int) -> list[float]:
    seconds = []
    for _ in range(times):
        started = time.perf_counter()
        frame = read_all(Location.of(lake), Table.OEE_SHIFT)
        seconds.append(time.perf_counter() - started)
        assert frame.height, "the gold table read back empty"
    return seconds


def recording(page: Page) -> Page:
    page.add_init_script(RECORDER)
    return page


def render(browser: Browser, url: str) -> Render:
    """/oee in a fresh context (a new Streamlit session, an empty browser cache), until its metrics and
    charts show."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        return render_in(recording(context.new_page()), url)
    finally:
        context.close()


def render_in(page: Page, url: str) -> Render:
    """/oee loaded in `page` (again: a new Streamlit session, the browser's cache as it is); the page has
    RECORDER as an init script (`recording`)."""
    started = time.perf_counter()
    page.goto(f"{url}/oee", wait_until="commit")
    page.wait_for_function(
        "() => window.__twinRender && ['metrics', 'charts', 'run_end'].every(k => k in window.__twinRender)",
        timeout=TIMEOUT_MS,
        polling=10,
    )
    wall = time.perf_counter() - started
    seen = page.evaluate("() => window.__twinRender")
    html = page.evaluate("() => performance.getEntriesByType('navigation')[0].loadEventEnd")
    errors = page.locator('[data-testid="stException"]').count()
    if errors:
        raise RuntimeError(f"the OEE page raised ({errors} exception box(es))")
    return Render(
        html=html / 1000,
        connected=seen.get("connected", float("nan")) / 1000,
        run_start=seen.get("run_start", float("nan")) / 1000,
        run_end=seen.get("run_end", float("nan")) / 1000,
        metrics=seen["metrics"] / 1000,
        charts=seen["charts"] / 1000,
        wall=wall,
    )


def returning_renders(browser: Browser, url: str, times: int) -> list[Render]:
    """/oee reloaded in one context: each a new Streamlit session, Streamlit's JavaScript from the browser's
    cache (a person coming back to the page); the first load, which fills the cache, is not counted."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        page = recording(context.new_page())
        render_in(page, url)
        return [render_in(page, url) for _ in range(times)]
    finally:
        context.close()


def serve(lake: Path, home: Path) -> DashboardServer:
    env = {
        "TWIN_LAKE": str(lake),
        "TWIN_HOME": str(home),
        "TWIN_EDGES": "",
        "TWIN_DAGSTER_URL": f"http://127.0.0.1:{free_port()}",  # nobody: the OEE page does not ask Dagster
    }
    return DashboardServer(port=free_port(), env=env, log_path=home / "streamlit.log")


def line(name: str, renders: list[Render], baseline: float) -> str:
    first = statistics.median(r.first_render for r in renders)
    phases = {
        "html+js": statistics.median(r.html for r in renders),
        "connected": statistics.median(r.connected for r in renders),
        "run start": statistics.median(r.run_start for r in renders),
        "run end": statistics.median(r.run_end for r in renders),
        "metrics": statistics.median(r.metrics for r in renders),
        "charts": statistics.median(r.charts for r in renders),
    }
    verdict = "within" if first <= TARGET_S else "ABOVE"
    wall = statistics.median(r.wall for r in renders)
    return (
        f"{name}: first render {first:.2f} s ({verdict} the {TARGET_S:.0f} s target; "
        f"{first / baseline:,.0f}x the gold read; n={len(renders)}, wall {wall:.2f} s)\n"
        + "  at: "
        + ", ".join(f"{k} {v:.2f}" for k, v in phases.items())
        + f"; the page's Python run {statistics.median(r.run_end - r.run_start for r in renders):.2f} s"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description="First render of the dashboard's OEE page (28 days x 8 lines of gold) against reading "
        "those gold rows with polars; target: at most 2 s."
    )
    parser.add_argument("--days", type=int, default=28, help="days of gold (default 28)")
    parser.add_argument("--lines", type=int, default=8, help="lines (default 8)")
    parser.add_argument(
        "--cold",
        type=int,
        default=2,
        help="fresh servers, each timing its first page (default 2)",
    )
    parser.add_argument("--warm", type=int, default=5, help="renders on a warm server (default 5)")
    parser.add_argument("--reads", type=int, default=7, help="gold reads for the baseline (default 7)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dashboard-render-") as tmp:
        lake, home = Path(tmp) / "lake", Path(tmp) / "home"
        home.mkdir()
        started = time.perf_counter()
        frame, shift_ids = gold_rows(args.days, args.lines)
        replace_shifts(table_path(Location.of(lake), Table.OEE_SHIFT), frame, shift_ids)
        print(
            f"gold/fact_oee_shift: {frame.height} rows ({args.days} days x {len(shift_ids) // args.days} shifts x "
            f"{args.lines} lines) written in {time.perf_counter() - started:.2f} s; cores: {os.cpu_count()}, "
            f"load average {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        reads = read_seconds(lake, args.reads)
        baseline = statistics.median(reads)
        print(
            f"baseline: gold read with polars (dashboard.lake.read_all) {baseline * 1000:.1f} ms "
            f"(median of {len(reads)}; first {reads[0] * 1000:.1f} ms)",
            flush=True,
        )

        cold: list[Render] = []
        warm: list[Render] = []
        returning: list[Render] = []
        ready: list[float] = []
        with chromium() as browser:
            for run in range(max(args.cold, 1)):
                with serve(lake, home) as server:
                    started = time.perf_counter()
                    server.wait_ready()
                    ready.append(time.perf_counter() - started)
                    cold.append(render(browser, server.url))
                    if run == 0:  # the warm renders: the same server, past its first page
                        warm.extend(render(browser, server.url) for _ in range(args.warm))
                        returning.extend(returning_renders(browser, server.url, args.warm))
        print(line("cold", cold, baseline) + f"; server ready in {statistics.median(ready):.2f} s")
        if warm:
            print(line("warm", warm, baseline))
            print(line("warm, a returning browser (its cache kept)", returning, baseline))
        print(f"load average after: {os.getloadavg()[0]:.1f}")
        return 0


if __name__ == "__main__":
    sys.exit(main())
