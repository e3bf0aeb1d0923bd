"""Landing in Azure Blob Storage against Azurite: U1 (idempotent upload, lost response) and U2
(outage mid-upload) of shared/RELIABILITY.md, through a fault proxy on loopback."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient
from polars.testing import assert_frame_equal

from edge_collector.receipts import read as read_receipts
from edge_collector.schemas import TABLES as EDGE_TABLES
from edge_collector.schemas import edge_table_path
from tests.support.azurite import KEY, Azurite, azurite
from tests.support.edge_seed import seed_edge
from tests.support.fault_proxy import FaultProxy
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.integrations.landing import LandingError, client_for, land
from twin_pipeline.lib.raw_zone import ORDER, TABLES, belongs, object_name

BLOCK = 256 << 10  # small blocks, so a shift's object is a multi-block upload
NAME = object_name("raw_samples", "2026-11-24-0600", "edge-local")
NO_WAIT = {"sleep": lambda s: None}


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    with azurite(tmp_path_factory.mktemp("azurite")) as service:
        yield service


@pytest.fixture
def container(emulator: Azurite, request: pytest.FixtureRequest) -> ContainerClient:
    name = "landing-" + hashlib.sha256(request.node.name.encode()).hexdigest()[:12]
    client = client_for(emulator.url(), {"account_name": "devstoreaccount1", "account_key": KEY}, block_size=BLOCK)
    return client.create_container(name)


def through(proxy: FaultProxy, container: ContainerClient) -> ContainerClient:
    client = client_for(
        f"http://127.0.0.1:{proxy.port}/devstoreaccount1",
        {"account_name": "devstoreaccount1", "account_key": KEY},
        block_size=BLOCK,
        timeout_s=5,
    )
    return client.get_container_client(container.container_name)


def content(container: ContainerClient, name: str = NAME) -> bytes:
    return container.get_blob_client(name).download_blob().readall()


def test_u1a_the_same_upload_twice_is_one_blob(container: ContainerClient) -> None:
    """U1 (RELIABILITY.md): The same upload twice is one blob."""
    data = os.urandom(3 * BLOCK + 1000)
    first = land(container, NAME, data, **NO_WAIT)
    again = land(container, NAME, data, **NO_WAIT)
    assert first.uploaded and not again.uploaded and again.sha256 == first.sha256
    assert [b.name for b in container.list_blobs()] == [NAME]
    assert hashlib.sha256(content(container)).hexdigest() == first.sha256 == hashlib.sha256(data).hexdigest()
    # a re-run of the shift with other data replaces it: still one blob, the new content
    rerun = os.urandom(BLOCK // 2)
    assert land(container, NAME, rerun, **NO_WAIT).uploaded
    assert [b.name for b in container.list_blobs()] == [NAME] and content(container) == rerun


def test_u1b_a_lost_response_after_the_commit_is_retried_into_one_blob(
    emulator: Azurite, container: ContainerClient
) -> None:
    """U1 (RELIABILITY.md): A lost response after the commit is retried into one blob."""
    data = os.urandom(BLOCK // 2)  # one PUT: Azurite commits it, the client never hears
    # the first response (to "is it there already?": 404) passes, the PUT's is dropped
    with FaultProxy(emulator.port, pass_responses=1, drop_responses=1) as proxy:
        result = land(through(proxy, container), NAME, data, **NO_WAIT)
    assert result.attempts == 2 and not result.uploaded  # the retry found the identical object and stopped
    assert [b.name for b in container.list_blobs()] == [NAME] and content(container) == data


def test_u2_a_cut_mid_upload_leaves_no_partial_blob_and_a_retry_completes(
    emulator: Azurite, container: ContainerClient
) -> None:
    """U2 (RELIABILITY.md): A cut mid upload leaves no partial blob and a retry completes."""
    data = os.urandom(8 * BLOCK)
    with FaultProxy(emulator.port, cut_after_bytes=len(data) // 2) as proxy:
        with pytest.raises(LandingError, match="re-run the shift"):
            land(through(proxy, container), NAME, data, attempts=1, **NO_WAIT)
        assert proxy.cuts == 1
    with pytest.raises(ResourceNotFoundError):
        container.get_blob_client(NAME).get_blob_properties()  # half the blocks staged, nothing visible
    assert list(container.list_blobs()) == []
    # the same cut while replacing an earlier version: the earlier version stays whole
    old = os.urandom(BLOCK)
    land(container, NAME, old, **NO_WAIT)
    with FaultProxy(emulator.port, cut_after_bytes=len(data) // 2) as proxy:
        with pytest.raises(LandingError):
            land(through(proxy, container), NAME, data, attempts=1, **NO_WAIT)
    assert content(container) == old
    # a later retry (the link is back) completes and verifies
    with FaultProxy(emulator.port, cut_after_bytes=len(data) // 2) as proxy:
        result = land(through(proxy, container), NAME, data, attempts=3, **NO_WAIT)
    assert result.uploaded and result.attempts == 2 and content(container) == data


def test_retries_back_off_with_a_cap_and_then_say_what_to_do(container: ContainerClient, tmp_path: Path) -> None:
    """U3 (capped backoff only) (RELIABILITY.md): Retries back off with a cap and then say what to do."""
    dead = client_for(
        f"http://127.0.0.1:{FaultProxy(1).port}/devstoreaccount1",
        {"account_name": "devstoreaccount1", "account_key": KEY},
        timeout_s=2,
    )
    waits: list[float] = []
    with pytest.raises(LandingError, match=r"after 6 attempts.*check the storage account URL"):
        land(dead.get_container_client("nowhere"), NAME, b"x", backoff_s=1.0, backoff_cap_s=4.0, sleep=waits.append)
    assert len(waits) == 5 and all(0 <= w <= 4.0 for w in waits)


# ------------------------------------------------------------------ every edge table, per shift, per edge
#: Two edges (two collectors, one line each) over 22 h: four shifts cover UTC day 2026-11-24 wholly.
SEEDED = (datetime(2026, 11, 24, 3, tzinfo=UTC), datetime(2026, 11, 25, 1, tzinfo=UTC))
SHIFTS = ["2026-11-23-2200", "2026-11-24-0600", "2026-11-24-1400", "2026-11-24-2200"]
EDGES = {"edge-a": "L1", "edge-b": "L2"}
CONTAINER = "raw-zone"


@dataclass
class Landed:
    edges: dict[str, Path]
    container: ContainerClient
    runs: list[dict[str, dict[str, Any]]]  # per run: asset key -> its run metadata
    shift_meta: dict[tuple[str, str], dict[str, Any]]  # (asset key, shift) -> the partition's metadata


def _land(shifts: list[str]) -> tuple[dict[str, dict[str, Any]], dict[tuple[str, str], dict[str, Any]]]:
    """Materialize every landing asset for `shifts` in one run (a single-run backfill)."""
    from twin_pipeline.defs.landing.assets import LANDING_ASSETS
    from twin_pipeline.defs.resources import resources_for

    tags = {"dagster/asset_partition_range_start": shifts[0], "dagster/asset_partition_range_end": shifts[-1]}
    result = dg.materialize(LANDING_ASSETS, tags=tags, resources=resources_for("azure"))
    assert result.success
    run: dict[str, dict[str, Any]] = {}
    per_shift: dict[tuple[str, str], dict[str, Any]] = {}
    for event in result.get_asset_materialization_events():
        mat = event.event_specific_data.materialization  # type: ignore[union-attr]
        meta = {k: v.value for k, v in mat.metadata.items()}
        key = mat.asset_key.to_user_string()
        per_shift[(key, mat.partition)] = meta
        run[key] = meta
    return run, per_shift


@pytest.fixture(scope="module")
def landed(emulator: Azurite, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Landed]:
    """The two edges seeded, then the first three shifts landed twice (the second run must be a no-op)."""
    root = tmp_path_factory.mktemp("edges")
    edges = {edge_id: root / edge_id for edge_id in EDGES}
    for i, (edge_id, line) in enumerate(EDGES.items()):
        seed_edge(edges[edge_id], [line], *SEEDED, seed=i + 1)
    with pytest.MonkeyPatch.context() as mp:
        for var, value in {
            "TWIN_PROFILE": "azure",
            "TWIN_HOME": str(root / "home"),
            "TWIN_EDGES": ",".join(f"{e}={p}" for e, p in edges.items()),
            "TWIN_FIRST_SHIFT": SHIFTS[0],
            "AZURE_STORAGE_ACCOUNT_URL": emulator.url(),
            "AZURE_STORAGE_ACCOUNT": "devstoreaccount1",
            "AZURE_STORAGE_KEY": KEY,
            "TWIN_LANDING_CONTAINER": CONTAINER,
        }.items():
            mp.setenv(var, value)
        first, per_shift = _land(SHIFTS[:3])
        again, _ = _land(SHIFTS[:3])
        container = client_for(
            emulator.url(), {"account_name": "devstoreaccount1", "account_key": KEY}
        ).get_container_client(CONTAINER)
        yield Landed(edges, container, [first, again], per_shift)


def test_every_edge_table_is_landed_per_shift_and_per_edge(landed: Landed) -> None:
    """Every table of the raw zone, each shift, each edge: one object holding exactly the edge rows
    `belongs` gives, sorted; the two collectors' lines land side by side in one raw zone; an empty slice
    is an empty Parquet with the edge schema."""
    names = {b.name for b in landed.container.list_blobs()}
    assert names == {object_name(t, s, e) for t in TABLES for s in SHIFTS[:3] for e in EDGES}
    for edge_id, line in EDGES.items():
        for table in TABLES:
            edge = pl.read_delta(str(edge_table_path(landed.edges[edge_id], table)))
            for shift in SHIFTS[:3]:
                got = pl.read_parquet(content(landed.container, object_name(table, shift, edge_id)))
                want = edge.filter(belongs(table, CALENDAR.window(shift))).select(got.columns).sort(ORDER[table])
                assert got.columns == EDGE_TABLES[table].names
                assert_frame_equal(got, want)
                assert set(got["line_id"].drop_nulls()) <= {line}
                meta = landed.shift_meta[(f"landing/{table}", shift)]
                assert meta["dagster/row_count"] == sum(
                    pl.read_parquet(content(landed.container, object_name(table, shift, e))).height for e in EDGES
                )
    samples = pl.read_parquet(content(landed.container, object_name("raw_samples", SHIFTS[1], "edge-a")))
    assert samples.height > 20_000 and samples["line_id"].unique().to_list() == ["L1"]
    empty = pl.read_parquet(content(landed.container, object_name("gaps", SHIFTS[2], "edge-b")))
    assert empty.height == 0 and empty.columns == EDGE_TABLES["gaps"].names
    first = landed.runs[0]
    assert {k: (m["run/objects_uploaded"], m["run/shifts"]) for k, m in first.items()} == {
        f"landing/{t}": (6, 3) for t in TABLES
    }
    assert first["landing/raw_samples"]["run/bytes"] > 0 and first["landing/raw_samples"]["run/mb_per_s"] > 0


def test_a_rerun_uploads_nothing_and_keeps_one_receipt_per_object(landed: Landed) -> None:
    """A re-run finds every object identical (nothing uploaded), and the edge keeps one receipt per
    (table, shift, edge), whose SHA-256 is the object's."""
    again = landed.runs[1]
    assert {k: (m["run/objects_uploaded"], m["run/objects_unchanged"]) for k, m in again.items()} == {
        f"landing/{t}": (0, 6) for t in TABLES
    }
    for edge_id, lake in landed.edges.items():
        receipts = read_receipts(lake)
        assert receipts.height == len(TABLES) * 3
        assert receipts.select("table", "shift_id").unique().height == receipts.height
        assert set(receipts["edge_id"]) == {edge_id}
        for r in receipts.iter_rows(named=True):
            props = landed.container.get_blob_client(r["object"]).get_blob_properties()
            assert props.metadata["sha256"] == r["sha256"] and props.size == r["bytes"]
            assert sum(d["rows"] for d in r["day_rows"]) == r["rows"]


def test_the_edge_prunes_only_landed_days_and_a_pruned_shift_is_never_landed_again(
    landed: Landed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Retention on a landed edge: 2026-11-24 stays while its last shift is not landed and goes once it is;
    2026-11-25 stays (not landed to its end); re-landing a shift of a pruned day from that edge is refused
    (its slice would be partial), so the verified objects stay."""
    from edge_collector.lake.maintenance import prune

    lake = landed.edges["edge-a"]
    now = datetime(2026, 12, 8, tzinfo=UTC)
    report = prune(lake, 7, now=now)
    kept = {d.day: " ".join(d.kept.values()) for d in report.plan.kept_unlanded}
    assert report.days_pruned == 0 and set(kept) == {"2026-11-24", "2026-11-25"}
    assert "not landed: the edge is landed until 2026-11-24 21:00 UTC" in kept["2026-11-24"]
    for var, value in {
        "TWIN_PROFILE": "azure",
        "TWIN_EDGES": f"edge-a={lake}",
        "TWIN_FIRST_SHIFT": SHIFTS[0],
        "TWIN_HOME": str(tmp_path),
        "TWIN_LANDING_CONTAINER": CONTAINER,
        "AZURE_STORAGE_ACCOUNT_URL": landed.container.url.rsplit("/", 1)[0],
        "AZURE_STORAGE_ACCOUNT": "devstoreaccount1",
        "AZURE_STORAGE_KEY": KEY,
    }.items():
        monkeypatch.setenv(var, value)
    run, _ = _land(SHIFTS)  # the day's last shift lands
    assert (
        run["landing/raw_samples"]["run/objects_uploaded"],
        run["landing/raw_samples"]["run/objects_unchanged"],
    ) == (
        1,
        3,
    )
    report = prune(lake, 7, now=now)
    assert [d.day for d in report.plan.days if d.pruned] == ["2026-11-24"]
    assert [d.day for d in report.plan.kept_unlanded] == ["2026-11-25"]
    assert report.rows_pruned > 50_000 and report.bytes_pruned > 0
    assert pl.read_delta(str(edge_table_path(lake, "raw_samples")))["day"].unique().to_list() == ["2026-11-25"]
    assert not (edge_table_path(lake, "raw_samples") / "day=2026-11-24").exists()  # the disk is freed now
    name = object_name("raw_samples", SHIFTS[1], "edge-a")
    before = landed.container.get_blob_client(name).get_blob_properties()
    again, _ = _land(SHIFTS)  # every shift touches the pruned day: none is landed again from this edge
    assert {k: (m["run/objects_skipped"], m["run/objects_uploaded"]) for k, m in again.items()} == {
        f"landing/{t}": (4, 0) for t in TABLES
    }
    assert landed.container.get_blob_client(name).get_blob_properties().etag == before.etag


@pytest.fixture
def azure_defs() -> Iterator[None]:
    """`defs()` under the azure profile imports the defs modules with that profile's choices (bronze picks its
    deps at import): forget the modules it imported, so a later local-profile test imports them afresh."""
    mine = ("twin_pipeline.defs", "twin_pipeline.definitions")
    before = {name for name in sys.modules if name.startswith(mine)}
    yield
    for name in [n for n in sys.modules if n.startswith(mine) and n not in before]:
        del sys.modules[name]


@pytest.mark.usefixtures("azure_defs")
def test_the_azure_profile_defines_one_landing_asset_per_edge_table(
    emulator: Azurite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`landing/<table>` for every table of the raw zone, downstream of `edge/<table>`, shift-partitioned,
    a range in one run, in the shift job the schedule runs."""
    from twin_pipeline.definitions import defs

    monkeypatch.setenv("TWIN_PROFILE", "azure")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_URL", emulator.url())
    graph = defs().resolve_asset_graph()
    landing = {k for k in graph.get_all_asset_keys() if k.path[0] == "landing"}
    assert landing == {dg.AssetKey(["landing", t]) for t in TABLES}
    for key in landing:
        node = graph.get(key)
        assert node.parent_keys == {dg.AssetKey(["edge", key.path[1]])} and node.group_name == "landing"
        assert node.backfill_policy == dg.BackfillPolicy.single_run() and node.partitions_def is not None
    assert landing <= defs().resolve_job_def("shift_oee").asset_layer.selected_asset_keys


def test_the_azure_profile_says_which_settings_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_pipeline.defs.resources import resources_for

    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    with pytest.raises(ValueError, match=r"(?s)needs AZURE_STORAGE_ACCOUNT_URL in the environment.*AZURE_STORAGE_KEY"):
        resources_for("azure")
