"""Landing upload throughput to Azurite, per shift, against baselines measured in the same run.

Seeds `--shifts` shifts of L1+L2 in-process, then per shift: (a) the landing path (`land`: Parquet
bytes, existence check, block upload with per-block MD5, SHA-256 metadata, verification); (b) a
bare `upload_blob` of the same bytes (no checks) to the same Azurite; (c) writing the same bytes to
local disk with fsync. Also (d) a re-run of a landed shift (identical object: nothing uploaded).
Prints MB/s, rows/s and the ratios landing / bare and landing / disk. Azurite comes from
node_modules (`npm ci`, which `make test` runs).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from edge_collector.variability.history import seed_history
from tests.support.azurite import KEY, azurite
from twin_pipeline.defs.landing.assets import ORDER
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.lib.edge_source import LocalEdges
from twin_pipeline.lib.integrations.landing import blob_name, client_for, land, parquet_bytes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, default=3, help="shifts to seed and land (default 3)")
    args = parser.parse_args()
    start = datetime(2026, 11, 2, 5, tzinfo=UTC)  # 06:00 Berlin
    with tempfile.TemporaryDirectory() as tmp:
        lake = Path(tmp) / "lake"
        seed_history(lake, ["L1", "L2"], start, start + timedelta(hours=8 * args.shifts), seed=1)
        windows = [CALENDAR.shift_at(start + timedelta(hours=8 * i, minutes=1)) for i in range(args.shifts)]
        payloads = []
        for w in windows:
            frame = (
                LocalEdges({"edge": lake})
                .scan("raw_samples", "source_ts", w.start, w.end)
                .drop("edge_id")
                .collect()
                .sort(ORDER)
            )
            payloads.append((w.shift_id, frame.height, parquet_bytes(frame)))
        with azurite(Path(tmp)) as service:
            client = client_for(service.url(), {"account_name": "devstoreaccount1", "account_key": KEY})
            landing, bare = client.create_container("landing"), client.create_container("bare")
            t: dict[str, list[float]] = {"landing": [], "bare": [], "disk": [], "rerun": []}
            for shift_id, _, data in payloads:
                t0 = time.perf_counter()
                assert land(landing, blob_name(shift_id), data).uploaded
                t["landing"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                bare.get_blob_client(blob_name(shift_id)).upload_blob(data, overwrite=True)
                t["bare"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                with open(Path(tmp) / f"{shift_id}.parquet", "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                t["disk"].append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                assert not land(landing, blob_name(shift_id), data).uploaded
                t["rerun"].append(time.perf_counter() - t0)
    mb = statistics.median(len(d) for _, _, d in payloads) / 1e6
    rows = statistics.median(n for _, n, _ in payloads)
    m = {k: statistics.median(v) for k, v in t.items()}
    print(
        f"landing upload to Azurite: {args.shifts} shifts of L1+L2, median object {mb:.1f} MB ({rows:,.0f} rows, "
        f"Parquet zstd)"
    )
    for name, label in (
        ("landing", "a. land (checked, verified)"),
        ("bare", "b. bare upload_blob"),
        ("disk", "c. local file + fsync"),
        ("rerun", "d. re-run, identical object"),
    ):
        print(f"  {label:<32}{m[name]:>8.3f} s  {mb / m[name]:>8.1f} MB/s  {rows / m[name]:>12,.0f} rows/s")
    print(
        f"ratios: landing / bare {m['landing'] / m['bare']:.2f}x, landing / disk {m['landing'] / m['disk']:.1f}x, "
        f"re-run / landing {m['rerun'] / m['landing']:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
