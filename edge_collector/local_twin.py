"""`make run`: the PLC simulator and the collector together, on loopback, secure, under TWIN_HOME.

Secure without any set-up: a random OPC UA user is made for this run and handed to both
processes through the environment, the collector's certificate is put in the PLC's trust list,
and the collector pins the PLC's certificate. Ctrl-C or SIGTERM stops the collector first (it
flushes to Delta), then the PLC.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

from plc.security import PkiLayout, ensure_certificate, trust_certificate

from .config import load_config
from .session import app_uri


def _start(cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    # Own process group with default signal handling, so Ctrl-C reaches us once and we stop children in order.
    return subprocess.Popen(cmd, env=env, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes], name: str, timeout: float = 30.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            print(f"twin: {name} did not stop within {timeout:.0f} s; killing it", file=sys.stderr)
            proc.kill()
            proc.wait()
    return proc.returncode or 0


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"twin: plc-sim exited with {proc.returncode} before listening; see its messages above")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"twin: plc-sim did not listen on port {port} within {timeout:.0f} s")


class LiveLine:
    """The PLC simulator and the collector as two child processes, secured for this run; stopped
    collector first (it flushes to Delta), then the PLC. `twin up` (twin_pipeline/launcher/twin.py) runs one too."""

    def __init__(
        self,
        home: Path,
        *,
        lines: str = "L1,L2",
        port: int = 4840,
        speed: float = 1.0,
        seed: int = 1,
        config_path: Path | None = None,
        start: datetime | None = None,
    ) -> None:
        self.home, self.lines, self.port, self.speed, self.seed = home, lines, port, speed, seed
        #: The plant clock's origin (plc-sim --start): a past instant runs at `speed` until it reaches now.
        self.start_at = start
        self.config_path = config_path or Path(__file__).with_name("local.toml")
        self.config = load_config(self.config_path)
        self.plc: subprocess.Popen[bytes] | None = None
        self.collector: subprocess.Popen[bytes] | None = None

    @property
    def metrics_url(self) -> str | None:
        port = self.config.metrics.port
        return f"http://127.0.0.1:{port}/metrics" if port else None

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "TWIN_HOME": str(self.home)}
        user, password = "twin-collector", secrets.token_urlsafe(24)
        env.update(
            {
                "PLC_SIM_USER": user,
                "PLC_SIM_PASSWORD": password,
                "EDGE_OPCUA_USER": user,
                "EDGE_OPCUA_PASSWORD": password,
            }
        )
        return env

    def start(self) -> None:
        """Start the PLC, wait until it listens, then start the collector."""
        env = self._env()
        plc_pki = PkiLayout(self.home / "pki" / "plc")
        collector_pki = PkiLayout(self.config.opcua.pki or self.home / "pki" / "collector")
        cert, _ = ensure_certificate(
            collector_pki, app_uri(self.config.collector.id), f"edge-collector {self.config.collector.id}", server=False
        )
        trust_certificate(plc_pki, cert)
        bin_dir = Path(sys.executable).parent
        self.plc = _start(
            [
                str(bin_dir / "plc-sim"),
                "serve",
                "--lines",
                self.lines,
                "--port",
                str(self.port),
                "--speed",
                str(self.speed),
                "--seed",
                str(self.seed),
                "--pki",
                str(plc_pki.root),
                *(["--start", self.start_at.isoformat(), "--wait-for-subscriber"] if self.start_at is not None else []),
            ],
            env,
        )
        _wait_port(self.port, self.plc)
        self.collector = _start(
            [
                str(bin_dir / "edge-collector"),
                "run",
                "--plain-logs",
                "--endpoint",
                f"opc.tcp://127.0.0.1:{self.port}",
                "--config",
                str(self.config_path),
            ],
            env,
        )

    def alive(self) -> bool:
        return all(p is not None and p.poll() is None for p in (self.plc, self.collector))

    def stop(self) -> list[int]:
        codes = []
        if self.collector is not None:
            codes.append(_stop(self.collector, "edge-collector"))
        if self.plc is not None:
            codes.append(_stop(self.plc, "plc-sim"))
        return codes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_collector.local_twin", description="Run the PLC simulator and the edge collector together."
    )
    parser.add_argument("--lines", default="L1,L2", help="line ids (default L1,L2)")
    parser.add_argument("--port", type=int, default=4840, help="OPC UA port on 127.0.0.1 (default 4840)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the line models (default 1)")
    parser.add_argument("--config", type=Path, help="collector config (default: edge_collector/local.toml)")
    args = parser.parse_args(argv)

    home = Path(os.environ.get("TWIN_HOME", ".twin")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    line = LiveLine(home, lines=args.lines, port=args.port, speed=args.speed, seed=args.seed, config_path=args.config)
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        line.start()
        print(f"twin: PLC on opc.tcp://127.0.0.1:{args.port}, lake at {home / 'lake'}; Ctrl-C stops", flush=True)
        while not stopping and line.alive():
            time.sleep(0.2)
    finally:
        codes = line.stop()
    print("twin: stopped", flush=True)
    return 0 if stopping and not any(codes) else max([*codes, 1])


if __name__ == "__main__":
    sys.exit(main())
