"""Shift slices of the pipeline's Delta tables: the pruned read returns what a full Delta scan returns,
and re-running shifts keeps the log checkpointed."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
from deltalake import DeltaTable, write_deltalake

from edge_collector.lake import last_checkpoint_version
from twin_pipeline.lib.lake_io import CHECKPOINT_EVERY, read_shifts, replace_shifts, scan_shifts

SHIFTS = ["2026-11-24-0600", "2026-11-24-1400", "2026-11-24-2200"]
T0 = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)


def rows(shift_id: str, run: int, n: int = 5) -> pl.DataFrame:
    """`n` rows of one shift; `run` changes the values so that each re-run is visible."""
    return pl.DataFrame(
        {
            "shift_id": [shift_id] * n,
            "line_id": [f"L{i % 2 + 1}" for i in range(n)],
            "start": [T0 + timedelta(seconds=run * 100 + i) for i in range(n)],
            "duration_s": [float(run) + i / 3 for i in range(n)],
            "planned_break": [i % 3 == 0 for i in range(n)],
        },
        schema={
            "shift_id": pl.String,
            "line_id": pl.String,
            "start": pl.Datetime("us", "UTC"),
            "duration_s": pl.Float64,
            "planned_break": pl.Boolean,
        },
    )


def json_commits_since_checkpoint(path: Path) -> int:
    since = last_checkpoint_version(path)
    return sum(1 for f in (path / "_delta_log").glob("*.json") if int(f.stem) > since)


def test_d5_shift_reruns_keep_the_pipeline_table_checkpointed(tmp_path: Path) -> None:
    """D5 (pipeline tables): 3 shifts, then one shift re-run 40 times through `replace_shifts`, as a month of
    re-runs does to a gold table. Every re-run returns the version it committed, the table holds the last
    run of that shift and the untouched shifts' rows, a checkpoint exists, and fewer JSON commits than
    CHECKPOINT_EVERY follow it (delta-rs alone checkpoints every 100 commits)."""
    path = tmp_path / "fact"
    for shift_id in SHIFTS:
        replace_shifts(path, rows(shift_id, 0), [shift_id])
    for run in range(1, 41):
        version = replace_shifts(path, rows(SHIFTS[1], run), [SHIFTS[1]])
        assert version == DeltaTable(str(path)).version()
    table = pl.read_delta(str(path)).sort("shift_id", "start")
    expected = pl.concat([rows(SHIFTS[0], 0), rows(SHIFTS[1], 40), rows(SHIFTS[2], 0)]).sort("shift_id", "start")
    assert table.select(expected.columns).equals(expected)
    assert (path / "_delta_log" / "_last_checkpoint").exists()
    pending = json_commits_since_checkpoint(path)
    assert pending < CHECKPOINT_EVERY
    started = time.perf_counter()
    DeltaTable(str(path))
    open_s = time.perf_counter() - started
    assert open_s < 2.0
    print(
        f"D5 pipeline: {version + 1} commits, last checkpoint at version {last_checkpoint_version(path)}, "
        f"{pending} JSON commits after it (< {CHECKPOINT_EVERY}), open {1000 * open_s:.1f} ms"
    )


def test_the_pruned_shift_read_returns_what_a_full_delta_scan_returns(tmp_path: Path) -> None:
    """`scan_shifts` (only the shifts' Parquet files) against `pl.scan_delta` filtered on `shift_id`: the
    same columns, types, rows and row order for one shift, several, none, an unknown one, and a shift with
    two files (an append beside the overwrite); `read_shifts` with columns and a row filter returns the
    same as selecting and filtering the full scan."""
    path = tmp_path / "fact"
    for shift_id in SHIFTS:
        replace_shifts(path, rows(shift_id, 1), [shift_id])
    write_deltalake(str(path), rows(SHIFTS[2], 2).to_arrow(), mode="append")  # a second file in one partition
    cases = [[s] for s in SHIFTS] + [SHIFTS[:2], SHIFTS, ["2026-11-25-0600"], []]
    for ids in cases:
        full = pl.scan_delta(str(path)).filter(pl.col("shift_id").is_in(ids)).collect()
        pruned = scan_shifts(path, ids).collect()
        assert pruned.schema == full.schema, ids
        assert pruned.equals(full), ids
        assert pruned.height == 5 * sum({SHIFTS[2]: 2}.get(s, 1) for s in ids if s in SHIFTS)
    where = pl.col("planned_break")
    full = pl.scan_delta(str(path)).filter(pl.col("shift_id").is_in(SHIFTS) & where).select("line_id", "duration_s")
    assert read_shifts(path, SHIFTS, ["line_id", "duration_s"], where).equals(full.collect())
    print(f"pruned read equals scan_delta for {len(cases)} shift sets (schema, rows, order)")


def test_replace_writes_polars_files_in_one_delta_commit_and_falls_back_when_the_schema_grows(tmp_path: Path) -> None:
    """The fast path (`lib/delta_files.py`): replacing two shifts of three commits one version whose adds are
        the polars-written files (one per shift, with their row counts), the third shift's file untouched; a shift
        replaced by no rows is gone; a frame with a new column (a contract that grew) takes delta-rs' writer,
        which evolves the table, and the older shifts read the new column as null. A new table is created empty
    and written the same way."""
    path = tmp_path / "fact"
    first = replace_shifts(path, pl.concat([rows(s, 0) for s in SHIFTS]), SHIFTS)  # created empty, then written
    assert first == 1 and "predicate" not in DeltaTable(str(path)).history(1)[0]["operationParameters"]
    kept = {a for a in DeltaTable(str(path)).file_uris() if SHIFTS[2] in a}
    version = replace_shifts(path, pl.concat([rows(SHIFTS[0], 1, n=7), rows(SHIFTS[1], 1)]), SHIFTS[:2])
    table = DeltaTable(str(path))
    assert version == table.version() == 2
    assert "predicate" not in table.history(1)[0]["operationParameters"]  # not delta-rs' predicate overwrite
    adds = pl.DataFrame(table.get_add_actions(flatten=True)).to_dict(as_series=False)
    counts = dict(zip(adds["partition.shift_id"], adds["num_records"], strict=True))
    assert counts == {SHIFTS[0]: 7, SHIFTS[1]: 5, SHIFTS[2]: 5}
    assert {a for a in table.file_uris() if SHIFTS[2] in a} == kept
    expected = pl.concat([rows(SHIFTS[0], 1, n=7), rows(SHIFTS[1], 1), rows(SHIFTS[2], 0)])
    assert read_shifts(path, SHIFTS).sort("shift_id", "start").equals(expected.sort("shift_id", "start"))

    replace_shifts(path, rows(SHIFTS[1], 2).clear(), [SHIFTS[1]])  # the shift had no rows this time
    assert set(pl.read_delta(str(path))["shift_id"].unique().to_list()) == {SHIFTS[0], SHIFTS[2]}

    grown = rows(SHIFTS[2], 3).with_columns(pl.lit(1.5).alias("new_column"))
    replace_shifts(path, grown, [SHIFTS[2]])
    after = pl.read_delta(str(path))
    assert "predicate" in DeltaTable(str(path)).history(1)[0]["operationParameters"]  # delta-rs' writer
    assert after.filter(pl.col("shift_id") == SHIFTS[2])["new_column"].to_list() == [1.5] * 5
    assert after.filter(pl.col("shift_id") == SHIFTS[0])["new_column"].null_count() == 7
