"""The collector against node-opcua, an OPC UA stack it was not written against: a CODESYS-style line
with only the seven core PackTags, SignAndEncrypt and a user, read by configuration alone; two changes
stamped in one tick and values without a source timestamp are kept (defect 3)."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from edge_collector.collector import Collector
from edge_collector.config import load_config
from edge_collector.manifest import expected_tags
from plc.tagmap import TAGS
from tests.conftest import T0
from tests.edge_collector.conftest import read_table, running, settle
from tests.support.node_opcua_line import CORE_TAGS, Step, Timeline, node_opcua_line, scripted_shift


async def test_a_codesys_style_line_is_read_by_configuration_alone(tmp_path: Path) -> None:
    timeline, expected = scripted_shift(T0, same_stamp=True)
    with node_opcua_line(tmp_path / "line", timeline) as line:
        config = line.collector_config(tmp_path)  # the default tag map: the line lacks all but seven
        async with running(Collector(config, environ=line.environ()), timeout=60) as collector:
            await line.play_async()
            await settle(1.0)
            assert collector.connected.is_set()
    manifest = read_table(config.lake(), "subscriptions")
    status = dict(zip(manifest["tag"], manifest["status"]))
    assert {t for t, s in status.items() if s == "subscribed"} == set(CORE_TAGS)
    assert {t for t, s in status.items() if s == "missing"} == {t.path for t in TAGS.subscribed_line_tags()} - set(
        CORE_TAGS
    )
    assert expected_tags(manifest, "L1", manifest["since_ts"].max().replace(year=2100)) == set(CORE_TAGS)
    line_nodes = manifest.filter(pl.col("status") == "subscribed")
    assert set(line_nodes["node_id"]) == {line.node_id(t) for t in CORE_TAGS}
    assert (line_nodes["sampling_interval_ms"] >= 0).all()

    raw = read_table(config.lake(), "raw_samples").sort("source_ts", "server_ts", "seq")
    assert set(raw["tag"]) == set(CORE_TAGS) and (raw["status_code"] == 0).all()
    counts = raw.filter(pl.col("tag") == "Admin.ProdProcessedCount")
    assert counts["value"].max() == expected.processed
    assert raw.filter(pl.col("tag") == "Admin.ProdDefectiveCount")["value"].max() == expected.defective
    # every change arrived once, in order: the initial 0, then each step's value unless it equals the one
    # before (a server notifies changes only; the first state, 6, shares the initial value's stamp)
    for tag in CORE_TAGS:
        changes = [0.0] + [float(s.set[tag]) for s in timeline.steps if tag in s.set]
        wanted = [v for i, v in enumerate(changes) if i == 0 or v != changes[i - 1]]
        assert raw.filter(pl.col("tag") == tag)["value"].to_list() == wanted, tag
    # defect 3: two different values with one source timestamp are both data, ordered by server time
    (tag, stamp, both) = expected.same_stamp[0]
    same = raw.filter((pl.col("tag") == tag) & (pl.col("source_ts") == stamp))
    assert same["value"].to_list() == both
    assert same["server_ts"].is_sorted() and same["server_ts"].n_unique() == 2


async def test_values_without_a_source_timestamp_are_kept_in_server_time_order(tmp_path: Path) -> None:
    """Defect 3: a server that sends no source timestamp. Each value is stored, stamped with the server
    timestamp (source_ts = server_ts), in the order served; none is quarantined as absurd."""
    steps = [Step(float(i), {"Admin.ProdProcessedCount": 10 * i, "Status.StateCurrent": 6}) for i in range(1, 6)]
    timeline = Timeline(T0, steps, mode="no_source_ts")
    with node_opcua_line(tmp_path / "line", timeline) as line:
        config = line.collector_config(tmp_path, tags=list(CORE_TAGS))
        async with running(Collector(config, environ=line.environ()), timeout=60) as collector:
            await line.play_async()
            await settle(1.0)
            assert collector.normalizer.substituted >= len(steps)
    raw = read_table(config.lake(), "raw_samples")
    counts = raw.filter(pl.col("tag") == "Admin.ProdProcessedCount").sort("source_ts", "server_ts", "seq")
    assert counts["value"].to_list()[-5:] == [10.0, 20.0, 30.0, 40.0, 50.0]
    served = counts.tail(5)
    assert (served["source_ts"] == served["server_ts"]).all() and served["seq"].is_sorted()
    assert read_table(config.lake(), "quarantine").height == 0


def test_the_documented_codesys_line_config_subscribes_the_seven_core_tags_securely() -> None:
    config = load_config(Path(__file__).resolve().parents[2] / "docs" / "operations" / "codesys_line.toml")
    assert config.subscription.tags == list(CORE_TAGS)
    assert (config.opcua.security_policy, config.opcua.security_mode) == ("Basic256Sha256", "SignAndEncrypt")
