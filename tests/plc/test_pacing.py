"""Defect 5 of issue 14: a speed the simulator cannot serve degrades visibly, the server stays responsive
and stops promptly. Before the fix one scan advanced by all the simulated time that had passed, the
scans grew with it and starved the OPC UA server (reads timed out, SIGTERM waited 30 s)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import ua

from plc.pacing import Pacer
from plc.sim_clock import SimClock
from tests.conftest import insecure_client


class FakeWall:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_an_overloaded_scan_loop_holds_time_back_and_reports_the_speed_it_achieves() -> None:
    wall = FakeWall()
    clock = SimClock(start=datetime.fromtimestamp(wall.t - 3600, UTC), speed=600, wall=wall)
    pacer = Pacer(clock, scan_interval_s=0.02, max_scan_wall_s=0.1, monotonic=wall)
    pacer.done(pacer.target())
    for _ in range(50):  # every scan takes 0.5 s of wall time: 25x the interval
        wall.t += 0.5
        target = pacer.target()
        assert 0 < target - pacer.last_target <= 600 * 0.1 + 1e-6  # a bounded step, never a jump
        pacer.done(target)
    assert clock.now() == target  # the clock itself was held back: it does not jump at the next scan
    assert clock.held_back_s > 0
    assert 90 < pacer.achieved_speed() < 130  # at most 60 simulated s per 0.5 wall s (600x requested)
    assert pacer.saturated()
    # the catch-up is re-planned: the plant still reaches the wall clock, later, and never passes it
    for _ in range(5000):
        wall.t += 0.1
        pacer.done(pacer.target())
        assert clock.now() <= wall.t + 1e-6
    assert clock.caught_up() and abs(clock.now() - wall.t) < 1e-6


def test_a_late_wake_up_lowers_the_share_of_the_speed_and_a_timely_one_recovers_it() -> None:
    wall = FakeWall()
    pacer = Pacer(SimClock(speed=60, wall=wall), scan_interval_s=0.02, monotonic=wall)
    pacer.woke(0.5)
    pacer.woke(0.5)
    assert pacer.share < 0.5
    for _ in range(1000):
        pacer.woke(0.0)
    assert pacer.share == 1.0
    assert pacer.rest_s(0.005) == 0.015 and pacer.rest_s(0.2) == 0.2  # at least as long as the scan worked


async def test_at_a_speed_it_cannot_serve_the_server_answers_reads_and_stops_promptly(start_plc: Any) -> None:
    start = datetime.now(UTC) - timedelta(days=300)
    async with start_plc(step=False, speed=1e6, start=start) as plc, insecure_client(plc) as client:
        speed_node = client.get_node(ua.NodeId(f"|var|{plc.options.runtime}.Application.Clock.Speed", plc.ns))
        slowest = 0.0
        for _ in range(10):
            t0 = time.monotonic()
            speed = await speed_node.read_value()
            slowest = max(slowest, time.monotonic() - t0)
            await asyncio.sleep(0.3)
        assert slowest < 1.0, f"a read took {slowest:.2f} s: the scans starve the server"
        assert 0 < speed < 1e6  # the achieved speed, not the requested one
        assert plc.pacer.saturated() and plc.clock.held_back_s > 0
        t0 = time.monotonic()
    assert time.monotonic() - t0 < 5.0


def test_a_paused_clock_stands_still_and_resumes_into_its_catch_up() -> None:
    wall = FakeWall()
    clock = SimClock(start=datetime.fromtimestamp(wall.t - 3600, UTC), speed=60, wall=wall)
    clock.pause()
    wall.t += 30  # the server starting, the collector subscribing: no plant time passes
    assert clock.now() == wall.t - 30 - 3600 and clock.current_speed() == 0.0
    clock.resume()
    wall.t += 10
    assert clock.now() == wall.t - 10 - 3630 + 600  # from where it stood, at 60x
    wall.t += 3630 / 59 + 1  # the catch-up, re-planned from the new lag
    assert clock.caught_up() and clock.now() == wall.t
