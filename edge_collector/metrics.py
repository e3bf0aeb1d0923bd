"""Prometheus metrics, read from the running collector at scrape time (no double bookkeeping)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

PREFIX = "edge_collector"

#: name -> (kind, help). Values come from Collector.metrics_snapshot().
METRICS: dict[str, tuple[str, str]] = {
    "samples_received": ("counter", "Data change notifications received from the OPC UA server"),
    "samples_committed": ("counter", "raw_samples rows committed to Delta"),
    "rows_acknowledged": ("counter", "Rows made durable in the spool (acknowledged)"),
    "notifications_dropped": ("counter", "Notifications dropped because the client-side queue was full"),
    "rows_dropped": ("counter", "Rows dropped because the datalogger buffer was full"),
    "duplicates": ("counter", "Replayed notifications dropped as duplicates of stored (line, tag, source_ts)"),
    "quarantined_rows": ("counter", "Rows written to the quarantine table"),
    "reconnects": ("counter", "Reconnects to the OPC UA server"),
    "gaps": ("counter", "Gap records written"),
    "subscription_silences": (
        "counter",
        "Times the subscription delivered neither data nor keep-alive for 2 keep-alive periods with the connection up",
    ),
    "injections": ("counter", "Variability injections written to the PLC"),
    "buffer_depth": ("gauge", "Rows waiting in memory for the next Delta commit"),
    "commit_latency_p50_seconds": ("gauge", "Median sample-to-commit latency over recent commits"),
    "commit_latency_p99_seconds": ("gauge", "99th percentile commit latency over recent commits"),
    "connected": ("gauge", "1 while the OPC UA session is connected"),
    "cert_days_left": ("gauge", "Days until the collector's certificate expires"),
    "too_large_messages": (
        "counter",
        "Messages from the server larger than opcua.max_message_size/max_chunk_count (refused; each costs a reconnect)",
    ),
    "oversized_nodes": ("gauge", "Nodes no longer monitored because their value is larger than opcua.max_message_size"),
    "server_certificate_mismatch": ("counter", "Times the endpoint presented a certificate other than the pinned one"),
    "server_certificate_mismatch_active": (
        "gauge",
        "1 while the endpoint presents a certificate other than the pinned one (the collector does not connect)",
    ),
    "retention_days_pruned": ("counter", "UTC days of the edge tables pruned by retention (landed and verified)"),
    "retention_rows_pruned": ("counter", "Rows pruned by retention"),
    "retention_bytes_pruned": ("counter", "Bytes of Parquet files pruned by retention"),
    "retention_days_kept_unlanded": (
        "gauge",
        "Days older than retention_days kept at the last pruning because landing receipts do not wholly cover them",
    ),
    "landed_until_seconds": (
        "gauge",
        "Unix time up to which every edge table is landed and verified, without a hole (0: nothing landed)",
    ),
    "retention_last_run_seconds": ("gauge", "Unix time of the last retention pass (0: none yet)"),
    "asyncio_tasks": (
        "gauge",
        "Live asyncio tasks in the collector's loop (steady across reconnects unless a task leaks)",
    ),
}


class _SnapshotCollector:
    def __init__(self, snapshot: Callable[[], dict[str, Any]]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        snap = self._snapshot()
        for name, (kind, doc) in METRICS.items():
            if name not in snap:
                continue
            family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            yield family(f"{PREFIX}_{name}", doc, value=float(snap[name]))
        versions = GaugeMetricFamily(
            f"{PREFIX}_delta_version", "Last committed Delta version per edge table", labels=["table"]
        )
        for table, version in snap.get("delta_versions", {}).items():
            if version is not None:
                versions.add_metric([table], float(version))
        yield versions


def registry_for(snapshot: Callable[[], dict[str, Any]]) -> CollectorRegistry:
    """The collector's metrics plus the standard `process_*` ones (resident memory, open fds, CPU),
    so a slow leak shows on the dashboard, not only in a soak test."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(snapshot: Callable[[], dict[str, Any]], host: str, port: int) -> Any:
    """Start the /metrics HTTP endpoint (loopback by default); returns the server to shut down."""
    server, _thread = start_http_server(port, addr=host, registry=registry_for(snapshot))
    return server
