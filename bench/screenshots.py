"""The README's screenshots of a running dashboard: each page loaded in Debian's chromium at 1400x900, once
its charts are drawn (tests/support/streamlit_page.py), with Streamlit's toolbar, header and decoration
hidden, written as `<out>/dashboard-<page>.png`.

    make run                                   # in another terminal: the twin, its dashboard on :8501
    .venv/bin/python bench/screenshots.py      # docs/img/dashboard-oee.png, docs/img/dashboard-live.png
    .venv/bin/python bench/screenshots.py --url http://127.0.0.1:8501 --out docs/img --pages oee live stops

Not a benchmark: it lives here because it drives a browser like the benchmarks do (Playwright is a
development dependency).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.support.browser import chromium
from tests.support.streamlit_page import EXCEPTION, settle

#: Streamlit's chrome, not the page: the toolbar (deploy and menu), the header strip, the coloured
#: decoration line and the "running" status widget.
HIDE_CHROME = """
[data-testid="stToolbar"], [data-testid="stHeader"], [data-testid="stDecoration"],
[data-testid="stStatusWidget"] { visibility: hidden !important; }
"""


def main() -> int:
    parser = argparse.ArgumentParser(
        description="Screenshots of a running dashboard's pages (1400x900 PNGs, once their charts are drawn)."
    )
    parser.add_argument("--url", default="http://127.0.0.1:8501", help="the dashboard (default: make run's)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "img", help="folder for dashboard-<page>.png")
    parser.add_argument("--pages", nargs="+", default=["oee", "live"], help="url paths (default: oee live)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds a page may take to render")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    failed = 0
    with chromium() as browser:
        for name in args.pages:
            context = browser.new_context(viewport={"width": args.width, "height": args.height})
            try:
                page = context.new_page()
                url = f"{args.url.rstrip('/')}/{name.strip('/')}"
                page.goto(url)
                try:
                    settle(page, args.timeout * 1000)
                except PlaywrightTimeoutError:
                    print(f"{url}: not rendered within {args.timeout:.0f} s (no drawn chart, no message)")
                    failed += 1
                    continue
                if page.locator(EXCEPTION).count():
                    print(f"{url}: the page shows an exception; not kept")
                    failed += 1
                    continue
                page.add_style_tag(content=HIDE_CHROME)
                page.mouse.move(0, 0)  # no hover tooltip on a chart
                target = args.out / f"dashboard-{name.strip('/').replace('/', '-')}.png"
                page.screenshot(path=target)
                print(f"{url} -> {target}")
            finally:
                context.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
