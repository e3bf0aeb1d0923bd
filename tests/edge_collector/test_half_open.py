"""R3 (RELIABILITY.md): a half-open connection between the collector and the PLC, made with the
fault proxy's blackhole (no FIN, no reset, bytes discarded both ways), then restored."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from edge_collector.collector import Collector
from edge_collector.session import KEEPALIVE_COUNT
from tests.edge_collector.conftest import LAB_ENV, lab_config, read_table, running
from tests.edge_collector.test_collector import step_until
from tests.support.fault_proxy import FaultProxy

log = logging.getLogger(__name__)

BLACKHOLE_S = 20.0


async def _wait(predicate: Any, limit: float, poll: float = 0.05) -> float:
    """Seconds until `predicate()` holds (polled), or raise after `limit` seconds."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > limit:
            raise AssertionError(f"not within {limit:.1f} s")
        await asyncio.sleep(poll)
    return loop.time() - start


@pytest.mark.chaos
@pytest.mark.timeout(90)
@pytest.mark.parametrize("watchdog_s", [1.0, 10.0], ids=["supervisor_first", "stale_watchdog_first"])
async def test_half_open_connection_is_detected_recovered_and_recorded_as_a_gap(
    start_plc: Any, tmp_path: Path, watchdog_s: float
) -> None:
    """R3: the proxy blackholes both directions for 20 s without FIN, then restores.

    Loss detection is asyncua 2.x's connection supervisor: every `watchdog_intervall` it probes
    `ServerState` with a timeout of min(session_timeout / 2, watchdog_intervall). So a dead link is seen
    within one interval plus one probe timeout; the bound asserted is RELIABILITY.md's
    3 x watchdog_interval_s + probe timeout (4 s with the default 1 s watchdog).
    During the blackhole every reconnect attempt is accepted by the proxy and then hangs in Hello, which
    gives up after `timeout_s`; so after restore the collector is back within one such attempt plus
    the backoff: timeout_s + reconnect_max_delay_s (+ 2 s slack).
    The gap record runs from detection to the first notification after the reconnect (or from the last
    publish response before the cut, when the silent subscription is noticed before the dead link).

    With a 10 s watchdog, asyncua's stale-subscription watchdog (3 s here: publishing interval x
    keep-alive count x 1.5) sees the dead link first and tries to recreate the subscription through it.
    That failed recreate used to leave an empty subscription, which the reconnect then "restored":
    connected, no sample ever stored again (1 CI run in 4 hit it with the 1 s watchdog under load).
    The collector now keeps the old subscription for the reconnect to transfer; this case pins it.
    """
    async with start_plc() as plc:
        with FaultProxy(plc.options.port) as proxy:
            config = lab_config(
                plc,
                tmp_path,
                opcua={"endpoint": f"opc.tcp://127.0.0.1:{proxy.port}", "watchdog_interval_s": watchdog_s},
                subscription={"publishing_interval_ms": 100},
            )  # the production default
            opc = config.opcua
            probe_s = min(opc.session_timeout_s / 2, opc.watchdog_interval_s)
            detect_bound = 3 * opc.watchdog_interval_s + probe_s
            recover_bound = opc.timeout_s + opc.reconnect_max_delay_s + 2.0
            keepalive_s = config.subscription.publishing_interval_ms / 1000 * KEEPALIVE_COUNT
            loop = asyncio.get_running_loop()
            async with running(Collector(config, environ=LAB_ENV)) as collector:
                await step_until(plc, collector, 30)
                before = collector.received

                cut_wall = datetime.now(UTC)
                proxy.blackhole()
                cut = loop.time()
                detected = await _wait(lambda: not collector.connected.is_set(), limit=30.0)
                # keep the PLC producing while the link is dead
                while loop.time() - cut < BLACKHOLE_S:
                    await plc.step(1.0)
                    await asyncio.sleep(0.5)
                assert not collector.connected.is_set()  # no reconnect through a dead link
                assert proxy.blackholed_bytes > 0

                restore_wall = datetime.now(UTC)
                proxy.restore()
                recovered = await _wait(
                    lambda: collector.connected.is_set() and collector.reconnects >= 1, limit=recover_bound + 10.0
                )
                await step_until(plc, collector, 30)
                flowed = await _wait(lambda: collector.gaps_written >= len(config.subscription.lines), limit=10.0)
                assert collector.received > before
                processed = plc.line("L1").processed
            log.warning(
                "R3: detection %.2f s (bound %.1f s), recovery %.2f s after restore (bound %.1f s)",
                detected,
                detect_bound,
                recovered,
                recover_bound,
            )
            print(
                f"\nR3 detection={detected:.2f}s bound={detect_bound:.1f}s recovery={recovered:.2f}s "
                f"bound={recover_bound:.1f}s flowed+{flowed:.2f}s reconnects={collector.reconnects}"
            )

    assert detected <= detect_bound, f"half-open link detected after {detected:.2f} s (bound {detect_bound:.1f} s)"
    assert recovered <= recover_bound, f"recovered {recovered:.2f} s after restore (bound {recover_bound:.1f} s)"

    gaps = read_table(config.lake(), "gaps")
    assert set(gaps["line_id"]) == set(config.subscription.lines)
    for row in gaps.iter_rows(named=True):
        start_lag = (row["gap_start"] - cut_wall).total_seconds()
        end_lag = (row["gap_end"] - restore_wall).total_seconds()
        print(
            f"R3 gap {row['line_id']}: start = cut + {start_lag:.2f} s, end = restore + {end_lag:.2f} s, "
            f"reason {row['reason']}"
        )
        # starts at detection, not later than the bound; or, when the subscription's silence (no data, no
        # keep-alive: edge_collector/silence.py) is noticed first, at the last publish response before the cut
        assert -keepalive_s - 0.5 <= start_lag <= detect_bound, row
        assert 0.0 <= end_lag <= recover_bound + 2.0, row  # ends with the first notification after restore
        assert row["reason"] in ("disconnected", "session_lost"), row
    raw = read_table(config.lake(), "raw_samples")
    assert raw.select("line_id", "tag", "source_ts").is_duplicated().sum() == 0
    counts = raw.filter((pl.col("line_id") == "L1") & (pl.col("tag") == "Admin.ProdProcessedCount"))
    missing = set(range(processed + 1)) - {int(v) for v in counts["value"]}
    print(f"R3 L1 counter: {counts.height} values, {len(missing)} missing")
    assert not missing, sorted(missing)  # the session was reactivated and the lost notifications republished
