"""History seeding: days of edge data in seconds, written as if the collector had recorded them.

Why it exists: the pipeline, its backfills and its benchmarks need days or weeks of edge data, and
recording them through the OPC UA server costs real time (about 100x real time at best). Here the
same line models (`plc/line_model.py`, profiles from `plc/lines.toml`) run in-process and every
change they emit becomes a `raw_samples` row exactly as the path PLC server -> collector would
produce it:

- source timestamps as `plc/server.py` stamps them: simulated time in whole microseconds, strictly
  increasing per node (two changes of one tag in the same instant are 1 us apart), and every node
  of the server first holds its UncertainInitialValue at the start instant, so the line model's
  start-up values land 1 us after it;
- only the tags the collector subscribes to by default (the tag map's `subscribe = true`), and a
  `subscriptions` manifest of them in force from the start (seq 1..n of each line), as the
  collector writes one when it subscribes;
  subscribed tags the PLC program never writes at start (e.g. `Sim.QualityErrorMm`) appear once
  with their initial value and status UncertainInitialValue, as the collector receives them;
- values as `edge_collector/normalize.py` stores them: numbers and booleans (0/1) in `value`,
  strings in `value_text`, status 0 (Good); `server_ts` and `received_ts` equal `source_ts`
  (there was no network), `session_id` is `seed-<seed>-<start>` so seeded rows are recognisable
  and one seeding is one session, and `seq` is strictly increasing per session and line;
- with a variability config, the real variability engine (`engine.py`) drives the lines
  through an in-memory `PlcPort`, and its `injected_events` rows (the ground truth) are written too.
  Its writes to subscribed inputs (`Sim.FeedRate`, ...) are samples, as the server publishes them;
  every injection works here as live (starvation, blocking, micro-stops, reduced speed and start-up
  rejects are inputs of the same line model), so the seeded shifts show the six big losses.

Writes: one Delta append per `batch_s` of simulated time (default one hour), of every line at once,
with the datalogger's own helpers (`open_or_create`, `append_once` from `lake/`, `build_batch` from
`datalogger/`): the Datalogger class takes rows one by one, which would cost more than the
simulation. Each batch is a Delta app transaction
(`history-seed:<session>:<digest of lines, profiles, variability, batch size>`,
version = batch number), so re-running an interrupted or extended seeding with the same arguments
skips the batches already committed (the trajectory is deterministic: it depends only on seeds,
lines, profiles and start). Seeding the same line and time twice with other settings writes a
second, conflicting history: don't. Writing runs on a thread while the next
batch is simulated (delta-rs releases the GIL). The edge writer lock is held throughout, so a
collector cannot write the same lake meanwhile. At the end the tables are compacted (as the
collector's datalogger does) and checkpointed.

Not reproduced: collector outages (`gaps`), quarantine rows, network latency (the engine acts
exactly at its due time instead of at the next clock notification), and the loss of same-instant
intermediate values that a subscription created after the PLC started would not see.

    python -m edge_collector.variability.history --lines L1,L2 --start 2026-11-02T05:00Z --days 7 [--lake .twin/lake]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable, Coroutine, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from asyncua import ua

from plc.line_model import Line, validate_input
from plc.plant_config import load_lines
from plc.tagmap import TAGS, PackMLCommand, symbol
from plc.tagmap import PackMLState as S

from ..datalogger import build_batch
from ..lake import LOCK_NAME, WriterLock, append_once, compact, open_or_create
from ..manifest import Entry, manifest_rows, manifest_table
from ..schemas import RAW_SAMPLES, TS, edge_table_path
from .engine import VariabilityConfig, VariabilityEngine
from .plc_port import LineState, to_variant

log = logging.getLogger(__name__)

SESSION_PREFIX = "seed-"
UNCERTAIN_INITIAL = int(ua.StatusCodes.UncertainInitialValue)
STATE_TAG = "Status.StateCurrent"
_DAY_US = 86_400_000_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
#: Commits between Delta checkpoints (the datalogger's default), so readers replay few JSON commits.
CHECKPOINT_EVERY = 50


@dataclass
class LineTruth:
    """The line model's own figures at the end of the seeding: what the pipeline must reproduce."""

    processed: int  # Admin.ProdProcessedCount (the PLC's counter, wraps at 2^32)
    defective: int
    state_time_s: dict[str, float]  # seconds per PackML state since the start, like Admin.StateTime.*


@dataclass
class SeedStats:
    """What a seeding wrote and how fast it ran."""

    session_id: str
    lines: list[str]
    start: datetime
    end: datetime
    rows: int = 0  # raw_samples rows written (batches skipped as already committed not counted)
    events: int = 0  # injected_events rows written
    commits: int = 0
    batches: int = 0
    batches_skipped: int = 0  # already in the lake from an earlier run of the same seeding
    simulated_to: datetime | None = None
    wall_s: float = 0.0
    compaction_s: float = 0.0  # part of wall_s spent compacting and checkpointing at the end
    truth: dict[str, LineTruth] = field(default_factory=dict)

    @property
    def simulated_s(self) -> float:
        reached = self.simulated_to or self.start
        return (reached - self.start).total_seconds()

    @property
    def sim_per_wall_per_line(self) -> float:
        """Simulated line-seconds per wall second (each line counts): the seeder's speed for one line."""
        return self.simulated_s * len(self.lines) / self.wall_s if self.wall_s > 0 else float("inf")


def session_id_for(seed: int, start: datetime) -> str:
    """`seed-<seed>-<start>`: marks the rows as seeded; one seeding (seed and start) is one session."""
    return f"{SESSION_PREFIX}{seed}-{start.astimezone(UTC):%Y%m%dT%H%M%SZ}"


# ---------------------------------------------------------------------------------------- recording


_SUBSCRIBED = TAGS.subscribed_line_tags()
_TAG_NAMES = [t.path for t in _SUBSCRIBED]
_TAG_INDEX = {path: i for i, path in enumerate(_TAG_NAMES)}
_TEXT_TAGS = frozenset(i for i, t in enumerate(_SUBSCRIBED) if t.type == "String")
_TIME_TAGS = frozenset(i for i, t in enumerate(_SUBSCRIBED) if t.type == "DateTime")


class _Initial:
    """The value of a node that still holds its UncertainInitialValue: equal to nothing."""

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


_INITIAL = _Initial()


class _Recorder:
    """One line's notifications, stamped like the server stamps them (the emit hot path): a change of a
    subscribed tag's value or status is a row; writing the value a node already holds stamps it but
    notifies nobody (asyncua's data-change trigger StatusValue, the OPC UA default)."""

    def __init__(self, t0: float) -> None:
        us0 = round(t0 * 1e6)
        self.last = [us0] * len(_TAG_NAMES)  # every node holds its initial value, stamped at the start instant
        self.current: list[Any] = [_INITIAL] * len(_TAG_NAMES)  # value of each node; _INITIAL: not yet Good
        self.tags: list[int] = []
        self.us: list[int] = []
        self.values: list[Any] = []
        self.status: dict[int, int] = {}  # row -> status code, for the rare non-Good rows
        self.seq = len(_TAG_NAMES)  # seq 1..n are the line's rows of the seeded subscriptions manifest
        index, last, current = _TAG_INDEX, self.last, self.current
        tags, stamps, values = self.tags, self.us, self.values

        def emit(path: str, value: Any, t: float) -> None:
            i = index.get(path)
            if i is None:
                return  # not subscribed by the collector
            us = round(t * 1e6)
            prev = last[i]
            if us <= prev:
                us = prev + 1
            last[i] = us
            if value == current[i]:
                return  # same value and status: the server sends no notification (trigger StatusValue)
            current[i] = value
            tags.append(i)
            stamps.append(us)
            values.append(value)

        self.emit = emit

    def initial(self, t0: float) -> None:
        """Subscribed tags the line model did not publish at start keep the server's initial value,
        status UncertainInitialValue, stamped at the start instant: the collector stores that too."""
        emitted = set(self.tags)
        us0 = round(t0 * 1e6)
        missing = [i for i in range(len(_TAG_NAMES)) if i not in emitted]
        for k, _i in enumerate(missing):
            self.status[k] = UNCERTAIN_INITIAL
        self.tags[:0] = missing
        self.us[:0] = [us0] * len(missing)
        self.values[:0] = [_SUBSCRIBED[i].default_value() for i in missing]

    def state_since(self) -> datetime:
        us = self.last[_TAG_INDEX[STATE_TAG]]
        return _EPOCH + timedelta(microseconds=us)

    def take(self) -> tuple[list[int], list[int], list[Any], dict[int, int]]:
        taken = (self.tags[:], self.us[:], self.values[:], self.status)
        del self.tags[:], self.us[:], self.values[:]
        self.status = {}
        return taken


def _values(tags: np.ndarray, values: list[Any]) -> tuple[pa.Array, pa.Array]:
    """(value, value_text) columns with the normalizer's conventions (booleans 0/1, strings as text)."""
    n = len(values)
    if not (_TEXT_TAGS or _TIME_TAGS) or not np.isin(tags, list(_TEXT_TAGS | _TIME_TAGS)).any():
        return pa.array(np.asarray(values, dtype=np.float64)), pa.nulls(n, pa.string())
    nums: list[float | None] = []
    texts: list[str | None] = []
    for i, v in zip(tags.tolist(), values):
        if i in _TEXT_TAGS:
            nums.append(None)
            texts.append(str(v))
        elif isinstance(v, datetime):
            nums.append(v.timestamp())
            texts.append(None)
        else:
            nums.append(float(v))
            texts.append(None)
    return pa.array(nums, pa.float64()), pa.array(texts, pa.string())


def _raw_batch(line_ids: Sequence[str], recorders: Sequence[_Recorder], session_id: str) -> pa.Table | None:
    """Everything recorded since the last batch as one Arrow table of the raw_samples schema."""
    parts = []
    for k, rec in enumerate(recorders):
        tags, stamps, values, status = rec.take()
        if not tags:
            continue
        n = len(tags)
        codes = np.zeros(n, dtype=np.int64)
        for row, code in status.items():
            codes[row] = code
        seq = np.arange(rec.seq + 1, rec.seq + n + 1, dtype=np.int64)
        rec.seq += n
        parts.append(
            (
                np.full(n, k, dtype=np.int32),
                np.asarray(tags, dtype=np.int32),
                np.asarray(stamps, dtype=np.int64),
                values,
                codes,
                seq,
            )
        )
    if not parts:
        return None
    line_idx = np.concatenate([p[0] for p in parts])
    tag_idx = np.concatenate([p[1] for p in parts])
    us = np.concatenate([p[2] for p in parts])
    values = [v for p in parts for v in p[3]]
    codes = np.concatenate([p[4] for p in parts])
    seq = np.concatenate([p[5] for p in parts])
    n = len(us)
    ts = pa.array(us, type=TS)
    days, day_idx = np.unique(us // _DAY_US, return_inverse=True)
    day_names = pa.array([(_EPOCH + timedelta(days=int(d))).strftime("%Y-%m-%d") for d in days], pa.string())
    value, value_text = _values(tag_idx, values)
    columns = {
        "line_id": pa.array(list(line_ids), pa.string()).take(pa.array(line_idx)),
        "tag": pa.array(_TAG_NAMES, pa.string()).take(pa.array(tag_idx)),
        "source_ts": ts,
        "server_ts": ts,
        "received_ts": ts,
        "value": value,
        "value_text": value_text,
        "status_code": pa.array(codes),
        "session_id": pa.array([session_id], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32))),
        "seq": pa.array(seq),
        "day": day_names.take(pa.array(day_idx.astype(np.int32))),
    }
    return pa.Table.from_arrays([columns[f.name] for f in RAW_SAMPLES], schema=RAW_SAMPLES)


# ---------------------------------------------------------------------------------------- the PLC port


class InMemoryPlcPort:
    """`PlcPort` over in-process line models. A write applies at the line's current simulated time,
    as plc-sim in step mode applies a client write at its next scan; like the server it refuses wrong
    types and out-of-range values, and a write to a subscribed tag is a sample."""

    def __init__(self, models: dict[str, Line], recorders: dict[str, _Recorder]) -> None:
        self.models = models
        self.recorders = recorders

    async def write(self, line: str, path: str, value: Any) -> None:
        tag = TAGS.line_tag(path)
        if not tag.writable:
            raise ValueError(f"{path} is read-only in the tag map")
        raw = to_variant(tag, value).Value
        reason = validate_input(path, raw)
        if reason is not None:
            raise ValueError(f"{line} {path}={raw!r} refused: {reason}")
        model = self.models[line]
        self.recorders[line].emit(path, raw, model.now)  # the server writes the node before the scan applies it
        model.apply_input(path, raw)

    async def command(self, line: str, cmd: int) -> None:
        await self.write(line, "Command.CntrlCmd", int(PackMLCommand(cmd)))
        await self.write(line, "Command.CmdChangeRequest", True)

    async def state(self, line: str) -> LineState:
        return LineState(int(self.models[line].state), self.recorders[line].state_since())


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine that never suspends (the engine over the in-memory port) without an event loop,
    so seeding also works from inside a running loop and costs no scheduling."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("the variability engine awaited something real; the in-memory port never suspends")


# ---------------------------------------------------------------------------------------- seeding


def variability_from_toml(path: Path) -> tuple[VariabilityConfig | None, int]:
    """The `[variability]` section of a collector config (e.g. edge_collector/local.toml): (config, seed);
    (None, seed) when the section is missing or disabled."""
    with path.open("rb") as f:
        raw = dict(tomllib.load(f).get("variability", {}))
    seed = int(raw.pop("seed", 1))
    if not raw or not raw.pop("enabled", True):
        return None, seed
    return VariabilityConfig.model_validate(raw), seed


def _fingerprint(params: Sequence[Any], variability: VariabilityConfig | None, vseed: int, batch_s: float) -> str:
    """Short digest of everything that shapes the batches except the end (so a seeding can be extended)."""
    text = json.dumps(
        [[repr(p) for p in params], variability.model_dump(mode="json") if variability else None, vseed, batch_s],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _seeded_manifest(line_ids: Sequence[str], session: str, start: datetime) -> pa.Table:
    """The seeded session's subscriptions manifest: the tags it writes, in force from `start`."""
    entries = [
        Entry(line, t.path, f"nsu={TAGS.namespace_uri};s={symbol(TAGS.default_runtime, line, t.path)}", "subscribed")
        for line in line_ids
        for t in _SUBSCRIBED
    ]
    seqs: dict[str, int] = {}

    def next_seq(line: str) -> int:
        seqs[line] = seqs.get(line, 0) + 1
        return seqs[line]

    return manifest_table(manifest_rows(entries, start, session, next_seq))


def _aware(ts: datetime, name: str) -> datetime:
    if ts.tzinfo is None:
        raise ValueError(f"{name} must be timezone-aware (e.g. 2026-11-24T05:00:00+00:00)")
    return ts.astimezone(UTC)


def seed_history(
    lake: Path,
    line_ids: list[str],
    start: datetime,
    end: datetime,
    seed: int = 0,
    progress: Callable[[SeedStats], None] | None = None,
    *,
    variability: VariabilityConfig | None = None,
    variability_seed: int | None = None,
    lines_config: Path | None = None,
    batch_s: float = 3600.0,
    compact_tables: bool = True,
    **line_overrides: Any,
) -> SeedStats:
    """Simulate `line_ids` from `start` (the PLC starts there: counters 0, autostart) to `end` and append
    what the collector would have recorded to the edge tables of `lake`. `progress` is called after every
    batch with the running stats. `line_overrides` go to every line's profile (as in `load_lines`)."""
    start, end = _aware(start, "start"), _aware(end, "end")
    if end <= start:
        raise ValueError(f"end {end} must be after start {start}")
    if not line_ids or len(set(line_ids)) != len(line_ids):
        raise ValueError(f"give distinct line ids, got {line_ids}")
    if batch_s <= 0:
        raise ValueError("batch_s must be > 0")
    params = load_lines(list(line_ids), lines_config, **line_overrides)
    vseed = seed if variability_seed is None else variability_seed
    session = session_id_for(seed, start)
    # the batches of one trajectory: a rerun or extension skips what is committed; other lines or settings
    # are another trajectory and never mistaken for it
    app_id = f"history-seed:{session}:{_fingerprint(params, variability, vseed, batch_s)}"
    stats = SeedStats(session, list(line_ids), start, end)
    lake = Path(lake)
    lock = WriterLock(lake / "edge" / LOCK_NAME)
    lock.acquire("history seeding (stop the collector writing this lake first)")
    wall0 = time.perf_counter()
    try:
        raw_dt = open_or_create(edge_table_path(lake, "raw_samples"), "raw_samples", CHECKPOINT_EVERY)
        events_dt = (
            open_or_create(edge_table_path(lake, "injected_events"), "injected_events", CHECKPOINT_EVERY)
            if variability is not None
            else None
        )
        manifest = open_or_create(edge_table_path(lake, "subscriptions"), "subscriptions", CHECKPOINT_EVERY)
        append_once(manifest, _seeded_manifest(line_ids, session, start), app_id, 1)
        t0 = start.timestamp()
        recorders = {line: _Recorder(t0) for line in line_ids}
        models: dict[str, Line] = {}
        for p in params:
            models[p.line_id] = Line(p, seed, t0, recorders[p.line_id].emit)
            recorders[p.line_id].initial(t0)
        events: list[dict[str, Any]] = []
        engine = None
        if variability is not None:
            engine = VariabilityEngine(
                variability, line_ids, vseed, InMemoryPlcPort(models, recorders), events.append, session
            )
            _run(engine.start(start))
        order = [recorders[line] for line in line_ids]
        writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="history-writer")
        inflight: list[Future[None]] = []
        checkpointed: dict[int, int] = {}

        def write(version: int, raw: pa.Table | None, rows: list[dict[str, Any]], reached: datetime) -> None:
            wrote = 0
            if raw is not None and append_once(raw_dt, raw, app_id, version):
                stats.rows += raw.num_rows
                stats.commits += 1
                wrote += 1
            if rows and events_dt is not None:
                data, rejected = build_batch("injected_events", rows)
                if rejected:
                    raise ValueError(f"injected_events rows that do not fit the schema: {rejected[:3]}")
                if append_once(events_dt, data, app_id, version):
                    stats.events += data.num_rows
                    stats.commits += 1
                    wrote += 1
            if not wrote and (raw is not None or rows):
                stats.batches_skipped += 1
            for dt in (raw_dt, events_dt):
                if dt is not None and dt.version() - checkpointed.get(id(dt), 0) >= CHECKPOINT_EVERY:
                    dt.create_checkpoint()
                    checkpointed[id(dt)] = dt.version()
            stats.batches += 1
            stats.simulated_to = reached
            stats.wall_s = time.perf_counter() - wall0
            if progress is not None:
                progress(stats)

        try:
            t, k, end_ts = t0, 0, end.timestamp()
            while t < end_ts:
                k += 1
                batch_end = min(t0 + k * batch_s, end_ts)
                if engine is not None:
                    while (due := engine.next_due()) is not None and due.timestamp() <= batch_end:
                        for m in models.values():
                            m.advance(due.timestamp())
                        _run(engine.on_clock(due))
                for m in models.values():
                    m.advance(batch_end)
                raw = _raw_batch(line_ids, order, session)
                rows, events[:] = events[:], []
                while len(inflight) >= 2:  # bounded: at most two batches waiting for the disk
                    inflight.pop(0).result()
                reached = _EPOCH + timedelta(microseconds=round(batch_end * 1e6))
                inflight.append(writer.submit(write, k, raw, rows, reached))
                t = batch_end
            for fut in inflight:
                fut.result()
        finally:
            writer.shutdown(wait=True)
        stats.truth = {
            line: LineTruth(m.processed, m.defective, {s.name: m.state_time(s) for s in S})
            for line, m in models.items()
        }
    finally:
        lock.release()
    compaction_started = time.perf_counter()
    if compact_tables:
        for table, dt in (("raw_samples", raw_dt), ("injected_events", events_dt)):
            if dt is None:
                continue
            compact(lake, table)
            dt.update_incremental()
            dt.create_checkpoint()
    stats.compaction_s = time.perf_counter() - compaction_started
    stats.wall_s = time.perf_counter() - wall0
    log.info(
        "seeded %s %s..%s: %d samples, %d injected events, %d commits in %.1f s (%.0fx real time per line)",
        ",".join(line_ids),
        start,
        end,
        stats.rows,
        stats.events,
        stats.commits,
        stats.wall_s,
        stats.sim_per_wall_per_line,
    )
    return stats


# ---------------------------------------------------------------------------------------- command line


def _parse_ts(text: str) -> datetime:
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m edge_collector.variability.history",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--lake",
        type=Path,
        default=Path(os.environ.get("TWIN_HOME", ".twin")) / "lake",
        help="lake root; edge tables go to <lake>/edge/... (default $TWIN_HOME/lake, ./.twin/lake)",
    )
    parser.add_argument("--lines", default="L1,L2", help="comma-separated line ids (profiles from plc/lines.toml)")
    parser.add_argument(
        "--start",
        type=_parse_ts,
        required=True,
        help="PLC start, ISO time; without offset UTC (e.g. 2026-11-02T05:00Z = 06:00 Berlin)",
    )
    span = parser.add_mutually_exclusive_group(required=True)
    span.add_argument("--end", type=_parse_ts, help="end of the seeded history (ISO time)")
    span.add_argument("--days", type=float, help="length of the seeded history in days")
    parser.add_argument("--seed", type=int, default=0, help="line model seed (default 0)")
    parser.add_argument(
        "--variability",
        type=Path,
        metavar="TOML",
        help="collector config whose [variability] drives faults, quality, feed rate and the other big losses "
        "(e.g. edge_collector/local.toml); default: none",
    )
    parser.add_argument("--lines-config", type=Path, help="line profiles file (default plc/lines.toml)")
    parser.add_argument("--batch-hours", type=float, default=1.0, help="simulated hours per Delta commit (default 1)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    end = args.end or args.start + timedelta(days=args.days)
    config, vseed = variability_from_toml(args.variability) if args.variability else (None, None)
    total = (end - args.start).total_seconds()

    def show(stats: SeedStats) -> None:
        print(
            f"\r{stats.simulated_s / total:6.1%} {stats.simulated_to:%Y-%m-%d %H:%M} UTC  {stats.rows:,} samples  "
            f"{stats.sim_per_wall_per_line:,.0f}x per line",
            end="",
            file=sys.stderr,
            flush=True,
        )

    try:
        stats = seed_history(
            args.lake,
            [s.strip() for s in args.lines.split(",") if s.strip()],
            args.start,
            end,
            args.seed,
            show,
            variability=config,
            variability_seed=vseed,
            lines_config=args.lines_config,
            batch_s=args.batch_hours * 3600,
        )
    except Exception as exc:  # noqa: BLE001 - one clear line instead of a trace
        print(f"\nseeding failed: {exc}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    print(
        f"session {stats.session_id}: {stats.rows:,} samples, {stats.events:,} injected events, {stats.commits} "
        f"commits ({stats.batches_skipped} batches already there) in {stats.wall_s:.1f} s, "
        f"{stats.sim_per_wall_per_line:,.0f}x real time per line"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
