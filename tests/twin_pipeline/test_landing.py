"""Landing in Azure Blob Storage against Azurite: U1 (idempotent upload, lost response) and U2
(outage mid-upload) of shared/RELIABILITY.md, through a fault proxy on loopback."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import ContainerClient

from tests.support.azurite import KEY, Azurite, azurite
from tests.support.fault_proxy import FaultProxy
from twin_pipeline.lib.integrations.landing import LandingError, blob_name, client_for, land

BLOCK = 256 << 10  # small blocks, so a shift's object is a multi-block upload
NAME = blob_name("2026-11-24-0600")
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


def test_the_azure_profile_lands_each_shift_once(
    emulator: Azurite, edge_lake: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """U1 (RELIABILITY.md): The azure profile lands each shift once."""
    import shutil

    import dagster as dg
    import polars as pl

    from twin_pipeline.definitions import defs
    from twin_pipeline.defs.landing.assets import landing_raw_samples
    from twin_pipeline.defs.resources import resources_for

    shutil.copytree(edge_lake, tmp_path / "twin" / "lake")
    for var, value in {
        "TWIN_PROFILE": "azure",
        "TWIN_HOME": str(tmp_path / "twin"),
        "AZURE_STORAGE_ACCOUNT_URL": emulator.url(),
        "AZURE_STORAGE_ACCOUNT": "devstoreaccount1",
        "AZURE_STORAGE_KEY": KEY,
        "TWIN_LANDING_CONTAINER": "profile-test",
    }.items():
        monkeypatch.setenv(var, value)
    assert "landing/raw_samples" in {k.to_user_string() for k in defs().resolve_asset_graph().get_all_asset_keys()}
    job = defs().resolve_job_def("shift_oee")  # the schedule lands each shift too
    assert dg.AssetKey(["landing", "raw_samples"]) in job.asset_layer.selected_asset_keys
    shift = "2026-11-24-0600"
    first = dg.materialize([landing_raw_samples], partition_key=shift, resources=resources_for("azure"))
    again = dg.materialize([landing_raw_samples], partition_key=shift, resources=resources_for("azure"))
    meta = [
        {k: v.value for k, v in r.asset_materializations_for_node("landing__raw_samples")[0].metadata.items()}
        for r in (first, again)
    ]
    assert (meta[0]["objects_uploaded"], meta[1]["objects_uploaded"], meta[1]["objects_unchanged"]) == (1, 0, 1)
    container = client_for(
        emulator.url(), {"account_name": "devstoreaccount1", "account_key": KEY}
    ).get_container_client("profile-test")
    assert [b.name for b in container.list_blobs()] == [blob_name(shift)]
    landed = pl.read_parquet(content(container, blob_name(shift)))
    edge = pl.read_delta(str(tmp_path / "twin" / "lake" / "edge" / "raw_samples"))
    assert landed.height == edge.height == meta[0]["dagster/row_count"] > 5000  # the whole 40 min are in this shift


def test_the_azure_profile_says_which_settings_are_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from twin_pipeline.defs.resources import resources_for

    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_URL", raising=False)
    with pytest.raises(ValueError, match=r"(?s)needs AZURE_STORAGE_ACCOUNT_URL in the environment.*AZURE_STORAGE_KEY"):
        resources_for("azure")
