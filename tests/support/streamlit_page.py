"""When a Streamlit page in a real browser shows what it will show: the one rule the browser tests
(tests/dashboard/test_browser.py) and the README screenshots (bench/screenshots.py) wait on.

Streamlit marks its root element with the script's state (`data-test-script-state`: initial, running,
notRunning), draws Vega-Lite charts after the run's messages arrive, and mounts some elements late (a
skeleton stands in while their code loads)."""

from __future__ import annotations

from playwright.sync_api import Page

CHART = '[data-testid="stVegaLiteChart"]'
EMPTY_STATE = '[data-testid="stAlertContentInfo"]'  # st.info: how a page says it has nothing to show
EXCEPTION = '[data-testid="stException"]'
SKELETON = '[data-testid="stSkeleton"], [data-testid="stSkeletonElement"], [data-testid="stAppSkeleton"]'
#: True once the page's first run is over and it shows what it will show: no element still loading its code
#: (a skeleton), at least one drawn chart and every visible chart drawn (a chart in a hidden tab draws when
#: shown), or an empty-state message; or an exception box. A page that refreshes itself (a fragment with
#: `run_every`) runs again and again; only its first run has to end.
RENDERED = f"""() => {{
    const app = document.querySelector('[data-testid="stApp"]');
    if (!app) return false;
    window.__firstRunEnded ||= app.getAttribute('data-test-script-state') === 'notRunning';
    if (!window.__firstRunEnded) return false;
    if (document.querySelector('{EXCEPTION}') !== null) return true;
    if (document.querySelector(`{SKELETON}`) !== null) return false;
    const charts = [...document.querySelectorAll('{CHART}')].filter(c => c.offsetParent !== null);
    const drawn = charts.length > 0 && charts.every(c => c.querySelector('svg, canvas'));
    return drawn || document.querySelector('{EMPTY_STATE}') !== null;
}}"""
#: RENDERED for STABLE_MS in a row: Streamlit draws a chart again when its width settles, and a component
#: that loads its code late mounts after the run is over.
STABLE_MS = 500
SETTLED = f"""() => {{
    if (!({RENDERED})()) {{ window.__renderedSince = null; return false; }}
    window.__renderedSince ??= performance.now();
    return performance.now() - window.__renderedSince >= {STABLE_MS};
}}"""


def settle(page: Page, timeout_ms: float) -> None:
    """Until the page just loaded is rendered (SETTLED); Playwright's TimeoutError when it never is."""
    page.wait_for_function(SETTLED, timeout=timeout_ms)
