"""The OPC UA server with a real asyncua client over loopback: address space, reads, writes,
subscriptions, simulated time."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import Client, ua
from asyncua.ua.uaerrors import BadNotWritable, BadOutOfRange, BadTypeMismatch

from plc.server import PlcServer
from plc.tagmap import TAGS
from plc.tagmap import PackMLCommand as Cmd
from plc.tagmap import PackMLState as S
from tests.conftest import T0, insecure_client

RT = TAGS.default_runtime


def node(client: Client, ns: int, line: str, path: str) -> Any:
    return client.get_node(ua.NodeId(f"|var|{RT}.Application.{line}.{path}", ns))


async def ns_index(client: Client) -> int:
    return await client.get_namespace_index(TAGS.namespace_uri)


async def test_address_space_has_codesys_node_ids_types_units_and_access(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        for line in ("L1", "L2"):
            for tag in TAGS.line_tags:
                n = node(client, ns, line, tag.path)
                dtype = await n.read_data_type_as_variant_type()
                assert dtype == tag.variant_type, tag.path
                access = await n.read_attribute(ua.AttributeIds.AccessLevel)
                writable = bool(access.Value.Value & ua.AccessLevel.CurrentWrite.mask)
                assert writable == tag.writable, tag.path
                if tag.unit:
                    eu = await n.get_child(["0:EngineeringUnits"])
                    info = await eu.read_value()
                    assert info.DisplayName.Text == tag.unit[1]
        # a value read carries source and server timestamps and a Good status
        dv = await node(client, ns, "L1", "Admin.MachDesignSpeed").read_data_value()
        assert dv.Value.Value == 120.0 and dv.StatusCode.is_good()
        assert dv.SourceTimestamp == T0 + timedelta(microseconds=1) and dv.ServerTimestamp is not None
        # not yet measured -> initial value, uncertain
        dv = await node(client, ns, "L1", "Quality.LastPartDeviation").read_data_value(raise_on_bad_status=False)
        assert dv.StatusCode.value == ua.StatusCodes.UncertainInitialValue


async def test_browse_paths_mirror_the_symbol_tree(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        target = await client.nodes.objects.get_child(
            [f"{ns}:{RT}", f"{ns}:Application", f"{ns}:L2", f"{ns}:Admin", f"{ns}:StopReason", f"{ns}:ID"]
        )
        assert target.nodeid == ua.NodeId(f"|var|{RT}.Application.L2.Admin.StopReason.ID", ns)
        app = client.get_node(ua.NodeId(f"|var|{RT}.Application", ns))
        names = {(await c.read_browse_name()).Name for c in await app.get_children()}
        assert names == {"L1", "L2", "Clock"}


async def test_runtime_name_and_line_ids_are_configurable() -> None:
    from plc.plant_config import load_lines
    from plc.server import ServerOptions
    from plc.sim_clock import SimClock
    from tests.conftest import free_port

    options = ServerOptions(port=free_port(), insecure=True, runtime="CODESYS Control Win V3 x64")
    async with PlcServer(load_lines(["Packer"]), SimClock(start=T0, step_mode=True), 1, options) as plc:
        async with insecure_client(plc) as client:
            ns = await ns_index(client)
            n = client.get_node(ua.NodeId("|var|CODESYS Control Win V3 x64.Application.Packer.Status.StateCurrent", ns))
            assert await n.read_value() == S.Resetting  # autostart began at power-on


async def test_writes_are_guarded_by_access_type_and_range(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        with pytest.raises(BadNotWritable):
            await node(client, ns, "L1", "Admin.ProdProcessedCount").write_value(ua.Variant(5, ua.VariantType.UInt32))
        with pytest.raises(BadNotWritable):
            await node(client, ns, "L1", "Status.StateCurrent").write_value(ua.Variant(6, ua.VariantType.Int32))
        feed = node(client, ns, "L1", "Sim.FeedRate")
        with pytest.raises(BadTypeMismatch):
            await feed.write_value(ua.Variant(50, ua.VariantType.Int32))
        with pytest.raises(BadTypeMismatch):
            await feed.write_value(ua.Variant("fast", ua.VariantType.String))
        with pytest.raises(BadOutOfRange):
            await feed.write_value(ua.Variant(math.nan, ua.VariantType.Double))
        with pytest.raises(BadOutOfRange):
            await node(client, ns, "L1", "Command.CntrlCmd").write_value(ua.Variant(77, ua.VariantType.Int32))
        # attributes other than Value are not writable either
        with pytest.raises(BadNotWritable):
            await feed.write_attribute(ua.AttributeIds.DisplayName, ua.DataValue(ua.Variant(ua.LocalizedText("x"))))
        # none of the refused writes reached the model
        assert plc.line("L1").feed_ppm == pytest.approx(114.0)
        await feed.write_value(ua.Variant(50.0, ua.VariantType.Double))
        await plc.step(0)
        assert plc.line("L1").feed_ppm == 50.0
        dv = await feed.read_data_value()
        # stamped at the simulated instant it arrived (after the node's initial value and the PLC's first write)
        assert dv.Value.Value == 50.0 and dv.SourceTimestamp == T0 + timedelta(microseconds=2)


async def test_subscription_sees_every_part_with_simulated_source_timestamps(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        got: list[tuple[int, Any]] = []

        class Handler:
            def datachange_notification(self, n: Any, val: Any, data: Any) -> None:
                got.append((val, data.monitored_item.Value.SourceTimestamp))

        sub = await client.create_subscription(20, Handler())
        await sub.subscribe_data_change(node(client, ns, "L1", "Admin.ProdProcessedCount"))
        await asyncio.sleep(0.2)
        for _ in range(6):
            await plc.step(10.0)  # 60 simulated seconds in steps
        await asyncio.sleep(0.5)
        await sub.delete()
        counts = [v for v, _ in got]
        # Execute starts at +9 s; at 114 parts/min that is 51 s of production
        assert counts[0] == 0 and counts[-1] == plc.line("L1").processed == int(51 * 114 / 60)
        assert counts == list(range(counts[-1] + 1))  # no change lost
        stamps = [ts for _, ts in got[1:]]
        assert stamps == sorted(stamps)
        assert stamps[0] == (T0 + timedelta(seconds=9 + 60 / 114))


async def test_packml_commands_and_faults_over_opc_ua(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        state = node(client, ns, "L1", "Status.StateCurrent")
        await plc.step(20)
        assert await state.read_value() == S.Execute

        async def send(cmd: int) -> None:
            await node(client, ns, "L1", "Command.CntrlCmd").write_value(ua.Variant(int(cmd), ua.VariantType.Int32))
            await node(client, ns, "L1", "Command.CmdChangeRequest").write_value(True)

        await send(Cmd.Hold)
        await plc.step(5)
        assert await state.read_value() == S.Held
        assert await node(client, ns, "L1", "Command.CmdChangeRequest").read_value() is False
        await send(Cmd.Start)  # illegal in Held
        await plc.step(1)
        assert await state.read_value() == S.Held
        assert await node(client, ns, "L1", "Status.CmdRejected").read_value() is True
        await send(Cmd.Unhold)
        await plc.step(5)
        assert await state.read_value() == S.Execute
        # a fault requested by the variability engine aborts the line
        await node(client, ns, "L1", "Sim.FaultCode").write_value(ua.Variant(42, ua.VariantType.Int32))
        await node(client, ns, "L1", "Sim.FaultRequest").write_value(True)
        await plc.step(2)
        assert await state.read_value() == S.Aborted
        assert await node(client, ns, "L1", "Admin.StopReason.ID").read_value() == 42
        assert await node(client, ns, "L1", "Sim.FaultRequest").read_value() is False
        assert await node(client, ns, "L2", "Status.StateCurrent").read_value() == S.Execute  # L2 unaffected
        for cmd in (Cmd.Clear, Cmd.Reset, Cmd.Start):
            await send(cmd)
            await plc.step(10)
        assert await state.read_value() == S.Execute


async def test_step_method_and_plc_clock(start_plc: Any) -> None:
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        sim_ns = await client.get_namespace_index("urn:industrial-twin:plc-sim")
        sim = client.get_node(ua.NodeId("Simulation", sim_ns))
        new_time = await sim.call_method(
            ua.NodeId("Simulation.Step", sim_ns), ua.Variant(3600.0, ua.VariantType.Double)
        )
        assert new_time == (T0 + timedelta(hours=1))
        now = client.get_node(ua.NodeId(f"|var|{RT}.Application.Clock.Now", ns))
        assert await now.read_value() == new_time
        processed = await node(client, ns, "L2", "Admin.ProdProcessedCount").read_value()
        assert processed == int((3600 - 9) * 90 * 0.95 / 60)
        with pytest.raises(ua.UaStatusCodeError):
            await sim.call_method(ua.NodeId("Simulation.Step", sim_ns), ua.Variant(-1.0, ua.VariantType.Double))


def hour_ago() -> datetime:
    return datetime.now(UTC) - timedelta(hours=1)


async def test_accelerated_time_yields_correct_simulated_durations(start_plc: Any) -> None:
    # the clock waits for the subscription (as `twin up` runs it), an hour behind the wall clock (a clock at
    # the wall clock runs in real time: it is never ahead of it): at 200x Resetting lasts 20 ms of wall time,
    # less than a subscription takes to set up on a busy machine
    async with (
        start_plc(
            step=False, speed=200.0, start=datetime.now(UTC) - timedelta(hours=1), wait_for_subscriber=True
        ) as plc,
        insecure_client(plc) as client,
    ):
        ns = await ns_index(client)
        changes: list[tuple[int, Any]] = []

        class Handler:
            def datachange_notification(self, n: Any, val: Any, data: Any) -> None:
                changes.append((val, data.monitored_item.Value.SourceTimestamp))

        sub = await client.create_subscription(10, Handler())
        await sub.subscribe_data_change(node(client, ns, "L1", "Status.StateCurrent"))
        while plc.waiting_for_subscriber:
            await asyncio.sleep(0.01)
        wall0 = asyncio.get_running_loop().time()
        sim0 = plc.clock.now()
        await asyncio.sleep(1.5)
        sim_elapsed = plc.clock.now() - sim0
        wall_elapsed = asyncio.get_running_loop().time() - wall0
        # never faster than asked; slower only when plc/pacing.py holds the clock back on a busy machine (the
        # other test worker): the durations below are simulated time, right at any achieved speed
        assert 100.0 <= sim_elapsed / wall_elapsed <= 200.0 * 1.05
        await sub.delete()
        times = {S(v).name: ts for v, ts in changes}
        # Resetting takes 4 simulated seconds and Starting 5, whatever the wall-clock speed
        # (to the microsecond: a change in the same instant as the previous one is stamped 1 us later)
        assert (times["Idle"] - times["Resetting"]).total_seconds() == pytest.approx(4.0, abs=2e-6)
        assert (times["Execute"] - times["Starting"]).total_seconds() == pytest.approx(5.0, abs=2e-6)
        parts = plc.line("L1").processed
        expected = (plc.line("L1").now - plc.line("L1").t0 - 9.0) * 114 / 60
        assert abs(parts - expected) <= 1.0  # the model is exact; only the last part may be in progress


async def _run_trajectory(start_plc: Any, seed: int) -> list[tuple[str, Any, Any]]:
    async with start_plc(seed=seed) as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        got: list[tuple[str, Any, Any]] = []

        class Handler:
            def datachange_notification(self, n: Any, val: Any, data: Any) -> None:
                got.append((n.nodeid.Identifier, val, data.monitored_item.Value.SourceTimestamp))

        sub = await client.create_subscription(20, Handler())
        paths = ("Quality.LastPartDeviation", "Admin.ProdDefectiveCount", "Status.StateCurrent")
        await sub.subscribe_data_change([node(client, ns, "L2", p) for p in paths])
        await node(client, ns, "L2", "Sim.QualityErrorMm").write_value(ua.Variant(0.039, ua.VariantType.Double))
        for _ in range(12):
            await plc.step(10.0)
        await asyncio.sleep(0.5)
        await sub.delete()
        return sorted(got, key=lambda g: (g[2], g[0]))


async def test_same_seed_gives_the_same_trajectory_through_opc_ua(start_plc: Any) -> None:
    first = await _run_trajectory(start_plc, seed=11)
    again = await _run_trajectory(start_plc, seed=11)
    other = await _run_trajectory(start_plc, seed=12)
    rejects = [v for p, v, _ in first if p.endswith("ProdDefectiveCount")]
    assert len(first) > 200 and rejects[-1] > 10  # a real trajectory, with rejects near the tolerance
    assert first == again
    assert first != other


async def test_source_timestamps_are_strictly_increasing_per_node(start_plc: Any) -> None:
    """Autostart passes Idle -> Starting in one simulated instant: still two distinct stamps."""
    async with start_plc() as plc, insecure_client(plc) as client:
        ns = await ns_index(client)
        got: list[tuple[str, Any, Any]] = []

        class Handler:
            def datachange_notification(self, n: Any, val: Any, data: Any) -> None:
                got.append((n.nodeid.Identifier, val, data.monitored_item.Value.SourceTimestamp))

        sub = await client.create_subscription(20, Handler())
        await sub.subscribe_data_change(
            [node(client, ns, "L1", "Status.StateCurrent"), node(client, ns, "L1", "Command.CmdChangeRequest")]
        )
        await asyncio.sleep(0.2)
        await node(client, ns, "L1", "Command.CntrlCmd").write_value(ua.Variant(int(Cmd.Stop), ua.VariantType.Int32))
        await node(client, ns, "L1", "Command.CmdChangeRequest").write_value(True)
        await plc.step(20)
        await asyncio.sleep(0.4)
        await sub.delete()
        for tag in ("Status.StateCurrent", "Command.CmdChangeRequest"):
            stamps = [ts for p, _, ts in got if p.endswith(tag)]
            assert len(stamps) >= 2 and stamps == sorted(set(stamps)), tag
        request = [(v, ts) for p, v, ts in got if p.endswith("CmdChangeRequest")]
        assert [v for v, _ in request] == [False, True, False]
        assert request[2][1] - request[1][1] == timedelta(microseconds=1)
