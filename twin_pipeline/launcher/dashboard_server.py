"""The dashboard (`dashboard/app.py`) served by Streamlit as a child process: `twin up` runs it beside the
Dagster UI, `twin dashboard` runs it alone, the browser tests and the benches drive it.

The supervisor starts it by file path and never imports it (data flows plc -> edge_collector ->
twin_pipeline -> dashboard). It listens on 127.0.0.1 unless asked, with Streamlit's telemetry off and no
browser opened; `wait_ready()` polls Streamlit's health endpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import BinaryIO

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
DEFAULT_PORT = 8501
#: Streamlit started with the pages' heavy libraries already imported: a page's first run would otherwise
#: import them (pandas 2.6 s, altair 2.1 s, polars and deltalake 1.6 s measured on this machine's kind) while
#: the first visitor waits; the health check answers about 3 s later instead (bench/dashboard_render.py).
PRELOAD = (
    "import sys; import pandas, altair, polars, pyarrow, deltalake; "
    "from streamlit.web.cli import main; sys.exit(main())"
)


class DashboardError(RuntimeError):
    pass


class DashboardServer:
    """`streamlit run dashboard/app.py` on `address:port`, reading the lake its environment names."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        address: str = "127.0.0.1",
        env: Mapping[str, str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.port, self.address = port, address
        self.env = {**os.environ, **(env or {})}
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: BinaryIO | None = None

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.port}"

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-c",
            PRELOAD,
            "run",
            str(APP),
            "--server.address",
            self.address,
            "--server.port",
            str(self.port),
            "--server.headless",
            "true",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
            "--client.toolbarMode",
            "viewer",
            "--theme.base",
            "light",
        ]

    def start(self) -> None:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = self.log_path.open("ab")
        out = self._log if self._log is not None else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            self.command(), env=self.env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until `/_stcore/health` answers ok; a child that exits first is an error naming its log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise DashboardError(
                    f"the dashboard exited with code {self.proc.returncode} (port {self.port} taken? "
                    f"log: {self.log_path or 'not kept'})"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/_stcore/health", timeout=2) as reply:  # noqa: S310 - our own loopback URL
                    if reply.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.2)
        raise DashboardError(f"the dashboard did not answer on {self.url} within {timeout:.0f} s")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM to its process group, then SIGKILL."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> DashboardServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
