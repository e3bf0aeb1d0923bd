"""`plc-sim`: run the simulated SoftPLC and manage what belongs to it.

plc-sim serve --lines L1,L2 --port 4840 --speed 60 --seed 1 [--start ISO] [--insecure]
plc-sim export-codesys [--lines L1,L2] [--out DIR] [--check]
plc-sim trust CERT --pki DIR
plc-sim hash-password
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import ipaddress
import logging
import os
import signal
import sys
from datetime import UTC, datetime
from pathlib import Path

from . import codesys_export
from .plant_config import ConfigError, load_lines
from .security import PkiLayout, hash_password, load_users, trust_certificate
from .server import PlcServer, ServerOptions
from .sim_clock import SimClock
from .tagmap import TAGS, PackMLState

log = logging.getLogger("plc-sim")


def _twin_home() -> Path:
    return Path(os.environ.get("TWIN_HOME", ".twin"))


def _start_time(text: str) -> datetime:
    try:
        value = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--start {text!r} is not ISO 8601, e.g. 2026-11-24T06:00:00+01:00") from exc
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"--start {text!r} needs a UTC offset, e.g. {text}+00:00")
    return value


def _line_ids(text: str) -> list[str]:
    ids = [part.strip() for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("--lines needs at least one line id, e.g. L1,L2")
    return ids


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plc-sim", description="Simulated CODESYS-style SoftPLC with an OPC UA server."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser(
        "serve",
        help="run the line models behind an OPC UA server",
        description="Run the line models behind an OPC UA server (SignAndEncrypt by default).",
    )
    serve.add_argument("--lines", type=_line_ids, default=["L1", "L2"], help="comma-separated line ids (default L1,L2)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1, loopback only)")
    serve.add_argument("--port", type=int, default=4840, help="TCP port (default 4840)")
    serve.add_argument(
        "--runtime", default=TAGS.default_runtime, help=f"runtime name in node ids (default {TAGS.default_runtime!r})"
    )
    serve.add_argument("--speed", type=_positive, default=1.0, help="simulated seconds per wall second (default 1)")
    serve.add_argument("--seed", type=int, default=1, help="seed of the line models' random numbers (default 1)")
    serve.add_argument(
        "--start",
        type=_start_time,
        help="simulated clock origin, ISO 8601 with offset; a past instant "
        "runs at --speed until it catches up with now, then at 1x",
    )
    serve.add_argument(
        "--wait-for-subscriber",
        action="store_true",
        help="with --speed > 1: the clock stands still until a client monitors a value, so no accelerated "
        "plant time passes unrecorded while the collector starts",
    )
    serve.add_argument(
        "--step", action="store_true", help="step mode: time moves only through the Simulation.Step method"
    )
    serve.add_argument("--insecure", action="store_true", help="LAB ONLY: security None and anonymous access")
    serve.add_argument(
        "--pki",
        type=Path,
        help="PKI folder: own certificate, trusted/ and rejected/ client certificates (default $TWIN_HOME/pki/plc)",
    )
    serve.add_argument(
        "--users-file",
        type=Path,
        help='TOML file with [users] name = "<hash from plc-sim hash-password>"; '
        "PLC_SIM_USER/PLC_SIM_PASSWORD add one user from the environment",
    )
    serve.add_argument("--config", type=Path, help="line profiles (same format as plc/lines.toml)")
    serve.add_argument(
        "--scan-ms", type=_positive, default=20.0, help="PLC scan interval in wall milliseconds (default 20)"
    )
    serve.add_argument(
        "--status-every", type=float, default=10.0, help="log a status line every N wall seconds (0: never)"
    )
    serve.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])

    export = sub.add_parser(
        "export-codesys",
        help="write the Structured Text derived from the tag map",
        description="Write the ST data types, GVLs and PLC_PRG derived from plc/tagmap.toml.",
    )
    export.add_argument(
        "--lines", type=_line_ids, default=["L1", "L2"], help="line ids to generate GVLs for (default L1,L2)"
    )
    export.add_argument("--out", type=Path, default=None, help="target folder (default: plc/codesys in the package)")
    export.add_argument("--check", action="store_true", help="only check; exit 1 if any generated file is out of date")

    trust = sub.add_parser(
        "trust",
        help="add a client certificate to the server's trust list",
        description="Copy a client certificate (DER or PEM) into the PKI's trusted/certs folder.",
    )
    trust.add_argument("cert", type=Path, help="certificate file, e.g. one from <pki>/rejected/certs")
    trust.add_argument("--pki", type=Path, help="PKI folder (default $TWIN_HOME/pki/plc)")

    sub.add_parser(
        "hash-password",
        help="print a PBKDF2 hash for a users file (reads the password from stdin or a prompt)",
        description="Print a PBKDF2-SHA256 hash of a password for the [users] table of a --users-file.",
    )
    return parser


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def _status_loop(plc: PlcServer, every: float) -> None:
    warned = False
    while every > 0:
        await asyncio.sleep(every)
        now = datetime.fromtimestamp(plc.clock.now(), UTC).isoformat(timespec="seconds")
        parts = [
            f"{p.line_id} {PackMLState(line.state).name} parts={line.processed} rejects={line.defective}"
            for p, line in zip(plc.params, plc.lines)
        ]
        log.info(
            "sim time %s (%.0fx achieved of %gx) | %s | %d value changes published",
            now,
            plc.pacer.achieved_speed(),
            plc.clock.current_speed(),
            " | ".join(parts),
            plc.notifications_written,
        )
        if plc.waiting_for_subscriber:
            log.info("the plant clock stands at %s until a client monitors a value (--wait-for-subscriber)", now)
            continue
        saturated = plc.pacer.saturated()
        if saturated and not warned:
            log.warning(
                "--speed %g is more than this machine serves now: the plant runs at %.0fx (the measured maximum), "
                "slower, never ahead; %.0f s of simulated time held back so far",
                plc.clock.speed,
                plc.pacer.achieved_speed(),
                plc.clock.held_back_s,
            )
        elif warned and not saturated:
            log.info("the plant runs at the requested speed again (%.0fx)", plc.pacer.achieved_speed())
        warned = saturated


async def _serve(args: argparse.Namespace) -> int:
    lines = load_lines(args.lines, args.config)
    users = load_users(args.users_file)
    clock = SimClock(start=args.start, speed=args.speed, step_mode=args.step)
    if not _is_loopback(args.host):
        log.warning("listening on %s: the PLC is reachable beyond this machine", args.host)
        if args.insecure:
            log.error(
                "refusing --insecure on a non-loopback address %s: anyone on the network could write the PLC; "
                "use --host 127.0.0.1 or drop --insecure",
                args.host,
            )
            return 2
    options = ServerOptions(
        host=args.host,
        port=args.port,
        runtime=args.runtime,
        insecure=args.insecure,
        pki_dir=args.pki or _twin_home() / "pki" / "plc",
        users=users,
        scan_interval_s=args.scan_ms / 1000.0,
        wait_for_subscriber=args.wait_for_subscriber,
    )
    plc = PlcServer(lines, clock, args.seed, options)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await plc.start()
    except OSError as exc:
        log.error(
            "cannot listen on %s: %s; is another server on that port? choose one with --port", options.endpoint, exc
        )
        return 2
    plc.run_in_background()
    status = loop.create_task(_status_loop(plc, args.status_every))
    print(
        f"plc-sim: serving lines {','.join(args.lines)} on {options.endpoint} "
        f"({'INSECURE' if args.insecure else 'SignAndEncrypt, PKI ' + str(options.pki_dir)}); "
        f"{'step mode' if args.step else f'{args.speed:g}x'}; Ctrl-C stops",
        flush=True,
    )
    await stop.wait()
    log.info("stopping")
    status.cancel()
    await plc.stop()
    log.info("stopped cleanly")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(args, "log_level", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("asyncua").setLevel(logging.WARNING)
    try:
        if args.command == "serve":
            return asyncio.run(_serve(args))
        if args.command == "export-codesys":
            target = args.out or codesys_export.default_dir()
            if args.check:
                stale = codesys_export.stale_files(args.lines, target)
                for item in stale:
                    print(f"out of date: {item}", file=sys.stderr)
                if stale:
                    print("run `plc-sim export-codesys` and commit the result", file=sys.stderr)
                return 1 if stale else 0
            for path in codesys_export.write(args.lines, target):
                print(path)
            return 0
        if args.command == "trust":
            pki = PkiLayout(args.pki or _twin_home() / "pki" / "plc")
            print(f"trusted: {trust_certificate(pki, args.cert)}")
            return 0
        if args.command == "hash-password":
            password = sys.stdin.readline().rstrip("\n") if not sys.stdin.isatty() else getpass.getpass("password: ")
            if not password:
                print("empty password refused", file=sys.stderr)
                return 2
            print(hash_password(password))
            return 0
    except (ConfigError, ValueError, PermissionError, FileNotFoundError) as exc:
        print(f"plc-sim: error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
