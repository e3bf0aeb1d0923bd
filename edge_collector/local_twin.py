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
from pathlib import Path

from plc.security import PkiLayout, ensure_certificate, trust_certificate

from .collector import app_uri
from .config import load_config


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edge_collector.local_twin",
                                     description="Run the PLC simulator and the edge collector together (make run).")
    parser.add_argument("--lines", default="L1,L2", help="line ids (default L1,L2)")
    parser.add_argument("--port", type=int, default=4840, help="OPC UA port on 127.0.0.1 (default 4840)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the line models (default 1)")
    parser.add_argument("--config", type=Path, help="collector config (default: edge_collector/local.toml)")
    args = parser.parse_args(argv)

    home = Path(os.environ.get("TWIN_HOME", ".twin")).resolve()
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "TWIN_HOME": str(home)}
    user = "twin-collector"
    password = secrets.token_urlsafe(24)
    env.update({"PLC_SIM_USER": user, "PLC_SIM_PASSWORD": password, "EDGE_OPCUA_USER": user,
                "EDGE_OPCUA_PASSWORD": password})
    config_path = args.config or Path(__file__).with_name("local.toml")
    config = load_config(config_path)
    plc_pki = PkiLayout(home / "pki" / "plc")
    collector_pki = PkiLayout(config.opcua.pki or home / "pki" / "collector")
    cert, _ = ensure_certificate(collector_pki, app_uri(config.collector.id), f"edge-collector {config.collector.id}",
                                 server=False)
    trust_certificate(plc_pki, cert)

    bin_dir = Path(sys.executable).parent
    plc = _start([str(bin_dir / "plc-sim"), "serve", "--lines", args.lines, "--port", str(args.port), "--speed",
                  str(args.speed), "--seed", str(args.seed), "--pki", str(plc_pki.root)], env)
    collector: subprocess.Popen[bytes] | None = None
    stopping = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        _wait_port(args.port, plc)
        cmd = [str(bin_dir / "edge-collector"), "run", "--plain-logs", "--endpoint", f"opc.tcp://127.0.0.1:{args.port}",
               "--config", str(config_path)]
        collector = _start(cmd, env)
        print(f"twin: PLC on opc.tcp://127.0.0.1:{args.port}, lake at {home / 'lake'}; Ctrl-C stops", flush=True)
        while not stopping and plc.poll() is None and collector.poll() is None:
            time.sleep(0.2)
    finally:
        codes = []
        if collector is not None:
            codes.append(_stop(collector, "edge-collector"))
        codes.append(_stop(plc, "plc-sim"))
    print("twin: stopped", flush=True)
    return 0 if stopping and not any(codes) else max(codes + [1])


if __name__ == "__main__":
    sys.exit(main())
