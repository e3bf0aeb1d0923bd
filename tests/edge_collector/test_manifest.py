"""The subscriptions manifest: written at every (re)creation of the subscription, a missing node is a
`missing` row and never stops the collector, and `expected_tags` picks the manifest in force."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from edge_collector.manifest import Entry, expected_tags, manifest_rows, status_of
from edge_collector.schemas import SUBSCRIPTIONS
from tests.conftest import T0
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running, settle

MISSING_NODE = "ns=2;s=|var|CODESYS Control for Linux SL.Application.L1.NoSuch.Tag"


def _manifest(line: str, since: datetime, session: str, tags: dict[str, str]) -> list[dict[str, object]]:
    seq = iter(range(1, 100))
    entries = [Entry(line, tag, f"ns=4;s={tag}", status) for tag, status in tags.items()]
    return manifest_rows(entries, since, session, lambda _line: next(seq))


def test_expected_tags_is_the_latest_manifest_before_the_moment() -> None:
    t1, t2 = T0, T0 + timedelta(hours=3)
    rows = [
        *_manifest("L1", t1, "s1", {"A": "subscribed", "B": "subscribed", "C": "missing"}),
        *_manifest("L1", t2, "s2", {"A": "subscribed", "B": "rejected"}),
        *_manifest("L2", t1, "s1", {"Z": "subscribed"}),
    ]
    frame = pl.DataFrame(rows, schema=pl.Schema(pl.from_arrow(SUBSCRIPTIONS.empty_table()).schema))
    assert expected_tags(frame, "L1", t1, earliest_if_none=False) is None  # nothing took effect *before* t1
    assert expected_tags(frame, "L1", t1 - timedelta(days=9)) == {"A", "B"}  # a PLC clock behind the collector's
    assert expected_tags(frame, "L1", t1 + timedelta(seconds=1)) == {"A", "B"}
    assert expected_tags(frame, "L1", t2 + timedelta(seconds=1)) == {"A"}
    assert expected_tags(frame.to_arrow(), "L1", t2 + timedelta(seconds=1), ("subscribed", "rejected")) == {"A", "B"}
    assert expected_tags(frame, "L2", t2 + timedelta(days=1)) == {"Z"}
    assert expected_tags(frame, "L3", t2) is None
    with pytest.raises(ValueError, match="timezone-aware"):
        expected_tags(frame, "L1", datetime(2026, 1, 1))


def test_status_codes_map_onto_manifest_statuses() -> None:
    assert status_of(0) == "subscribed"
    assert status_of(0x80340000) == "missing"  # BadNodeIdUnknown
    assert status_of(0x80350000) == "rejected"  # BadAttributeIdInvalid


async def test_manifest_at_start_and_after_a_recreate_with_a_missing_node(
    start_plc: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A configured node the server lacks is a `missing` row plus one ERROR line; the other tags flow.
    A server restart (session lost, subscription recreated) writes a second manifest."""
    from plc.server import PlcServer
    from plc.sim_clock import SimClock

    tags = ["Status.StateCurrent", "Admin.ProdProcessedCount"]
    async with start_plc() as plc:
        ns = await plc.server.get_namespace_index("CODESYSSPV3/3S/IecVarAccess")
        missing = MISSING_NODE.replace("ns=2", f"ns={ns}")
        config = lab_config(
            plc,
            tmp_path,
            subscription={
                "lines": ["L1"],
                "tags": tags,
                "nodes": [{"line": "L1", "tag": "Custom.X", "node_id": missing}],
            },
        )
        caplog.set_level(logging.ERROR, logger="edge_collector")
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            await plc.step(5)
            await settle(1.0)
            await plc.stop()
            await asyncio.sleep(1.0)
            restarted = PlcServer(
                plc.params, SimClock(start=T0 + timedelta(minutes=5), step_mode=True), plc.seed, plc.options
            )
            await restarted.start()
            try:
                for _ in range(150):
                    await asyncio.sleep(0.1)
                    if collector.connected.is_set() and collector.manifest.manifests >= 2:
                        break
                await restarted.step(5)
                await settle(1.0)
            finally:
                await restarted.stop()
            plc.server.bserver = None  # already stopped
        manifest = read_table(config.lake(), "subscriptions")
        assert manifest.schema == pl.Schema(pl.from_arrow(SUBSCRIPTIONS.empty_table()).schema)
        per_since = manifest.group_by("since_ts").agg(pl.len(), pl.col("session_id").unique().len().alias("sessions"))
        assert per_since.height == 2, manifest  # start, and the recreate after the restart
        assert per_since["len"].to_list() == [3, 3] and per_since["sessions"].to_list() == [1, 1]
        for since in per_since["since_ts"]:
            one = manifest.filter(pl.col("since_ts") == since)
            status = dict(zip(one["tag"], one["status"]))
            assert status == {
                "Status.StateCurrent": "subscribed",
                "Admin.ProdProcessedCount": "subscribed",
                "Custom.X": "missing",
            }
            row = one.filter(pl.col("tag") == "Custom.X").row(0, named=True)
            assert "BadNodeIdUnknown" in row["detail"] and row["node_id"] == missing
            assert one.filter(pl.col("status") == "subscribed")["sampling_interval_ms"].is_not_null().all()
        assert manifest["seq"].is_unique().all()
        later = manifest["since_ts"].max() + timedelta(microseconds=1)
        assert expected_tags(manifest, "L1", later) == set(tags)
        errors = [r for r in caplog.records if "Custom.X" in r.getMessage()]
        assert len(errors) == 1, [r.getMessage() for r in errors]  # once, not at every recreate
        raw = read_table(config.lake(), "raw_samples")
        assert set(raw["tag"]) == set(tags)
        assert raw.filter(pl.col("source_ts") > T0 + timedelta(minutes=5)).height > 0  # still collecting after it
        assert datetime.now(UTC) - manifest["since_ts"].min() < timedelta(minutes=5)  # the collector's clock
