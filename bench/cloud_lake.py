"""The medallion per shift on an Azurite lake from the landed raw zone, against the local lake from the
edge's own tables, measured in the same run.

Seeds `--shifts` shifts of L1+L2 (with the local twin's variability) into an edge lake, lands every edge
table of every shift into Azurite's raw zone (`twin_pipeline/lib/raw_zone.py`), then builds bronze, silver
and gold shift by shift with the polars engine twice, alternating: (a) local lake, edge tables on disk (the
local profile); (b) lake `az://lake/twin` in Azurite, edge rows from the raw zone `az://landing` (the azure
profile). Each build is one Dagster run of the shift assets (no checks); the night before is built first,
untimed (warm-up). Prints seconds per shift and the
ratio (b) / (a), and checks that both lakes hold the same gold. Azurite comes from node_modules (`npm ci`).
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

import dagster as dg
import polars as pl

from edge_collector.variability.history import seed_history, variability_from_toml
from tests.support.azurite import KEY, azurite
from tests.support.raw_zone import land_in_container
from twin_pipeline.defs.bronze import assets as bronze_assets
from twin_pipeline.defs.gold import assets as gold_assets
from twin_pipeline.defs.gold import losses as gold_losses
from twin_pipeline.defs.gold import oee as gold_oee
from twin_pipeline.defs.partitions import CALENDAR
from twin_pipeline.defs.silver import assets as silver_assets
from twin_pipeline.lib.contracts import Table, table_path
from twin_pipeline.lib.lake_io import read_shifts
from twin_pipeline.lib.location import Location
from twin_pipeline.resources.lake import LakeResource

LOCAL_TOML = ROOT / "edge_collector" / "local.toml"


def shift_assets() -> list[dg.AssetsDefinition]:
    found = {
        id(a): a
        for m in (bronze_assets, silver_assets, gold_assets, gold_oee, gold_losses)
        for a in vars(m).values()
        if isinstance(a, dg.AssetsDefinition) and not isinstance(a, dg.AssetChecksDefinition) and a.partitions_def
    }
    return list(found.values())


def build(lake: LakeResource, shift_id: str) -> float:
    started = time.perf_counter()
    result = dg.materialize(shift_assets(), partition_key=shift_id, resources={"lake": lake})
    assert result.success
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shifts", type=int, default=3, help="shifts to seed, land and build (default 3)")
    args = parser.parse_args()
    start = datetime(2026, 11, 2, 4, tzinfo=UTC)  # an hour before the 06:00 Berlin shift: its state carries in
    shifts = [CALENDAR.shift_at(start + timedelta(hours=1 + 8 * i, minutes=1)) for i in range(args.shifts)]
    with tempfile.TemporaryDirectory() as tmp:
        edge = Path(tmp) / "edge"
        variability, vseed = variability_from_toml(LOCAL_TOML)
        seed_history(edge, ["L1", "L2"], start, shifts[-1].end + timedelta(minutes=30), seed=1, variability=variability,
                     variability_seed=vseed)  # fmt: skip
        with azurite(Path(tmp)) as service:
            os.environ.update(
                AZURE_STORAGE_ACCOUNT_URL=service.url(),
                AZURE_STORAGE_ACCOUNT="devstoreaccount1",
                AZURE_STORAGE_KEY=KEY,
                AZURE_STORAGE_USE_EMULATOR="true",
                AZURITE_BLOB_STORAGE_URL=f"http://127.0.0.1:{service.port}",
            )
            from azure.storage.blob import BlobServiceClient

            blobs = BlobServiceClient(
                service.url(), credential={"account_name": "devstoreaccount1", "account_key": KEY}
            )
            landing, _ = blobs.create_container("landing"), blobs.create_container("lake")
            night = CALENDAR.shift_at(start)
            objects = land_in_container(landing, {"edge-local": edge}, [night.shift_id, *(w.shift_id for w in shifts)])
            print(f"seeded and landed {len(shifts)} shifts of L1+L2 ({objects} raw-zone objects)", flush=True)
            local = LakeResource(root=str(Path(tmp) / "lake"), edges={"edge-local": str(edge)})
            cloud = LakeResource(root="az://lake/twin", raw_zone="az://landing")
            build(local, night.shift_id), build(cloud, night.shift_id)  # warm-up (imports, first opens): not timed
            seconds: dict[str, list[float]] = {"local": [], "azurite": []}
            for w in shifts:  # alternating, so load on the machine falls on both alike
                seconds["local"].append(build(local, w.shift_id))
                seconds["azurite"].append(build(cloud, w.shift_id))
                print(f"  {w.shift_id}: local {seconds['local'][-1]:.2f} s, azurite {seconds['azurite'][-1]:.2f} s")
            ids = [w.shift_id for w in shifts]
            gold = [
                read_shifts(table_path(Location.of(root), Table.OEE_SHIFT), ids).sort("shift_id", "line_id")
                for root in (local.root, cloud.root)
            ]
            same = gold[0].equals(gold[1])
    a, b = statistics.median(seconds["local"]), statistics.median(seconds["azurite"])
    print(f"medallion per shift (median of {len(shifts)}): local lake {a:.2f} s, Azurite lake {b:.2f} s")
    print(f"ratio Azurite / local: {b / a:.2f}x; gold equal on both lakes: {same}")
    print(f"OEE of the shifts: {pl.Series(gold[0]['oee']).round(4).to_list()}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
