"""The cloud half as one chain (issue 15): several edges, one lake; the lake in Azure Storage (Azurite);
bronze from the landed raw zone. Gold must not depend on how many edges collected a line, on where the
lake is, or on whether bronze read the edges' disks or the raw zone.

One seeded history (two lines, one early shift) is the reference: the single edge's local gold. The same
rows, split between two edges (by line, or by time with an overlap: a handover), must give the same gold,
locally and on an Azurite lake built from the landed raw zone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from deltalake import write_deltalake
from polars.testing import assert_frame_equal

from edge_collector.schemas import TABLES as EDGE_TABLES
from edge_collector.variability.history import seed_history, variability_from_toml
from tests.support.azurite import KEY, Azurite, azurite
from tests.support.built_once import built_once
from twin_pipeline.defs.bronze import assets as bronze_assets
from twin_pipeline.defs.bronze import checks as bronze_checks
from twin_pipeline.defs.gold import assets as gold_assets
from twin_pipeline.defs.gold import checks as gold_checks
from twin_pipeline.defs.gold import losses as gold_losses
from twin_pipeline.defs.gold import oee as gold_oee
from twin_pipeline.defs.landing.assets import LANDING_ASSETS
from twin_pipeline.defs.silver import assets as silver_assets
from twin_pipeline.defs.silver import checks as silver_checks
from twin_pipeline.lib.contracts import TABLES, table_path
from twin_pipeline.lib.lake_io import read_shifts
from twin_pipeline.lib.location import Location
from twin_pipeline.resources.lake import LakeResource
from twin_pipeline.resources.landing import LandingResource

SHIFT = "2026-11-24-0600"  # 05:00-13:00 UTC
NIGHT_BEFORE = "2026-11-23-2200"
LOCAL_TOML = Path(__file__).resolve().parents[2] / "edge_collector" / "local.toml"
START, END = datetime(2026, 11, 24, 4, 0, tzinfo=UTC), datetime(2026, 11, 24, 13, 30, tzinfo=UTC)
HANDOVER_FROM, HANDOVER_TO = datetime(2026, 11, 24, 8, 0, tzinfo=UTC), datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
HANDOVER_MID = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
MODULES = (bronze_assets, silver_assets, gold_assets, gold_oee, gold_losses)
CHECK_MODULES = (bronze_checks, silver_checks, gold_checks, gold_losses)
SHIFT_TABLES = [t for t in TABLES if not t.startswith("gold/dim_")]


def shift_assets() -> list[dg.AssetsDefinition | dg.AssetChecksDefinition]:
    assets = {
        id(a): a
        for m in MODULES
        for a in vars(m).values()
        if isinstance(a, dg.AssetsDefinition) and not isinstance(a, dg.AssetChecksDefinition) and a.partitions_def
    }
    checks = {id(c): c for m in CHECK_MODULES for c in vars(m).values() if isinstance(c, dg.AssetChecksDefinition)}
    return [*assets.values(), *checks.values()]


def build(lake: LakeResource) -> dg.ExecuteInProcessResult:
    result = dg.materialize(shift_assets(), partition_key=SHIFT, resources={"lake": lake}, raise_on_error=False)
    failed = [e for e in result.all_events if e.is_step_failure]
    assert result.success, failed[0].step_failure_data.error if failed else "failed"
    return result


def tables(root: str | Path) -> dict[str, pl.DataFrame]:
    """Every shift table of the lake at `root`, in a canonical row order."""
    out = {}
    for key in SHIFT_TABLES:
        frame = read_shifts(table_path(Location.of(root), key), [SHIFT])
        out[key] = frame.sort(frame.columns, nulls_last=True)
    return out


def assert_same_tables(actual: dict[str, pl.DataFrame], expected: dict[str, pl.DataFrame]) -> None:
    for key, want in expected.items():
        assert want.height or key.startswith(("gold/fact_reliability",)), f"{key}: the reference is empty"
        try:
            assert_frame_equal(actual[key], want, check_exact=False, rel_tol=0, abs_tol=1e-9)
        except AssertionError as exc:
            raise AssertionError(f"{key}: {exc}") from exc


def split(base: Path, target: Path, keep: Callable[[str], pl.Expr]) -> Path:
    """An edge lake at `target` holding the rows of `base`'s edge tables that `keep(table)` selects."""
    for table in EDGE_TABLES:
        source = base / "edge" / table
        if not (source / "_delta_log").exists():
            continue
        rows = pl.read_delta(str(source)).filter(keep(table))
        write_deltalake(str(target / "edge" / table), rows.to_arrow(), mode="append", partition_by=["day"])
    return target


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pl.DataFrame]]:
    """Two lines' history through one early shift, collected by one edge, and that edge's gold (read-only)."""

    def seed(folder: Path) -> str:
        variability, vseed = variability_from_toml(LOCAL_TOML)  # the local twin's faults, losses and drift
        seed_history(
            folder / "edge-0", ["L1", "L2"], START, END, seed=15, variability=variability, variability_seed=vseed
        )
        build(LakeResource(root=str(folder / "edge-0"), edges={"edge-0": str(folder / "edge-0")}))
        return str(folder / "edge-0")

    base = Path(built_once(tmp_path_factory, "cloud_chain", seed))
    return base, tables(base)


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite-chain")) as running:
        yield running


def by_line(line_id: str) -> Callable[[str], pl.Expr]:
    return lambda table: pl.col("line_id") == line_id


def test_two_edges_on_two_lines_give_one_gold_with_both_lines(seeded: tuple, tmp_path: Path) -> None:
    base, expected = seeded
    edges = {"edge-a": split(base, tmp_path / "a", by_line("L1")), "edge-b": split(base, tmp_path / "b", by_line("L2"))}
    lake = tmp_path / "lake"
    build(LakeResource(root=str(lake), edges={k: str(v) for k, v in edges.items()}))
    got = tables(lake)
    assert sorted(got["gold/fact_oee_shift"]["line_id"].to_list()) == ["L1", "L2"]
    assert_same_tables(got, expected)


def test_a_handover_collected_by_two_edges_is_not_counted_twice(seeded: tuple, tmp_path: Path) -> None:
    """Edge a collects until 10:00, edge b from 08:00: two hours of both lines arrive twice."""
    base, expected = seeded
    time = {t: "since_ts" if t == "subscriptions" else "received_ts" for t in EDGE_TABLES}
    time["gaps"], time["injected_events"] = "gap_start", "event_ts"

    # the samples of 08:00-10:00 reach both edges; the variability engine (ground truth) moves at 09:00
    cut = {t: (HANDOVER_TO, HANDOVER_FROM) for t in EDGE_TABLES} | {"injected_events": (HANDOVER_MID, HANDOVER_MID)}

    def until(table: str) -> pl.Expr:
        return pl.col(time[table]) < cut[table][0] if table != "subscriptions" else pl.lit(True)

    def since(table: str) -> pl.Expr:
        return pl.col(time[table]) >= cut[table][1] if table != "subscriptions" else pl.lit(True)

    a, b = split(base, tmp_path / "a", until), split(base, tmp_path / "b", since)
    doubled = pl.read_delta(str(a / "edge/raw_samples")).height + pl.read_delta(str(b / "edge/raw_samples")).height
    assert doubled > pl.read_delta(str(base / "edge/raw_samples")).height + 1000  # the overlap is real
    lake = tmp_path / "lake"
    build(LakeResource(root=str(lake), edges={"edge-a": str(a), "edge-b": str(b)}))
    assert_same_tables(tables(lake), expected)


def test_gold_built_on_an_azurite_lake_from_the_landed_raw_zone_equals_local_gold(
    seeded: tuple, emulator: Azurite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from azure.storage.blob import BlobServiceClient

    base, expected = seeded
    for var, value in emulator.lake_env().items():
        monkeypatch.setenv(var, value)
    service = BlobServiceClient(emulator.url(), credential={"account_name": "devstoreaccount1", "account_key": KEY})
    landing, _ = service.create_container("landing"), service.create_container("lake")
    edges = {"edge-a": split(base, tmp_path / "a", by_line("L1")), "edge-b": split(base, tmp_path / "b", by_line("L2"))}
    # landed by the landing assets, the night before too (it carries the lines' state and speed in)
    landed = dg.materialize(
        LANDING_ASSETS,
        tags={"dagster/asset_partition_range_start": NIGHT_BEFORE, "dagster/asset_partition_range_end": SHIFT},
        resources={
            "lake": LakeResource(root=str(tmp_path / "edge-box"), edges={k: str(v) for k, v in edges.items()}),
            "landing": LandingResource(
                account_url=emulator.url(), account_name="devstoreaccount1", account_key=KEY, container="landing"
            ),
        },
    )
    assert landed.success
    assert len(list(landing.list_blob_names(name_starts_with="raw/"))) == 2 * 2 * len(EDGE_TABLES)

    build(LakeResource(root="az://lake/twin", raw_zone="az://landing"))  # no edge on this machine: the raw zone
    assert_same_tables(tables("az://lake/twin"), expected)
    assert not (tmp_path / "lake").exists()
    names = {b.name.split("/")[2] for b in service.get_container_client("lake").list_blobs(name_starts_with="twin/")}
    assert {"samples", "state_intervals", "fact_oee_shift"} <= names
