"""Delta maintenance of the local lake: compaction and vacuum, table by table.

Why: the collector appends small batches all day (many small files: every read and append pays for
them), and every re-run of a shift leaves the files it replaced behind (disk fills up). Compaction
rewrites a partition's small files into larger ones in one commit (same rows, new version); vacuum
deletes files that no version within the table's retention (`delta.deletedFileRetentionDuration`,
7 days by default) still needs, so a reader of a recent version never loses a file. Never a full
vacuum: it can delete a file a running writer is about to commit (delta-rs #3645).

Edge tables go through `edge_collector.lake.compact` / `vacuum`: compaction takes the
collector's maintenance lock (two concurrent compactions would both commit and duplicate rows,
delta-rs 1.6), so it is safe beside a running collector (RELIABILITY.md D3). The pipeline's own
tables (bronze/silver/gold) have no other writer in the `delta_local` pool; a shift run committing
at the same moment makes the compaction's commit fail (never duplicate rows), and it is retried on
a fresh snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from deltalake import DeltaTable
from deltalake.exceptions import CommitFailedError, TableNotFoundError

from edge_collector.lake import compact as compact_edge
from edge_collector.lake import vacuum as vacuum_edge
from edge_collector.schemas import TABLES as EDGE_SCHEMAS
from edge_collector.schemas import edge_table_path
from twin_pipeline.lib.contracts import TABLES as LAKE_SCHEMAS
from twin_pipeline.lib.lake_io import open_table
from twin_pipeline.lib.location import Location, delta_options

#: What the maintenance assets maintain: every edge table, and every table of the pipeline's contract.
EDGE_TABLES = tuple(EDGE_SCHEMAS)
LAKE_TABLES = tuple(LAKE_SCHEMAS)

#: Attempts of a lake table's compaction or vacuum that lost a race with a shift run's commit.
COMMIT_ATTEMPTS = 3


@dataclass(frozen=True)
class Maintained:
    table: str  # "edge/raw_samples", "bronze/samples", ...
    version: int  # after maintenance
    files_before: int
    files_after: int
    files_compacted: int  # small files rewritten (numFilesRemoved of the compaction)
    files_vacuumed: int  # unreferenced files deleted from disk

    def line(self) -> str:
        return (
            f"{self.table}: {self.files_before} -> {self.files_after} files ({self.files_compacted} compacted), "
            f"{self.files_vacuumed} vacuumed, version {self.version}"
        )


def _files(path: Path | Location) -> int:
    return len(DeltaTable(str(path), **delta_options(Location.of(path))).file_uris())


def _retried(step: Callable[[], Any]) -> Any:
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            return step()
        except CommitFailedError:  # a shift run committed meanwhile: redo on a fresh snapshot
            if attempt == COMMIT_ATTEMPTS:
                raise


def maintain_edge(lake: Path, table: str, lock_wait_s: float = 300.0) -> Maintained | None:
    """Compact and vacuum one edge table beside a running collector; None if the table does not exist yet."""
    path = edge_table_path(lake, table)
    try:
        before = _files(path)
    except TableNotFoundError:
        return None
    compacted = compact_edge(lake, table, wait_s=lock_wait_s)
    vacuumed = vacuum_edge(lake, table, dry_run=False)
    return Maintained(
        f"edge/{table}",
        DeltaTable(str(path)).version(),
        before,
        _files(path),
        int(compacted.get("numFilesRemoved", 0)),
        len(vacuumed),
    )


def maintain_lake_table(lake: Location | Path, table: str) -> Maintained | None:
    """Compact and vacuum one bronze/silver/gold table ("layer/name"); None if it does not exist yet."""
    path = Location.of(lake) / table
    try:
        before = _files(path)
    except TableNotFoundError:
        return None
    compacted = _retried(lambda: open_table(path).optimize.compact())
    vacuumed = _retried(lambda: open_table(path).vacuum(dry_run=False))
    return Maintained(
        table,
        open_table(path).version(),
        before,
        _files(path),
        int(compacted.get("numFilesRemoved", 0)),
        len(vacuumed),
    )
