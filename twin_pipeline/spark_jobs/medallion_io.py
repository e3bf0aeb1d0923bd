"""The Spark job's one table-IO layer, with two paths chosen by the extras' `table_io`:

- `delta-rs`, the *driver* path (local pyspark, Azurite, any Spark without the Delta jars): raw-zone objects
  listed and read from a local folder, or listed and downloaded with azure-storage-blob (`az://<container>
  [/<prefix>]`, credentials from the standard Azure environment); the edges' own Delta tables read as their
  active Parquet files; lake tables read and written by deltalake (delta-rs) on the driver, a range's shifts
  replaced in one commit per table (`predicate` overwrite), on local disk or an object store URI.
- `delta`, the *Spark-native* path (Databricks): `spark.read.parquet` of the raw zone on abfss, Delta
  `replaceWhere` writes, or Unity Catalog tables `<catalog>.<schema>.<table>` when catalog and schema
  are set. Its reads and writes are built as data (`native_read`, `native_write`) and only then applied, so a
  test checks them exactly without the Delta jars (which need Maven).

Imports only pyspark (deltalake, pyarrow and azure-storage-blob inside the functions that need them).
"""

from __future__ import annotations

import glob
import os
import tempfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F


class MissingInput(RuntimeError):
    """What the job reads is not where the extras say: a setting to fix, not a shift without data."""


def _join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def in_list(column: str, values: Sequence[str]) -> str:
    """A SQL `IN` predicate on a string column (shift ids: no quotes in them, checked)."""
    for value in values:
        if "'" in value:
            raise ValueError(f"{value!r} cannot be quoted in a predicate")
    return f"{column} IN ({', '.join(repr(str(v)) for v in values)})"


# ---------------------------------------------------------------- the Spark-native path, as data


def table_name(extras: dict[str, Any], table: str) -> str:
    """The Unity Catalog name of a lake table ("layer/name"): `<catalog>.<schema>.<name>` (the names are unique
    across layers; Power BI reads gold by the same names, `lib/integrations/powerbi_params.py`)."""
    return f"{extras['catalog']}.{extras['schema']}.{table.split('/')[-1]}"


def uses_catalog(extras: dict[str, Any]) -> bool:
    return bool(extras.get("catalog")) and bool(extras.get("schema"))


def native_read(extras: dict[str, Any], table: str, shift_ids: Sequence[str]) -> dict[str, Any]:
    """How Spark reads these shifts of a lake table: a Unity Catalog table, or the Delta folder under the lake."""
    where = in_list("shift_id", shift_ids)
    if uses_catalog(extras):
        return {"table": table_name(extras, table), "where": where}
    return {"format": "delta", "load": _join(extras["lake"], table), "where": where}


def native_write(extras: dict[str, Any], table: str, shift_ids: Sequence[str]) -> dict[str, Any]:
    """How Spark replaces these shifts of a lake table in one Delta commit (`replaceWhere`): into the Unity
    Catalog table (`saveAsTable`, created on first write) or the Delta folder under the lake (`save`)."""
    plan: dict[str, Any] = {
        "format": "delta",
        "mode": "overwrite",
        "options": {"replaceWhere": in_list("shift_id", shift_ids)},
        "partitionBy": ["shift_id"],
    }
    if uses_catalog(extras):
        return {**plan, "saveAsTable": table_name(extras, table)}
    return {**plan, "save": _join(extras["lake"], table)}


def native_raw(extras: dict[str, Any], table: str, shift_ids: Sequence[str]) -> dict[str, Any]:
    """How Spark reads a raw-zone table for these shifts: the dataset partitioned by shift_id and edge_id."""
    root = extras["source"]["root"]
    return {
        "parquet": _join(root, extras["contract"]["raw_prefix"], table),
        "where": in_list("shift_id", shift_ids),
        "options": {"basePath": _join(root, extras["contract"]["raw_prefix"], table)},
    }


def apply_read(spark: SparkSession, plan: dict[str, Any]) -> DataFrame:
    if "table" in plan:
        return spark.read.table(plan["table"]).where(plan["where"])
    if "parquet" in plan:
        return spark.read.options(**plan["options"]).parquet(plan["parquet"]).where(plan["where"])
    return spark.read.format(plan["format"]).load(plan["load"]).where(plan["where"])


def apply_write(frame: DataFrame, plan: dict[str, Any]) -> None:
    writer = frame.write.format(plan["format"]).mode(plan["mode"]).options(**plan["options"])
    writer = writer.partitionBy(*plan["partitionBy"])
    if "saveAsTable" in plan:
        writer.saveAsTable(plan["saveAsTable"])
    else:
        writer.save(plan["save"])


# ---------------------------------------------------------------- the raw zone and the edge tables


def _blob_container(uri: str) -> tuple[Any, str]:
    """`az://<container>[/<prefix>]` -> (a ContainerClient, the prefix), from the standard Azure environment:
    AZURE_STORAGE_ACCOUNT_NAME and AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN), and
    AZURITE_BLOB_STORAGE_URL with AZURE_STORAGE_USE_EMULATOR=true for the emulator."""
    from azure.storage.blob import ContainerClient

    container, _, prefix = uri.removeprefix("az://").partition("/")
    env = os.environ.get
    account = env("AZURE_STORAGE_ACCOUNT_NAME") or env("AZURE_STORAGE_ACCOUNT") or ""
    if (env("AZURE_STORAGE_USE_EMULATOR") or "").lower() == "true":
        url = f"{(env('AZURITE_BLOB_STORAGE_URL') or 'http://127.0.0.1:10000').rstrip('/')}/{account}"
    else:
        url = f"https://{account}.blob.core.windows.net"
    key = env("AZURE_STORAGE_ACCOUNT_KEY") or env("AZURE_STORAGE_KEY")
    credential: Any = {"account_name": account, "account_key": key} if key else env("AZURE_STORAGE_SAS_TOKEN")
    if credential is None:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return ContainerClient(url, container, credential=credential), prefix.strip("/")


def raw_objects(extras: dict[str, Any], table: str, shift_ids: Sequence[str], into: str) -> list[str]:
    """Local paths of the raw zone's objects of `table` for these shifts (every edge): the folder's own files,
    or the objects downloaded from Blob Storage into `into` under the same names."""
    root, prefix = extras["source"]["root"], extras["contract"]["raw_prefix"]
    if root.startswith("az://"):
        container, base = _blob_container(root)
        found = []
        for shift_id in shift_ids:
            head = "/".join(p for p in (base, prefix, table, f"shift_id={shift_id}") if p) + "/"
            for blob in container.list_blobs(name_starts_with=head):
                if not blob.name.endswith(".parquet"):
                    continue
                local = os.path.join(into, blob.name[len(base) :].lstrip("/"))
                os.makedirs(os.path.dirname(local), exist_ok=True)
                with open(local, "wb") as out:
                    container.download_blob(blob.name).readinto(out)
                found.append(local)
        return found
    if "://" in root:
        raise MissingInput(f"raw zone {root}: the driver path reads a folder or az://; use table_io=delta for {root}")
    return sorted(
        path
        for s in shift_ids
        for path in glob.glob(os.path.join(root, prefix, table, f"shift_id={s}", "*", "*.parquet"))
    )


def _with_edge(spark: SparkSession, paths: Sequence[str]) -> DataFrame | None:
    """The objects as one frame with `edge_id` from their path (`.../edge_id=<id>/part-0.parquet`)."""
    if not paths:
        return None
    by_edge: dict[str, list[str]] = {}
    for path in paths:
        edge = next(p.split("=", 1)[1] for p in path.split(os.sep) if p.startswith("edge_id="))
        by_edge.setdefault(edge, []).append(path)
    frames = [spark.read.parquet(*files).withColumn("edge_id", F.lit(edge)) for edge, files in sorted(by_edge.items())]
    out = frames[0]
    for frame in frames[1:]:
        out = out.unionByName(frame, allowMissingColumns=True)
    return out.drop("day", "shift_id")


def _edge_files(folder: str, table: str, days: Sequence[str] | None) -> list[str]:
    from deltalake import DeltaTable

    path = os.path.join(folder, "edge", table)
    if not os.path.isdir(os.path.join(path, "_delta_log")):
        return []
    delta = DeltaTable(path)
    return delta.file_uris(partition_filters=[("day", "in", list(days))] if days is not None else None)


def _days(start: datetime, end: datetime) -> list[str]:
    from datetime import UTC, timedelta

    day, out = start.astimezone(UTC).date(), []
    while day <= (end - timedelta(microseconds=1)).astimezone(UTC).date():
        out.append(day.isoformat())
        day += timedelta(days=1)
    return out


def read_samples(
    spark: SparkSession,
    extras: dict[str, Any],
    start: datetime,
    end: datetime,
    raw_shifts: Sequence[str],
    scratch: str,
    table: str = "raw_samples",
    time_column: str = "source_ts",
) -> DataFrame | None:
    """The rows of an edge table (`raw_samples`, or `quarantine` by `received_ts`) in [start, end) from every
    edge, with `edge_id`: from the raw zone's objects of `raw_shifts`, or from each edge's Delta table (its
    active files of those UTC days)."""
    source = extras["source"]
    if source["kind"] == "raw_zone":
        if extras["table_io"] == "delta":
            from pyspark.errors import AnalysisException

            try:
                frame: DataFrame | None = apply_read(spark, native_raw(extras, table, raw_shifts))
            except AnalysisException:  # nothing landed of that table yet
                return None
            frame = frame.drop("day", "shift_id") if frame is not None else None
        else:
            frame = _with_edge(spark, raw_objects(extras, table, raw_shifts, scratch))
    else:
        frames = []
        for edge, folder in sorted(source["edges"].items()):
            files = _edge_files(folder, table, _days(start, end))
            if files:
                frames.append(spark.read.parquet(*files).withColumn("edge_id", F.lit(edge)))
        frame = None
        for part in frames:
            frame = part if frame is None else frame.unionByName(part, allowMissingColumns=True)
        if frame is not None:
            frame = frame.drop("day")
    if frame is None:
        return None
    return frame.where((F.col(time_column) >= F.lit(start)) & (F.col(time_column) < F.lit(end)))


def read_gaps(
    spark: SparkSession, extras: dict[str, Any], raw_shifts: Sequence[str], scratch: str
) -> list[dict[str, Any]]:
    """The collectors' outage records with a PLC time (`source_ts_before` set), with `edge_id`, de-duplicated on
    the gap key (a gap spanning shifts is landed with each): few rows, collected to the driver as dicts."""
    source = extras["source"]
    frame: DataFrame | None
    if source["kind"] == "raw_zone":
        if extras["table_io"] == "delta":
            from pyspark.errors import AnalysisException

            try:
                frame = apply_read(spark, native_raw(extras, "gaps", raw_shifts)).drop("day", "shift_id")
            except AnalysisException:  # no outage landed
                return []
        else:
            frame = _with_edge(spark, raw_objects(extras, "gaps", raw_shifts, scratch))
    else:
        frame = None
        for edge, folder in sorted(source["edges"].items()):
            files = _edge_files(folder, "gaps", None)
            if files:
                part = spark.read.parquet(*files).withColumn("edge_id", F.lit(edge))
                frame = part if frame is None else frame.unionByName(part, allowMissingColumns=True)
    if frame is None:
        return []
    key = list(extras["contract"]["gap_key"])
    rows = (
        frame.where(F.col("source_ts_before").isNotNull())
        .dropDuplicates(key)
        .select(
            *key,
            "line_id",
            F.unix_micros("source_ts_before").alias("before_us"),
            F.unix_micros("source_ts_after").alias("after_us"),
        )
        .collect()
    )
    return [r.asDict() for r in rows]


def read_subscribers(spark: SparkSession, extras: dict[str, Any], scratch: str) -> set[tuple[str, str]]:
    """(edge_id, line_id) of every edge's subscriptions manifest as known at the range's end: the edges' whole
    `subscriptions` tables, or the objects landed with the range's last shift (the whole manifest at landing),
    as the polars path's `EdgeSource.manifest` reads it."""
    source = extras["source"]
    last = [extras["shifts"][-1]["shift_id"]]
    frame: DataFrame | None
    if source["kind"] == "raw_zone":
        if extras["table_io"] == "delta":
            from pyspark.errors import AnalysisException

            try:
                frame = apply_read(spark, native_raw(extras, "subscriptions", last))
            except AnalysisException:
                return set()
        else:
            frame = _with_edge(spark, raw_objects(extras, "subscriptions", last, scratch))
    else:
        frame = None
        for edge, folder in sorted(source["edges"].items()):
            files = _edge_files(folder, "subscriptions", None)
            if files:
                part = spark.read.parquet(*files).withColumn("edge_id", F.lit(edge))
                frame = part if frame is None else frame.unionByName(part, allowMissingColumns=True)
    if frame is None:
        return set()
    return {(r["edge_id"], r["line_id"]) for r in frame.select("edge_id", "line_id").distinct().collect()}


def check_source(extras: dict[str, Any]) -> None:
    """A source that does not exist is said before Spark takes its 10-30 s to start."""
    source = extras["source"]
    if source["kind"] == "edge_tables":
        missing = [
            f"{edge}: {folder}/edge/raw_samples"
            for edge, folder in sorted(source["edges"].items())
            if "://" not in folder and not os.path.isdir(os.path.join(folder, "edge", "raw_samples", "_delta_log"))
        ]
        if missing and len(missing) == len(source["edges"]):
            raise MissingInput(
                f"no edge table raw_samples at {'; '.join(missing)}: the job reads the edges' raw samples there "
                "(TWIN_EDGES), or the landed raw zone (docs/operations/databricks.md)"
            )
    elif "://" not in source["root"] and not os.path.isdir(
        os.path.join(source["root"], extras["contract"]["raw_prefix"])
    ):
        raise MissingInput(
            f"raw zone {source['root']} has no {extras['contract']['raw_prefix']}/ folder: land the shifts first, and "
            "on Databricks point the job at the landing container (docs/operations/databricks.md)"
        )


# ---------------------------------------------------------------- lake tables


def read_table(spark: SparkSession, extras: dict[str, Any], table: str, shift_ids: Sequence[str]) -> DataFrame | None:
    """These shifts of a lake table, or None when it has none (or does not exist yet)."""
    if extras["table_io"] == "delta":
        from pyspark.errors import AnalysisException

        try:
            frame = apply_read(spark, native_read(extras, table, shift_ids))
        except AnalysisException:
            return None
        return None if frame.isEmpty() else frame
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    try:
        delta = DeltaTable(_join(extras["lake"], table))
    except TableNotFoundError:
        return None
    data = delta.to_pyarrow_table(partitions=[("shift_id", "in", list(shift_ids))])
    if not data.num_rows:
        return None
    return spark.createDataFrame(data)


def write_table(frame: DataFrame, extras: dict[str, Any], table: str, shift_ids: Sequence[str]) -> int:
    """Replace these shifts of the table with `frame` in one commit; returns the rows written."""
    if extras["table_io"] == "delta":
        apply_write(frame, native_write(extras, table, shift_ids))
        return frame.count()
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake
    from deltalake.exceptions import TableNotFoundError

    empty = frame.limit(0).toArrow().schema
    schema = pa.schema(
        [
            pa.field(f.name, pa.timestamp("us", tz="UTC") if pa.types.is_timestamp(f.type) else f.type, nullable=True)
            for f in empty
        ]
    )
    written = 0

    def batches() -> Iterator[Any]:
        """A shift at a time through the driver (bounded memory), all of them in the one commit below."""
        nonlocal written
        for shift_id in shift_ids:
            part = frame.where(F.col("shift_id") == shift_id).toArrow().cast(schema)
            written += part.num_rows
            yield from part.to_batches()

    path = _join(extras["lake"], table)
    try:
        DeltaTable(path)
        exists = True
    except TableNotFoundError:
        exists = False
    data = pa.RecordBatchReader.from_batches(schema, batches())
    if exists:
        write_deltalake(
            path, data, mode="overwrite", partition_by=["shift_id"], predicate=in_list("shift_id", shift_ids)
        )
    else:
        write_deltalake(path, data, mode="append", partition_by=["shift_id"])
    return written


def scratch_dir() -> tempfile.TemporaryDirectory[str]:
    """Where downloaded raw objects wait for Spark to read them (removed when the job ends)."""
    return tempfile.TemporaryDirectory(prefix="twin-raw-")


def table_location(extras: dict[str, Any], table: str) -> str:
    """Where a lake table lives, as its materialization reports it: the Unity Catalog name or the lake path."""
    return (
        table_name(extras, table)
        if extras["table_io"] == "delta" and uses_catalog(extras)
        else _join(extras["lake"], table)
    )
