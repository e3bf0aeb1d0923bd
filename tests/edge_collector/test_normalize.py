"""Value normalisation (F1): whatever arrives becomes a stored row or a quarantined row with a reason."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from asyncua import ua
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_collector.collector import Collector
from edge_collector.dedupe import Deduper, Verdict, value_key
from edge_collector.normalize import NodeBinding, Normalizer
from edge_collector.schemas import QUARANTINE_REASONS
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running
from tests.edge_collector.test_collector import step_until

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)


def dv(value: object, vtype: ua.VariantType, ts: datetime | None = NOW, status: int = 0) -> ua.DataValue:
    return ua.DataValue(
        ua.Variant(value, vtype), StatusCode=ua.StatusCode(status), SourceTimestamp=ts, ServerTimestamp=ts
    )


def binding(vtype: ua.VariantType | None = ua.VariantType.Double) -> NodeBinding:
    return NodeBinding("L1", "Quality.LastPartDeviation", "ns=2;s=x", vtype)


def test_good_values_become_rows_with_increasing_seq() -> None:
    n = Normalizer("s1")
    a = n.normalize(binding(), dv(0.01, ua.VariantType.Double), NOW)
    b = n.normalize(
        NodeBinding("L1", "Status.CmdRejected", "x", ua.VariantType.Boolean), dv(True, ua.VariantType.Boolean), NOW
    )
    assert a.table == b.table == "raw_samples"
    assert a.row["value"] == 0.01 and b.row["value"] == 1.0 and a.row["day"] == "2026-11-24"
    assert b.row["seq"] == a.row["seq"] + 1


def test_bad_input_is_quarantined_with_reasons() -> None:
    """F1 (RELIABILITY.md): Bad input is quarantined with reasons."""
    n = Normalizer("s1")
    cases = {
        "non_finite": dv(math.nan, ua.VariantType.Double),
        "type_changed": dv("12", ua.VariantType.String),
        "absurd_timestamp": dv(1.0, ua.VariantType.Double, ts=datetime(1990, 1, 1, tzinfo=UTC)),
        "unsupported_type": dv([1.0, 2.0], ua.VariantType.Double),
    }
    for reason, value in cases.items():
        out = n.normalize(binding(), value, NOW)
        assert out.table == "quarantine" and out.row["reason"] == reason, reason
    ahead = n.normalize(binding(), dv(1.0, ua.VariantType.Double, ts=NOW + timedelta(days=2)), NOW)
    assert ahead.row["reason"] == "absurd_timestamp"
    text = NodeBinding("L1", "Custom.Text", "x", None)
    assert n.normalize(text, dv("x" * 10_000_000, ua.VariantType.String), NOW).row["reason"] == "too_large"


def test_a_missing_source_timestamp_is_replaced_by_the_server_one_else_the_received_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Defect 3: some servers send no source timestamp (absent, or the null DateTime 1601-01-01)."""
    n = Normalizer("s1")
    server = NOW - timedelta(seconds=2)
    for missing in (None, datetime(1601, 1, 1, tzinfo=UTC)):
        value = ua.DataValue(ua.Variant(1.5, ua.VariantType.Double), SourceTimestamp=missing, ServerTimestamp=server)
        out = n.normalize(binding(), value, NOW)
        assert out.table == "raw_samples" and out.row["source_ts"] == server == out.row["server_ts"]
    bare = ua.DataValue(ua.Variant(2.5, ua.VariantType.Double), SourceTimestamp=None, ServerTimestamp=None)
    out = n.normalize(binding(), bare, NOW)
    assert out.table == "raw_samples" and out.row["source_ts"] == NOW and out.row["server_ts"] is None
    assert n.substituted == 3
    assert len([r for r in caplog.records if "sends no source timestamp" in r.getMessage()]) == 1  # once per node


def test_a_different_value_at_the_same_stamp_is_new_data_and_a_replay_is_not() -> None:
    """Defect 3: the dedupe key is (line, tag, source_ts, value)."""
    d = Deduper({("L1", "A"): (NOW, [value_key(1.0)])})
    assert d.check("L1", "A", NOW, value_key(1.0)) is Verdict.DUPLICATE  # the stored value, replayed
    assert d.check("L1", "A", NOW, value_key(2.0)) is Verdict.NEW  # a second change in the same tick
    assert d.check("L1", "A", NOW, value_key(2.0)) is Verdict.DUPLICATE  # ... and its replay
    later = NOW + timedelta(seconds=1)
    assert [d.check("L1", "A", later, value_key(v)) for v in (5.0, 6.0, 5.0, 6.0)] == [
        Verdict.NEW,
        Verdict.NEW,
        Verdict.DUPLICATE,
        Verdict.DUPLICATE,
    ]
    assert d.check("L1", "A", NOW, value_key(1.0)) is Verdict.DUPLICATE  # an older pair, inside the window
    assert d.check("L1", "A", NOW, value_key(3.0)) is Verdict.OUT_OF_ORDER  # an older stamp with a new value
    assert value_key(None, None, 0x80000000) != value_key(None, None, 0)
    assert value_key(None, "a") == value_key(None, "a") != value_key(None, "b")


def test_bad_status_is_stored_without_a_value() -> None:
    """F1 (RELIABILITY.md): Bad status is stored without a value."""
    out = Normalizer("s1").normalize(
        binding(), dv(None, ua.VariantType.Null, status=ua.StatusCodes.BadSensorFailure), NOW
    )
    assert out.table == "raw_samples" and out.row["value"] is None
    assert out.row["status_code"] == ua.StatusCodes.BadSensorFailure


variants = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(lambda v: (v, ua.VariantType.Double)),
    st.integers(-(2**31), 2**31 - 1).map(lambda v: (v, ua.VariantType.Int32)),
    st.text(max_size=50).map(lambda v: (v, ua.VariantType.String)),
    st.booleans().map(lambda v: (v, ua.VariantType.Boolean)),
    st.lists(st.floats(), max_size=3).map(lambda v: (v, ua.VariantType.Double)),
    st.none().map(lambda v: (v, ua.VariantType.Null)),
)
timestamps = st.one_of(
    st.none(),
    st.datetimes(min_value=datetime(1601, 1, 2), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)),
)
statuses = st.sampled_from([0, ua.StatusCodes.UncertainInitialValue, ua.StatusCodes.BadCommunicationError])


@settings(max_examples=400, deadline=None)
@given(variants, timestamps, statuses, st.sampled_from([None, ua.VariantType.Double, ua.VariantType.Int32]))
def test_any_variant_is_stored_or_quarantined_never_raises(
    v: tuple[object, ua.VariantType], ts: datetime | None, status: int, expected: ua.VariantType | None
) -> None:
    """F1 (RELIABILITY.md): Any variant is stored or quarantined never raises."""
    value, vtype = v
    out = Normalizer("s").normalize(
        NodeBinding("L1", "T", "x", expected),
        ua.DataValue(
            ua.Variant(value, vtype, is_array=isinstance(value, list)),
            StatusCode=ua.StatusCode(status),
            SourceTimestamp=ts,
        ),
        NOW,
    )
    if out.table == "quarantine":
        assert out.row["reason"] in QUARANTINE_REASONS
    else:
        assert out.row["value"] is None or math.isfinite(out.row["value"])
        assert out.row["source_ts"] is not None


def test_replays_are_duplicates_and_late_samples_are_out_of_order() -> None:
    d = Deduper({("L1", "A"): (NOW, [value_key(0.0)])})
    assert d.check("L1", "A", NOW) is Verdict.DUPLICATE  # the initial value of a new subscription
    t1, t2, t3 = (NOW + timedelta(seconds=i) for i in (1, 2, 3))
    assert [d.check("L1", "A", t) for t in (t1, t2, t3)] == [Verdict.NEW] * 3
    assert [d.check("L1", "A", t) for t in (t2, t3)] == [Verdict.DUPLICATE] * 2  # republished after a reconnect
    assert d.check("L1", "A", NOW - timedelta(hours=1)) is Verdict.OUT_OF_ORDER
    assert d.check("L2", "A", NOW) is Verdict.NEW
    assert d.duplicates == 3 and d.out_of_order == 1


async def test_bad_values_from_the_server_are_quarantined_and_collection_goes_on(
    start_plc: Any, tmp_path: Path
) -> None:
    """F1 through the real collector: an extra node on the PLC sends NaN, +Inf, a value stamped in
    1990 and one stamped two days ahead, then good values again. Each bad one becomes a quarantine row
    with its reason; the collector keeps running and stores the good values before and after."""
    async with start_plc() as plc:
        ns = await plc.server.register_namespace("urn:industrial-twin:f1")
        node = await plc.server.nodes.objects.add_variable(
            ua.NodeId("F1.Value", ns), "F1.Value", ua.Variant(0.5, ua.VariantType.Double)
        )
        config = lab_config(
            plc,
            tmp_path,
            subscription={
                "lines": ["L1"],
                "nodes": [{"line": "L1", "tag": "F1.Value", "node_id": f"ns={ns};s=F1.Value"}],
            },
        )
        now = datetime.now(UTC)
        bad = [
            (math.nan, now),
            (math.inf, now + timedelta(milliseconds=1)),
            (1.0, datetime(1990, 1, 1, tzinfo=UTC)),
            (2.0, now + timedelta(days=2)),
        ]
        async with running(Collector(config, environ=LAB_ENV)) as collector:
            await step_until(plc, collector, 20)
            for value, stamp in [*bad, (3.0, now + timedelta(seconds=1))]:
                await plc.server.write_attribute_value(
                    node.nodeid,
                    ua.DataValue(
                        ua.Variant(value, ua.VariantType.Double), SourceTimestamp=stamp, ServerTimestamp=stamp
                    ),
                )
                await asyncio.sleep(0.1)  # one publish each: the server keeps only the latest value per item
            await step_until(plc, collector, 20)
            await collector.datalogger.flush()
            assert collector.connected.is_set()
        quarantine = read_table(config.lake(), "quarantine").filter(pl.col("tag") == "F1.Value")
        reasons = sorted(quarantine["reason"].to_list())
        print(f"\nF1 quarantined {reasons}")
        assert reasons == ["absurd_timestamp", "absurd_timestamp", "non_finite", "non_finite"]
        stored = read_table(config.lake(), "raw_samples").filter(pl.col("tag") == "F1.Value")
        assert sorted(stored["value"].to_list()) == [0.5, 3.0]  # the good values, before and after
        assert read_table(config.lake(), "raw_samples").filter(pl.col("tag") != "F1.Value").height > 50


def test_replay_window_holds_the_last_recent_stamps_per_tag() -> None:
    d = Deduper(recent=100)
    stamps = [NOW + timedelta(microseconds=i) for i in range(1000)]
    assert all(d.check("L1", "A", t) is Verdict.NEW for t in stamps)
    assert all(d.check("L1", "A", t) is Verdict.DUPLICATE for t in stamps[-100:])  # replays inside the window
    assert d.check("L1", "A", stamps[0]) is Verdict.OUT_OF_ORDER  # long forgotten: quarantined, never stored twice
    assert d.duplicates == 100 and d.out_of_order == 1


def test_replay_window_memory_is_a_few_bytes_per_stamp() -> None:
    """R6 (RELIABILITY.md): the window was datetimes in a set and a deque, about 185 B per stamp
    (370 MiB for 500 tags at 4,096 stamps each), which the soak saw as RSS growing for an hour."""
    import tracemalloc

    tracemalloc.start()
    try:
        d = Deduper(recent=4096)
        for i in range(6000):
            t = NOW + timedelta(milliseconds=i)
            for tag in range(20):
                d.check("L1", f"T{tag}", t)
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_stamp = used / (20 * 4096)
    print(f"R6 dedupe window: {per_stamp:.1f} B per remembered stamp")
    assert per_stamp < 16
