"""`edge-collector`: run the collector, check a config, print an example config.

edge-collector run [--config F]
edge-collector check-config F
edge-collector example-config
edge-collector prune [--config F] [--retention-days N] [--dry-run]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path

from .config import CollectorConfig, ConfigError, load_config

EXAMPLE = """\
# edge-collector configuration (every key is optional; these are the defaults).
[collector]
id = "edge-01"                 # unique per collector: the Delta app-transaction id of its batches
# lake = ".twin/lake"          # default $TWIN_HOME/lake
# spool = ".twin/spool/edge-01"
lab_mode = false               # security None needs lab_mode = true AND TWIN_ENV=dev

[opcua]
endpoint = "opc.tcp://127.0.0.1:4840"
runtime = "CODESYS Control for Linux SL"
security_policy = "Aes256Sha256RsaPss"   # or Aes128Sha256RsaOaep, Basic256Sha256
security_mode = "SignAndEncrypt"
# server_certificate = ".twin/pki/plc/own/certs/cert.der"   # pin the PLC's certificate, or:
# trust_list = "/etc/twin/trusted-servers"
user_env = "EDGE_OPCUA_USER"             # the user name and password come from these variables
password_env = "EDGE_OPCUA_PASSWORD"
reconnect_max_delay_s = 4.0

[subscription]
lines = ["L1", "L2"]
tags = "default"               # the tag map's subscribed tags, or a list of tag paths
publishing_interval_ms = 100
sampling_interval_ms = 0
queue_size = 10000
deadband_abs = 0.0
buffer_events = 200000
# [[subscription.nodes]]       # any other node, e.g. of a real CODESYS runtime
# line = "L1"
# tag = "Custom.Temperature"
# node_id = "ns=4;s=|var|CODESYS Control for Linux SL.Application.GVL.rTemp"

[datalogger]
flush_interval_s = 1.0
max_batch_rows = 50000
max_buffer_rows = 2000000
compact_every_s = 600
compact_every_commits = 200
checkpoint_every_commits = 50
retention_days = 0             # > 0: prune UTC days older than this many days, once landed (0 keeps all)
prune_every_s = 3600

[metrics]
host = "127.0.0.1"
port = 9464                    # Prometheus /metrics; 0 disables
"""


def with_endpoint(config: CollectorConfig, endpoint: str) -> CollectorConfig:
    """The config with another endpoint, validated like one from the file."""
    raw = config.model_dump()
    raw["opcua"]["endpoint"] = endpoint
    try:
        return CollectorConfig.model_validate(raw)
    except ValueError as exc:
        raise ConfigError(f"--endpoint: {exc}") from exc


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edge-collector", description="OPC UA collector writing durable rolling Delta tables."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = sub.add_parser(
        "run",
        help="collect until SIGTERM/Ctrl-C (then flush and exit 0)",
        description="Subscribe to the PLC, inject variability, write the edge Delta tables.",
    )
    run.add_argument("--config", type=Path, help="TOML config (default: collect L1,L2 of a local plc-sim)")
    run.add_argument("--endpoint", help="override opcua.endpoint, e.g. opc.tcp://127.0.0.1:4841")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.add_argument("--plain-logs", action="store_true", help="human-readable logs instead of JSON lines")
    check = sub.add_parser(
        "check-config",
        help="validate a config file and print the effective settings",
        description="Validate a config file; exit 0 when valid, 2 with every problem listed.",
    )
    check.add_argument("config", type=Path)
    sub.add_parser(
        "example-config",
        help="print an example config with the defaults",
        description="Print an example TOML config with every default.",
    )
    prune = sub.add_parser(
        "prune",
        help="delete old UTC days of the edge tables that landing receipts wholly cover",
        description="Retention: delete the UTC days older than retention_days of raw_samples, injected_events, "
        "quarantine and gaps, only where landing receipts (edge/landed) wholly cover them; every day kept "
        "is listed with the reason. Safe beside a running collector (it takes the compaction lock).",
    )
    prune.add_argument("--config", type=Path, help="TOML config (its lake and [datalogger] retention_days)")
    prune.add_argument("--lake", type=Path, help="the lake root (default: the config's)")
    prune.add_argument("--retention-days", type=int, help="override [datalogger] retention_days (>= 1)")
    prune.add_argument("--dry-run", action="store_true", help="say what would be pruned, delete nothing")
    return parser


def _prune(args: argparse.Namespace) -> int:
    from .lake.maintenance import prune

    config = load_config(args.config)
    days = args.retention_days if args.retention_days is not None else config.datalogger.retention_days
    if days < 1:
        raise ConfigError(
            "retention is off (retention_days = 0 keeps everything): set [datalogger] retention_days or pass "
            "--retention-days N (N >= 1)"
        )
    lake = args.lake or config.lake()
    report = prune(lake, days, dry_run=args.dry_run)
    until = report.plan.landed_until
    print(f"{lake}: landed until {until:%Y-%m-%d %H:%M} UTC" if until else f"{lake}: nothing landed yet")
    for line in report.lines:
        print(f"  {line}")
    verb = "would prune" if args.dry_run else "pruned"
    planned = [d for d in report.plan.days if d.pruned]
    print(
        f"{verb} {len(planned)} day(s), {sum(d.rows for d in planned)} rows, "
        f"{sum(d.bytes for d in planned) / 1e6:.1f} MB; kept {report.days_kept_unlanded} old day(s) not wholly landed"
    )
    return 0


async def _run(config_path: Path | None, endpoint: str | None = None) -> int:
    from .collector import Collector, tune_gc
    from .session import SecurityRefused
    from .variability.engine_setup import engine_factory_for

    config = load_config(config_path)
    if endpoint:
        config = with_endpoint(config, endpoint)
    collector = Collector(config, engine_factory=engine_factory_for(config))
    tune_gc()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready() -> None:
        metrics = (
            f"; metrics on http://{config.metrics.host}:{config.metrics.port}/metrics" if config.metrics.port else ""
        )
        print(f"edge-collector: collecting from {config.opcua.endpoint} into {config.lake()}{metrics}", flush=True)

    try:
        return await collector.run(stop, ready=ready)
    except SecurityRefused as exc:
        print(f"edge-collector: refused: {exc}", file=sys.stderr)
        return 3


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "example-config":
            print(EXAMPLE, end="")
            return 0
        if args.command == "check-config":
            config = load_config(args.config)
            config.check_environment()
            print(json.dumps(config.redacted(), indent=2))
            print(f"{args.config}: valid", file=sys.stderr)
            return 0
        if args.command == "prune":
            return _prune(args)
        if args.command == "run":
            from .logs import setup_logging

            setup_logging(args.log_level, json_lines=not args.plain_logs)
            return asyncio.run(_run(args.config, args.endpoint))
    except ConfigError as exc:
        print(f"edge-collector: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, RuntimeError, OSError) as exc:
        # a key readable by others, an unsupported filesystem, another collector on the same lake, ...
        print(f"edge-collector: cannot start: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
