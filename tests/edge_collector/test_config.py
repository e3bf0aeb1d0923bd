"""Config validation: defaults work, mistakes are named, insecure settings are refused."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from edge_collector.cli import EXAMPLE
from edge_collector.config import CollectorConfig, ConfigError, parse_config

CLI = [sys.executable, "-m", "edge_collector.cli"]


def test_defaults_and_the_example_are_valid() -> None:
    assert parse_config("") == CollectorConfig()
    example = parse_config(EXAMPLE)
    assert example.subscription.lines == ["L1", "L2"] and example.opcua.security_policy == "Aes256Sha256RsaPss"


@pytest.mark.parametrize("policy", ["Basic128Rsa15", "Basic256", "Aes999"])
def test_weak_or_unknown_policies_are_refused(policy: str) -> None:
    """S2 (RELIABILITY.md): Weak or unknown policies are refused."""
    with pytest.raises(ConfigError, match="security_policy"):
        parse_config(f'[opcua]\nsecurity_policy = "{policy}"\n')


def test_security_none_needs_lab_mode_and_dev_environment() -> None:
    """S2 (RELIABILITY.md): Security none needs lab mode and dev environment."""
    with pytest.raises(ConfigError, match="lab_mode"):
        parse_config('[opcua]\nsecurity_policy = "None"\n')
    lab = parse_config('[collector]\nlab_mode = true\n[opcua]\nsecurity_policy = "None"\n')
    with pytest.raises(ConfigError, match="TWIN_ENV=dev"):
        lab.check_environment({})
    lab.check_environment({"TWIN_ENV": "dev"})


def test_every_problem_is_listed_with_its_key() -> None:
    with pytest.raises(ConfigError) as excinfo:
        parse_config(
            '[subscription]\nlines = ["L1", "L1"]\npublishing_interval_ms = -5\ntags = ["Nope.Tag"]\n'
            "[datalogger]\nflush_intervall_s = 1\n"
        )
    text = str(excinfo.value)
    for key in (
        "subscription.lines",
        "subscription.publishing_interval_ms",
        "subscription.tags",
        "datalogger.flush_intervall_s",
    ):
        assert key in text, text
    assert "unknown key" in text


def test_credentials_only_from_the_environment() -> None:
    """S6 (RELIABILITY.md): Credentials only from the environment."""
    with pytest.raises(ConfigError, match="endpoint"):
        parse_config('[opcua]\nendpoint = "opc.tcp://user:pw@127.0.0.1:4840"\n')
    cfg = parse_config("")
    assert cfg.credentials({"EDGE_OPCUA_USER": "op", "EDGE_OPCUA_PASSWORD": "pw"}) == ("op", "pw")
    with pytest.raises(ConfigError, match="EDGE_OPCUA_PASSWORD"):
        cfg.credentials({"EDGE_OPCUA_USER": "op"})
    assert "pw" not in str(cfg.redacted())


def test_check_config_cli(tmp_path: Path) -> None:
    """S2 (RELIABILITY.md): The check-config CLI."""
    good = tmp_path / "good.toml"
    good.write_text(EXAMPLE)
    out = subprocess.run([*CLI, "check-config", str(good)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "valid" in out.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[opcua]\nsecurity_policy = 'Basic128Rsa15'\n")
    out = subprocess.run([*CLI, "check-config", str(bad)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "opcua.security_policy" in out.stderr
    for args in (["--help"], ["run", "--help"], ["check-config", "--help"], ["example-config", "--help"]):
        assert subprocess.run(CLI + args, capture_output=True, text=True, timeout=60).returncode == 0


def test_a_private_key_readable_by_others_stops_the_collector_at_start(tmp_path: Path) -> None:
    """S6 (RELIABILITY.md): A private key readable by others stops the collector at start."""
    import os

    from edge_collector.session import app_uri
    from plc.security import PkiLayout, ensure_certificate

    pki = PkiLayout(tmp_path / "pki")
    ensure_certificate(pki, app_uri("edge-01"), "edge", server=False)
    os.chmod(pki.key, 0o644)
    server_cert = tmp_path / "server.der"
    server_cert.write_bytes(pki.cert.read_bytes())
    config = tmp_path / "c.toml"
    config.write_text(
        f'[collector]\nlake = "{tmp_path / "lake"}"\nspool = "{tmp_path / "spool"}"\n'
        f'[opcua]\nendpoint = "opc.tcp://127.0.0.1:9"\npki = "{pki.root}"\n'
        f'server_certificate = "{server_cert}"\n[metrics]\nport = 0\n'
    )
    out = subprocess.run(
        [*CLI, "run", "--config", str(config), "--plain-logs"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "chmod 600" in out.stderr
