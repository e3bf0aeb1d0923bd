"""The longest test files first under pytest-xdist, so `make test`'s two workers finish together.

`make test` hands out whole files (`--dist loadfile`), in collection order (`--no-loadscope-reorder`;
xdist's own order, most tests first, put the long one- and two-test files last: one worker ran
`twin up` or the soak alone while the other had nothing left). Longest first is the classic greedy
schedule: what is left at the end is short. A file not listed here counts as short; list one that
takes more than about 20 s (the `--durations` of `make test` show it). A plain `pytest` run (no
workers) keeps the collection order.
"""

from __future__ import annotations

import pytest

#: Seconds of a file's tests in `make test` (two workers on two busy cores, 2026-12-07; the two Spark files
#: scaled by their measured cut of 2026-12-08, about 0.7), rounded: only the order matters.
FILE_SECONDS = {
    "tests/twin_pipeline/test_dagster_reliability.py": 280,
    "tests/twin_pipeline/test_graphql_backfill.py": 145,
    "tests/twin_pipeline/test_spark_medallion.py": 140,
    "tests/twin_pipeline/test_twin_up.py": 135,
    "tests/twin_pipeline/test_spark_oee.py": 130,
    "tests/edge_collector/test_cli_run.py": 85,
    "tests/edge_collector/test_soak.py": 70,
    "tests/edge_collector/test_half_open.py": 62,
    "tests/edge_collector/test_datalogger.py": 60,
    "tests/dashboard/test_browser.py": 75,  # with the seeded lake's build (tests/support/dashboard_lake.py)
    "tests/dashboard/test_pages.py": 60,
    "tests/dashboard/test_live.py": 25,
    "tests/edge_collector/test_collector.py": 43,
    "tests/plc/test_cli.py": 38,
    "tests/twin_pipeline/test_oee.py": 37,
    "tests/twin_pipeline/test_definitions.py": 30,
    "tests/edge_collector/test_datalogger_chaos.py": 29,
    "tests/edge_collector/test_rogue_server.py": 29,
    "tests/edge_collector/test_decoder_fuzz.py": 27,
    "tests/twin_pipeline/test_bronze.py": 24,
    "tests/edge_collector/test_node_opcua.py": 24,
}


def _file(item: pytest.Item) -> str:
    return item.nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not hasattr(config, "workerinput"):  # not an xdist worker: nothing to balance
        return
    tests: dict[str, int] = {}
    for item in items:
        tests[_file(item)] = tests.get(_file(item), 0) + 1
    # listed files by their seconds; the rest as xdist would order them (most tests first); stable: each
    # file's tests stay in their order
    items.sort(key=lambda item: (-FILE_SECONDS.get(_file(item), 0), -tests[_file(item)]))
