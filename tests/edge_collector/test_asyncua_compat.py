"""The asyncua private API the collector relies on is in one module and checked at start-up
(edge_collector/opcua/asyncua_compat.py): an asyncua without one of those names stops the
collector with an error naming it and the pinned version, before anything is written."""

from __future__ import annotations

import asyncio
import tokenize
from importlib.metadata import version
from pathlib import Path

import pytest
from asyncua import Client
from asyncua.common.subscription import Subscription

from edge_collector.collector import Collector
from edge_collector.config import CollectorConfig
from edge_collector.opcua.asyncua_compat import (
    ASYNCUA_SERIES,
    PIN,
    REQUIREMENTS,
    AsyncuaIncompatible,
    Requirement,
    check_asyncua_compat,
)

PACKAGE = Path(__file__).resolve().parents[2] / "edge_collector"


def test_the_installed_asyncua_has_every_name_the_collector_relies_on() -> None:
    assert check_asyncua_compat() == version("asyncua")
    assert version("asyncua").startswith(f"{ASYNCUA_SERIES}.")  # the pin in pyproject.toml holds


def test_pyproject_pins_the_series_the_compat_module_was_written_against() -> None:
    pyproject = (PACKAGE.parent / "pyproject.toml").read_text()
    assert f'"{PIN}"' in pyproject
    assert PIN == f"asyncua>={ASYNCUA_SERIES},<{ASYNCUA_SERIES.split('.')[0]}.{int(ASYNCUA_SERIES.split('.')[1]) + 1}"


def test_a_missing_private_method_is_named_with_the_pinned_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(Subscription, "_republish_gaps")  # as if an asyncua release had renamed it
    with pytest.raises(AsyncuaIncompatible) as info:
        check_asyncua_compat()
    message = str(info.value)
    assert "Subscription._republish_gaps (used by wrap_republish_gaps)" in message
    assert f"asyncua {version('asyncua')} lacks" in message
    assert f"written against asyncua {ASYNCUA_SERIES}" in message and PIN in message


def test_a_missing_nested_attribute_is_named_up_to_its_first_missing_step() -> None:
    wanted = (
        Requirement("UASocketProtocol", "_connection._no_such_limits.max_message_size", "set_receive_limits"),
        *REQUIREMENTS,
    )
    with pytest.raises(
        AsyncuaIncompatible,
        match=r"lacks UASocketProtocol\._connection\._no_such_limits \(used by "
        r"set_receive_limits\):",
    ):
        check_asyncua_compat(wanted)


async def test_the_collector_refuses_to_start_before_writing_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = CollectorConfig.model_validate(
        {
            "collector": {
                "id": "compat",
                "lake": str(tmp_path / "lake"),
                "spool": str(tmp_path / "spool"),
                "lab_mode": True,
            },
            "opcua": {"endpoint": "opc.tcp://127.0.0.1:9", "security_policy": "None"},
            "subscription": {"lines": ["L1"]},
            "metrics": {"port": 0},
        }
    )
    monkeypatch.delattr(Client, "_finalize_reconnect")
    with pytest.raises(AsyncuaIncompatible, match=r"Client\._finalize_reconnect \(used by wrap_finalize_reconnect\)"):
        await asyncio.wait_for(Collector(config, environ={"TWIN_ENV": "dev"}).run(asyncio.Event()), timeout=10)
    assert not (tmp_path / "lake").exists() and not (tmp_path / "spool").exists()


def test_no_asyncua_private_name_is_used_outside_the_compat_module() -> None:
    """Every private name the check covers is accessed nowhere else in edge_collector/, and the two
    public methods the compat module replaces are assigned nowhere else (code tokens only)."""
    private = {seg for r in REQUIREMENTS for seg in r.path.split(".") if seg.startswith("_")}
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "asyncua_compat.py":
            continue
        with path.open("rb") as f:
            tokens = [t for t in tokenize.tokenize(f.readline) if t.type in (tokenize.OP, tokenize.NAME)]
        for dot, name, after in zip(tokens, tokens[1:], [*tokens[2:], None]):
            if dot.string != "." or name.type != tokenize.NAME:
                continue
            assigned = after is not None and after.string == "=" and name.string in ("recreate", "send_hello")
            if name.string in private or assigned:
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{name.start[0]}: .{name.string}")
    assert private >= {"_stale_check_margin", "_event_queue", "_monitored_items", "_limits"}
    assert not offenders, "asyncua private API outside opcua/asyncua_compat.py:\n" + "\n".join(offenders)
