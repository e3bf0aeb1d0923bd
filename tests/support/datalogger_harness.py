"""A collector stand-in for the kill -9 test (D1): add rows at a steady rate, print what is durable.

Run as `python -m tests.support.datalogger_harness --lake L --spool S --session run03 ...`.
Every row has a unique key (session, seq). stdout (flushed per line) carries:
  READY <recovery report json>           after start() (the spool was replayed)
  ACK <table> <version> <rows> <min> <max>  a batch is durable in the spool: it must survive kill -9
  C <table> <version> / D <table> <version> a commit starts / has finished (kills between them land mid-commit)
  P <table> <last seq>                    rows handed to add() so far
  CLOSED <stats json>                     after a clean close() (only with --duration)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow.compute as pc

from edge_collector.datalogger import Acknowledged, Datalogger, DataloggerHooks

BASE = datetime(2026, 11, 24, 23, 59, 55, tzinfo=UTC)  # rows cross midnight: two day partitions


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def on_ack(ack: Acknowledged) -> None:
    seq = pc.min_max(ack.data.column("seq")).as_py()
    say(f"ACK {ack.table} {ack.version} {ack.rows} {seq['min']} {seq['max']}")


def hooks(sleep_before: float, sleep_after: float) -> DataloggerHooks:
    def before(table: str, version: int) -> None:
        say(f"C {table} {version}")
        time.sleep(sleep_before)

    def after(table: str, version: int) -> None:
        time.sleep(sleep_after)
        say(f"D {table} {version}")

    return DataloggerHooks(before_commit=before, after_commit=after)


def raw(session: str, seq: int, now: datetime) -> dict[str, Any]:
    ts = BASE + timedelta(milliseconds=seq)
    return {
        "line_id": "L1",
        "tag": "Admin.ProdProcessedCount",
        "source_ts": ts,
        "server_ts": ts,
        "received_ts": now,
        "value": float(seq),
        "value_text": None,
        "status_code": 0,
        "session_id": session,
        "seq": seq,
    }


def event(session: str, seq: int) -> dict[str, Any]:
    return {
        "line_id": "L1",
        "event_ts": BASE + timedelta(seconds=seq),
        "kind": "fault_start",
        "distribution": "weibull",
        "params": json.dumps({"shape": 1.5, "scale": 600}),
        "value": None,
        "fault_code": seq % 100,
        "seed": 7,
        "session_id": session,
        "seq": seq,
    }


async def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--lake", type=Path, required=True)
    p.add_argument("--spool", type=Path, required=True)
    p.add_argument("--session", required=True)
    p.add_argument("--rate", type=float, default=20_000, help="raw_samples rows per second")
    p.add_argument("--flush", type=float, default=0.1)
    p.add_argument("--max-batch-rows", type=int, default=50_000)
    p.add_argument("--compact-every-s", type=float, default=1.0)
    p.add_argument("--checkpoint-every", type=int, default=10)
    p.add_argument("--sleep-before-commit", type=float, default=0.0)
    p.add_argument("--sleep-after-commit", type=float, default=0.0)
    p.add_argument("--duration", type=float, default=None, help="stop cleanly after this many seconds")
    args = p.parse_args(argv)

    dl = Datalogger(
        args.lake,
        args.spool,
        "chaos",
        flush_interval_s=args.flush,
        max_batch_rows=args.max_batch_rows,
        compact_every_s=args.compact_every_s,
        checkpoint_every_commits=args.checkpoint_every,
        on_acknowledged=on_ack,
        hooks=hooks(args.sleep_before_commit, args.sleep_after_commit),
    )
    report = await dl.start()
    say(
        "READY "
        + json.dumps(
            {
                "replayed": report.replayed_batches,
                "skipped": report.skipped_batches,
                "temp_removed": report.temp_files_removed,
                "corrupt": report.corrupt_files,
            }
        )
    )
    tick = 0.01
    seq = events = 0
    started = time.monotonic()
    while args.duration is None or time.monotonic() - started < args.duration:
        now = datetime.now(UTC)
        target = int((time.monotonic() - started + tick) * args.rate)
        while seq < target:
            seq += 1
            dl.add("raw_samples", raw(args.session, seq, now))
            if seq % 500 == 0:
                events += 1
                dl.add("injected_events", event(args.session, events))
        say(f"P raw_samples {seq}")
        say(f"P injected_events {events}")
        await asyncio.sleep(tick)
    await dl.close()
    s = dl.stats
    say(
        "CLOSED "
        + json.dumps(
            {
                "rows_added": s.rows_added,
                "rows_committed": s.rows_committed,
                "dropped_rows": s.dropped_rows,
                "compactions": s.compactions,
                "checkpoints": s.checkpoints,
                "errors": s.errors,
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # skip interpreter teardown: deltalake's runtime threads can abort it (exit 134)
