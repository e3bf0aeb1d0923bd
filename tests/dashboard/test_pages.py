"""Every page of the dashboard through Streamlit's own harness (AppTest) over real Delta tables: a seeded
and materialized plant day, an empty lake, a provisional shift, a missing line, and the golden OEE
vectors. The OEE page's numbers are compared with gold read directly and with the vectors' hand-computed
ratio of sums."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.navigation import PAGES
from tests.support.azurite import KEY, azurite
from tests.support.built_once import built_once
from tests.support.dashboard_lake import build
from tests.support.golden import VECTORS as GOLDEN
from tests.support.golden import bronze as golden_bronze
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.lake_io import mark_provisional, replace_shifts
from twin_pipeline.lib.transforms.counters import part_counts
from twin_pipeline.lib.transforms.oee import oee_rows, percent, roll_up
from twin_pipeline.lib.transforms.states import state_intervals

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
MEASURES = {"OEE": "oee", "Availability": "availability", "Performance": "performance", "Quality": "quality"}


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return built_once(tmp_path_factory, "dashboard_lake", build)


@pytest.fixture(autouse=True)
def no_dagster(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Dagster UI to ask (a `make run` on this machine must not answer for the test)."""
    monkeypatch.setenv("TWIN_DAGSTER_URL", "http://127.0.0.1:9")
    monkeypatch.delenv("TWIN_EDGES", raising=False)


def page(lake: Path | str, script: str, monkeypatch: pytest.MonkeyPatch, **query: str) -> AppTest:
    monkeypatch.setenv("TWIN_LAKE", str(lake))
    at = AppTest.from_file(APP, default_timeout=60)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    if script != "views/oee.py":
        at.switch_page(script).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def gold(lake: Path | str, table: Table = Table.OEE_SHIFT) -> pl.DataFrame:
    return pl.read_delta(str(table_path(lake, table).local))


@pytest.mark.parametrize("spec", [p for p in PAGES if p.url_path != "live"], ids=lambda p: p.url_path)
def test_each_page_draws_the_seeded_day(seeded: dict[str, Any], spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(seeded["lake"], spec.script, monkeypatch)
    assert at.title[0].value.startswith(spec.title.split()[0]), at.title
    assert at.metric, "a page leads with its figures"
    assert not at.info, [i.value for i in at.info]  # the seeded day has data for every page
    assert at.get("vega_lite_chart"), "a page draws at least one chart"


@pytest.mark.parametrize("spec", [p for p in PAGES if p.url_path != "live"], ids=lambda p: p.url_path)
def test_each_page_says_what_to_do_on_an_empty_lake(tmp_path: Path, spec: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    at = page(tmp_path / "nothing-here", spec.script, monkeypatch)
    assert at.info and "Materialize" in at.info[0].value, spec.url_path


def test_the_oee_page_shows_gold_and_its_ratio_of_sums(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    rows = gold(seeded["lake"])
    at = page(seeded["lake"], "views/oee.py", monkeypatch)
    plant = roll_up(rows)
    assert metrics(at) == {label: percent(getattr(plant, name)) for label, name in MEASURES.items()}
    # the plant is the ratio of sums, not a mean of the line-shifts' ratios
    assert metrics(at)["Availability"] == percent(
        rows["actual_production_time_s"].sum() / rows["planned_busy_time_s"].sum()
    )
    assert metrics(at)["Quality"] == percent(rows["good"].sum() / rows["produced"].sum())
    shown = pl.from_pandas(at.dataframe[0].value).sort("shift_id", "line_id")
    expected = rows.sort("shift_id", "line_id").select(shown.columns)
    assert shown.height == 6
    for column in ("availability", "performance", "quality", "oee", "produced", "good", "reject"):
        assert shown[column].to_list() == expected[column].to_list(), column  # the gold values themselves
    assert not at.warning


def test_a_link_to_one_shift_shows_that_shift(seeded: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    shift_id = seeded["shifts"][1]
    rows = gold(seeded["lake"]).filter(pl.col("shift_id") == shift_id)
    at = page(seeded["lake"], "views/oee.py", monkeypatch, shift=shift_id)
    shown = metrics(at)
    assert at.title[0].value == f"OEE, shift {shift_id}"
    assert shown["OEE"] == percent(roll_up(rows).oee)
    for line_id in seeded["lines"]:
        assert shown[f"OEE {line_id}"] == percent(rows.filter(pl.col("line_id") == line_id)["oee"].item())
    assert pl.from_pandas(at.dataframe[0].value)["shift_id"].unique().to_list() == [shift_id]


def test_provisional_and_missing_lines_are_said(
    seeded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lake = tmp_path / "lake"
    shutil.copytree(seeded["lake"], lake)
    first, second = seeded["shifts"][:2]
    mark_provisional(table_path(lake, Table.OEE_SHIFT), [first], "check bronze_edge_caught_up failed")
    path = table_path(lake, Table.OEE_SHIFT)
    replace_shifts(path, gold(lake).filter((pl.col("shift_id") == second) & (pl.col("line_id") == "L1")), [second])
    at = page(lake, "views/oee.py", monkeypatch)
    warnings = " ".join(w.value for w in at.warning)
    assert "2 of 5 line-shift(s) are provisional" in warnings and "check bronze_edge_caught_up failed" in warnings
    assert f"No gold row for 1 line-shift(s): L2 in {second}" in warnings
    shown = pl.from_pandas(at.dataframe[0].value)
    assert shown.filter(pl.col("shift_id") == first)["provisional"].to_list() == [True, True]
    assert metrics(at)["OEE"] == percent(roll_up(gold(lake)).oee)


def test_the_oee_page_rolls_up_the_golden_vectors_as_computed_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two golden vectors of one shift (L1: a 20 min fault; L2: a counter wrap) as gold rows; the page's plant
    figures equal the ratio of the vectors' hand-computed sums."""
    vectors = [v for v in GOLDEN if v["name"] in ("steady_with_a_fault", "counter_wrap")]
    window = CALENDAR.window(vectors[0]["shift_id"])
    frames = []
    for v in vectors:
        samples = golden_bronze(v)
        intervals = state_intervals(samples, window, [v["line_id"]], [])
        frames.append(oee_rows(intervals, part_counts(samples, window), samples, window))
    lake = tmp_path / "golden"
    replace_shifts(table_path(lake, Table.OEE_SHIFT), pl.concat(frames), [window.shift_id])
    at = page(lake, "views/oee.py", monkeypatch)
    e = [v["expected"] for v in vectors]
    pbt, apt = sum(x["planned_busy_time_s"] for x in e), sum(x["actual_production_time_s"] for x in e)
    produced, good = sum(x["produced"] for x in e), sum(x["good"] for x in e)
    ideal = sum(x["ideal_cycle_time_s"] * x["produced"] for x in e)
    a, p, q = apt / pbt, ideal / apt, good / produced
    assert metrics(at) == {
        "OEE": percent(a * p * q),
        "Availability": percent(a),
        "Performance": percent(p),
        "Quality": percent(q),
    }
    shown = pl.from_pandas(at.dataframe[0].value).sort("line_id")
    for v, row in zip(sorted(vectors, key=lambda v: v["line_id"]), shown.iter_rows(named=True)):
        for name in ("availability", "performance", "quality", "oee"):
            assert row[name] == pytest.approx(v["expected"][name], abs=1e-9), (v["name"], name)


def test_an_adls_lake_shows_what_the_local_lake_shows(
    seeded: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same gold and silver in Azurite (`az://lake/twin`, as `TWIN_LAKE` names an ADLS lake): the OEE and the
    quality pages show the same figures as over the local folder."""
    from azure.storage.blob import BlobServiceClient

    local = {
        script: metrics(page(seeded["lake"], script, monkeypatch)) for script in ("views/oee.py", "views/quality.py")
    }
    (tmp_path / "azurite").mkdir()
    with azurite(tmp_path / "azurite") as emulator:
        for var, value in emulator.lake_env().items():
            monkeypatch.setenv(var, value)
        service = BlobServiceClient(emulator.url(), credential={"account_name": "devstoreaccount1", "account_key": KEY})
        service.create_container("lake")
        for table in (Table.OEE_SHIFT, Table.QUALITY, Table.PART_MEASUREMENTS):
            replace_shifts(table_path("az://lake/twin", table), gold(seeded["lake"], table), seeded["shifts"])
        remote = {script: metrics(page("az://lake/twin", script, monkeypatch)) for script in local}
    assert remote == local and local["views/oee.py"]["OEE"] != "n/a"
