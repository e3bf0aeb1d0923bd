"""The pages, in menu order: one list that the app, its tests and the links into it share."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    script: str  # relative to dashboard/app.py
    title: str
    url_path: str  # http://<host>:8501/<url_path>
    icon: str
    section: str


PAGES: tuple[PageSpec, ...] = (
    PageSpec("views/live.py", "Live line", "live", ":material/sensors:", "Now"),
    PageSpec("views/oee.py", "OEE trend", "oee", ":material/monitoring:", "Shifts"),
    PageSpec("views/losses.py", "Losses", "losses", ":material/waterfall_chart:", "Shifts"),
    PageSpec("views/stops.py", "Stops", "stops", ":material/bar_chart:", "Shifts"),
    PageSpec("views/quality.py", "Quality", "quality", ":material/straighten:", "Shifts"),
    PageSpec("views/reliability.py", "Reliability", "reliability", ":material/build:", "Shifts"),
    PageSpec("views/data_quality.py", "Data quality", "data-quality", ":material/fact_check:", "Pipeline"),
)

#: The page the root URL opens.
START = "oee"


def page(url_path: str) -> PageSpec:
    return next(p for p in PAGES if p.url_path == url_path)
