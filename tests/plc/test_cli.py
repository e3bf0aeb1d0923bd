"""`plc-sim` as a user runs it: help everywhere, clean shutdown, clear errors, codesys export."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from plc import codesys_export
from tests.conftest import free_port

PLC_SIM = [sys.executable, "-m", "plc.cli"]


@pytest.mark.parametrize(
    "args",
    [["--help"], ["serve", "--help"], ["export-codesys", "--help"], ["trust", "--help"], ["hash-password", "--help"]],
)
def test_every_command_has_help(args: list[str]) -> None:
    out = subprocess.run(PLC_SIM + args, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "usage: plc-sim" in out.stdout


def _serve(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "TWIN_HOME": str(tmp_path / "twin")}
    proc = subprocess.Popen(
        [*PLC_SIM, "serve", "--port", str(free_port()), "--status-every", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    banner = proc.stdout.readline()
    return proc, banner


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(tmp_path: Path, sig: signal.Signals) -> None:
    proc, banner = _serve(tmp_path, "--speed", "50")
    assert "serving lines L1,L2" in banner and "SignAndEncrypt" in banner
    time.sleep(0.5)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "stopped cleanly" in err
    assert (tmp_path / "twin" / "pki" / "plc" / "own" / "certs" / "cert.der").exists()


def test_insecure_on_a_public_address_is_refused(tmp_path: Path) -> None:
    out = subprocess.run(
        [*PLC_SIM, "serve", "--insecure", "--host", "0.0.0.0", "--port", str(free_port())],  # noqa: S104 - the refusal under test
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "refusing --insecure" in out.stderr


def test_bad_line_config_is_a_clear_error(tmp_path: Path) -> None:
    config = tmp_path / "lines.toml"
    config.write_text("[lines.L1]\ndesign_sped_ppm = 10\n")
    out = subprocess.run(
        [*PLC_SIM, "serve", "--config", str(config), "--lines", "L1"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 2 and "design_sped_ppm" in out.stderr and "known:" in out.stderr


def test_committed_structured_text_matches_the_tag_map() -> None:
    stale = codesys_export.stale_files(["L1", "L2"], codesys_export.default_dir())
    assert stale == [], f"run `plc-sim export-codesys` and commit: {stale}"


def test_export_check_detects_an_edited_file(tmp_path: Path) -> None:
    codesys_export.write(["L1", "L2"], tmp_path)
    out = subprocess.run(
        [*PLC_SIM, "export-codesys", "--check", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0
    gvl = tmp_path / "GVLs" / "L1.st"
    gvl.write_text(gvl.read_text().replace("Sim : ST_Sim;", ""))
    out = subprocess.run(
        [*PLC_SIM, "export-codesys", "--check", "--out", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 1 and "GVLs/L1.st (out of date)" in out.stderr


def test_hash_password_reads_stdin() -> None:
    out = subprocess.run([*PLC_SIM, "hash-password"], input="pw\n", capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("pbkdf2_sha256$")
