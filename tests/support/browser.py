"""A real browser for the dashboard's tests and benches: Debian's Chromium (`/usr/bin/chromium`, which
`make test` installs when it is missing), driven by Playwright. Playwright's own browser download cannot
reach its host here, so it is pointed at the system binary.

The flags keep a headless Chromium off the network it cannot reach (background networking, component
updates, sync: without them it retries refused connections at every start) and fit a root container
(--no-sandbox)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed at the end (a fresh profile each time)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()
