"""Landing throughput to Azurite against a bare `upload_blob` of the same bytes, measured in the same run.

Seeds `--shifts` shifts of two edges (two collectors: L1 on edge-a, L2 on edge-b) in-process, builds
every raw-zone object (5 edge tables x shifts x edges: the slice `raw_zone.belongs` gives, sorted,
Parquet), then, object by object, in the same Azurite:
  a. the upload path alone: `landing.land` (existence check, block upload with per-block MD5,
     SHA-256 metadata, verification) of the prepared bytes;
  b. the baseline: a bare `upload_blob(overwrite=True)` of the same bytes, no checks;
then the landing assets' whole work without Dagster (`raw_landing.land_slice`: read the slice from the
edge Delta table, Parquet, land; then the receipts recorded on each edge) into a fresh container (c),
and again (d: a re-run, every object identical, nothing uploaded). Prints MB/s and the ratios against (b).
Azurite comes from node_modules (`npm ci`, which `make test` runs).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from edge_collector.receipts import Receipt, record
from tests.support.azurite import KEY, azurite
from tests.support.edge_seed import seed_edge
from twin_pipeline.lib.calendar.shift_calendar import load_calendar
from twin_pipeline.lib.integrations.landing import client_for, land, parquet_bytes
from twin_pipeline.lib.integrations.raw_landing import land_slice, read_slice
from twin_pipeline.lib.raw_zone import TABLES, object_name

EDGES = {"edge-a": "L1", "edge-b": "L2"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, default=3, help="shifts to seed and land per edge (default 3)")
    args = parser.parse_args()
    calendar = load_calendar()
    start = datetime(2026, 11, 2, 5, tzinfo=UTC)  # 06:00 Berlin
    windows = [calendar.shift_at(start + timedelta(hours=8 * i, minutes=1)) for i in range(args.shifts)]
    with tempfile.TemporaryDirectory() as tmp:
        edges = {edge_id: Path(tmp) / edge_id for edge_id in EDGES}
        for i, (edge_id, line) in enumerate(EDGES.items()):
            seed_edge(edges[edge_id], [line], start, windows[-1].end, seed=i + 1)
        t0 = time.perf_counter()
        payloads = [
            (object_name(table, w.shift_id, edge_id), parquet_bytes(read_slice(folder, table, w)))
            for w in windows
            for edge_id, folder in edges.items()
            for table in TABLES
        ]
        prepare = time.perf_counter() - t0
        total = sum(len(data) for _, data in payloads)
        with azurite(Path(tmp)) as service:
            client = client_for(service.url(), {"account_name": "devstoreaccount1", "account_key": KEY})
            checked, bare, whole = (client.create_container(n) for n in ("checked", "bare", "whole"))
            t: dict[str, list[float]] = {"land": [], "bare": []}
            for name, data in payloads:  # interleaved, so both see the same emulator state
                t0 = time.perf_counter()
                assert land(checked, name, data).uploaded
                t["land"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare.get_blob_client(name).upload_blob(data, overwrite=True)
                t["bare"].append(time.perf_counter() - t0)
            runs = {}
            for label in ("first", "rerun"):
                t0 = time.perf_counter()
                receipts: dict[str, list[Receipt]] = defaultdict(list)
                uploaded = 0
                for w in windows:
                    for edge_id, folder in edges.items():
                        for table in TABLES:
                            done = land_slice(whole, folder, edge_id, table, w)
                            assert done.receipt is not None and done.landed is not None
                            receipts[edge_id].append(done.receipt)
                            uploaded += done.landed.uploaded
                for edge_id, items in receipts.items():
                    record(edges[edge_id], items)
                runs[label] = (time.perf_counter() - t0, uploaded)
    mb = total / 1e6
    land_s, bare_s = sum(t["land"]), sum(t["bare"])
    (first_s, first_up), (rerun_s, rerun_up) = runs["first"], runs["rerun"]
    assert first_up == len(payloads) and rerun_up == 0
    print(
        f"landing to Azurite: {args.shifts} shifts x {len(EDGES)} edges x {len(TABLES)} tables = {len(payloads)} "
        f"objects, {mb:.1f} MB (median object {statistics.median(len(d) for _, d in payloads) / 1e3:.0f} kB, "
        f"largest {max(len(d) for _, d in payloads) / 1e6:.1f} MB); slices read and serialized in {prepare:.2f} s"
    )
    rows = (
        ("b. bare upload_blob (baseline)", bare_s),
        ("a. land (checked, verified)", land_s),
        ("c. land_slice + receipts (whole)", first_s),
        ("d. re-run, all identical", rerun_s),
    )
    for label, seconds in rows:
        print(f"  {label:<36}{seconds:>8.3f} s  {mb / seconds:>8.1f} MB/s  {seconds / bare_s:>6.2f}x the bare upload")
    return 0


if __name__ == "__main__":
    sys.exit(main())
