"""The dashboard as a person sees it: every page of `dashboard.navigation.PAGES` loaded in a real headless
Chromium (Debian's, tests/support/browser.py) from a real Streamlit server over the seeded lake.

Each page must finish its run with a title (h1), draw its charts (Vega-Lite, as svg or canvas) or say
plainly that it has nothing to show (an `st.info`), raise no Streamlit exception and log no console error
but Streamlit's two probes of `<page>/_stcore/health` and `<page>/_stcore/host-config` (404 on every page
but the root: inherent to Streamlit's multipage URLs). The OEE page must show gold's figures: the four
metrics equal `percent(roll_up(...))` of gold read with polars, for the default selection and for a
`?shift=` link. Screenshots of every page are kept as test artifacts in `$TWIN_TEST_ARTIFACTS/screenshots`
(default `.artifacts/screenshots/` of the repository).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from dashboard.navigation import PAGES, PageSpec
from dashboard.selection import DEFAULT_DAYS
from tests.conftest import free_port
from tests.support.browser import chromium
from tests.support.streamlit_page import EXCEPTION, settle
from twin_pipeline.launcher.dashboard_server import DashboardServer
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.transforms.oee import OeeFigures, percent, roll_up

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = Path(os.environ.get("TWIN_TEST_ARTIFACTS") or ROOT / ".artifacts") / "screenshots"
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
#: Milliseconds a page may take to finish its run and draw (two busy cores, a cold server's first imports).
TIMEOUT_MS = 60_000
#: The console error each of Streamlit's probes logs on a page's own URL (see the module docstring).
PROBES = ("_stcore/health", "_stcore/host-config")
PROBE_ERROR = "Failed to load resource: the server responded with a status of 404"


@dataclass
class Shown:
    """What one page load showed."""

    url: str
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions, probes excepted
    screenshot: Path | None = None


@pytest.fixture(scope="module")
def server(dashboard_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    log = tmp_path_factory.mktemp("dashboard") / "streamlit.log"
    with DashboardServer(port=free_port(), env=dashboard_env, log_path=log) as running:
        running.wait_ready()
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context per test: its own cookies, cache and console."""
    context = browser.new_context(viewport=VIEWPORT)
    try:
        yield context.new_page()
    finally:
        context.close()


def _probe(message: ConsoleMessage, page_url: str) -> bool:
    base = page_url.split("?", 1)[0].rstrip("/")
    where = message.location.get("url", "")
    return message.text.startswith(PROBE_ERROR) and where in {f"{base}/{probe}" for probe in PROBES}


def show(page: Page, url: str, name: str) -> Shown:
    """Load `url` in `page`, wait until it is rendered and save its screenshot as `<name>.png`."""
    shown = Shown(url)
    page.on(
        "console",
        lambda m: (
            shown.errors.append(f"console: {m.text} ({m.location.get('url')})")
            if m.type == "error" and not _probe(m, url)
            else None
        ),
    )
    page.on("pageerror", lambda e: shown.errors.append(f"uncaught: {e}"))
    page.goto(url)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shown.screenshot = SCREENSHOTS / f"{name}.png"
    try:
        settle(page, TIMEOUT_MS)
    except PlaywrightTimeoutError:
        page.screenshot(path=shown.screenshot, full_page=True)
        pytest.fail(
            f"{url} did not render within {TIMEOUT_MS / 1000:.0f} s: its run did not end, or it shows neither a "
            f"drawn chart nor an st.info empty-state message (see {shown.screenshot})"
        )
    page.screenshot(path=shown.screenshot, full_page=True)
    print(f"screenshot of {url}: {shown.screenshot}")
    return shown


def metrics(page: Page) -> dict[str, str]:
    """Every st.metric of the page: label -> the value shown."""
    found = {}
    for metric in page.locator('[data-testid="stMetric"]').all():
        label = metric.locator('[data-testid="stMetricLabel"]').inner_text().strip()
        found[label] = metric.locator('[data-testid="stMetricValue"]').inner_text().strip()
    return found


def headline(figures: OeeFigures) -> dict[str, str]:
    """The OEE page's four metrics as it labels them, from an `OeeFigures`."""
    return {
        "OEE": percent(figures.oee),
        "Availability": percent(figures.availability),
        "Performance": percent(figures.performance),
        "Quality": percent(figures.quality),
    }


@pytest.fixture(scope="module")
def gold(dashboard_lake: dict[str, Any]) -> pl.DataFrame:
    """gold/fact_oee_shift read directly with polars, not through the dashboard."""
    return pl.read_delta(str(table_path(dashboard_lake["lake"], Table.OEE_SHIFT).local))


@pytest.mark.parametrize("spec", PAGES, ids=lambda spec: spec.url_path)
def test_page_renders(server: DashboardServer, page: Page, spec: PageSpec) -> None:
    """Each page: a title, its charts drawn (or its empty-state message), no exception, a clean console."""
    shown = show(page, f"{server.url}/{spec.url_path}", spec.url_path)
    assert page.locator("h1").first.inner_text().strip(), f"{spec.url_path} has no title (st.title)"
    exceptions = page.locator(EXCEPTION).all_inner_texts()
    assert not exceptions, f"{spec.url_path} raised: {exceptions} (see {shown.screenshot})"
    assert not shown.errors, f"{spec.url_path} logged console errors: {shown.errors}"


def test_oee_page_shows_gold(
    server: DashboardServer, page: Page, gold: pl.DataFrame, dashboard_lake: dict[str, Any]
) -> None:
    """The default selection (the last DEFAULT_DAYS plant days: the seeded lake's only day, both lines):
    OEE, A, P and Q shown are gold's roll-up as a ratio of sums, one decimal."""
    assert gold.height == len(dashboard_lake["shifts"]) * len(dashboard_lake["lines"])
    assert len(dashboard_lake["shifts"]) <= 3 * DEFAULT_DAYS  # so the default selection is every gold row
    show(page, f"{server.url}/oee", "oee-default")
    assert page.locator("h1").first.inner_text() == "OEE trend"
    assert metrics(page) == headline(roll_up(gold))


def test_oee_shift_link(server: DashboardServer, page: Page, gold: pl.DataFrame) -> None:
    """`/oee?shift=<id>` (the link each OEE materialization carries) shows that shift: its roll-up in the four
    metrics and each line's gold OEE beside it."""
    shift_id = gold.sort("shift_start")["shift_id"].unique(maintain_order=True)[1]
    rows = gold.filter(pl.col("shift_id") == shift_id)
    expected = headline(roll_up(rows))
    assert expected != headline(roll_up(gold)), "the seeded shift must differ from the day, or this proves nothing"
    expected |= {f"OEE {line}": percent(oee) for line, oee in rows.select("line_id", "oee").iter_rows()}
    show(page, f"{server.url}/oee?shift={shift_id}", "oee-shift")
    assert page.locator("h1").first.inner_text() == f"OEE, shift {shift_id}"
    assert metrics(page) == expected
