"""`twin dashboard`: the dashboard alone over a lake named on the command line, on loopback, stopped by
SIGTERM like Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.conftest import free_port

TWIN = Path(sys.executable).parent / "twin"


def listeners(port: int) -> set[str]:
    """The local addresses (hex, as the kernel writes them) listening on `port`, IPv4 and IPv6."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_twin_dashboard_serves_a_lake_on_loopback_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "dashboard.log"
    proc = subprocess.Popen(
        [str(TWIN), "dashboard", "--lake", str(tmp_path / "lake"), "--port", str(port)],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        env={**os.environ, "TWIN_HOME": str(tmp_path / "home")},
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while "Ctrl-C stops it" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        out = log.read_text()
        assert f"dashboard http://127.0.0.1:{port} over the lake {tmp_path / 'lake'}" in out, out
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=5) as reply:
            assert reply.status == 200
        assert listeners(port) == {"0100007F"}  # 127.0.0.1 only (IPv4; and nothing on IPv6: /proc/net/tcp6)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0 and "dashboard stopped" in log.read_text()
