"""The collector's side of the subscriptions manifest: what the server answered, as `subscriptions` rows.

Why a module of its own: the collector learns each monitored item's status and revised sampling
interval from the CreateMonitoredItems answers (observed through `asyncua_compat`), at start and
whenever a reconnect has to recreate the subscription; this keeps those answers and turns them into
one manifest per (re)creation, and says once, clearly, which configured nodes the server lacks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from asyncua import ua

from .manifest import Entry, manifest_rows, status_of
from .normalize import NodeBinding

log = logging.getLogger("edge_collector")


class ManifestRecorder:
    """Keeps the server's answer per configured node and writes a manifest on demand."""

    def __init__(
        self, session_id: str, next_seq: Callable[[str], int], sink: Callable[[list[dict[str, Any]]], None]
    ) -> None:
        self.session_id = session_id
        self.next_seq = next_seq
        self.sink = sink
        self.configured: list[NodeBinding] = []
        self.answers: dict[str, tuple[int, float | None]] = {}  # node id string -> (status code, revised ms)
        self._reported: dict[str, str] = {}  # node id string -> status last logged
        self.manifests = 0

    def configure(self, bindings: Iterable[NodeBinding]) -> None:
        """The configured nodes whose data is stored (not the collector's own clock)."""
        self.configured = [b for b in bindings if b.store]

    def observe(
        self, requests: list[ua.MonitoredItemCreateRequest], results: list[ua.MonitoredItemCreateResult]
    ) -> None:
        """Hooked on every CreateMonitoredItems answer (see `asyncua_compat.observe_monitored_items`)."""
        for request, result in zip(requests, results):
            code = result.StatusCode.value if result.StatusCode is not None else 0
            revised = result.RevisedSamplingInterval if not code & 0x80000000 else None
            self.answers[request.ItemToMonitor.NodeId.to_string()] = (code, revised)

    def entries(self) -> list[Entry]:
        out = []
        for b in self.configured:
            code, revised = self.answers.get(b.node_id, (None, None))
            if code is None:
                out.append(Entry(b.line_id, b.tag, b.node_id, "rejected", "no answer from the server", None))
                continue
            status = status_of(code)
            detail = None if status == "subscribed" else f"{ua.StatusCode(code).name} (0x{code:08X})"
            out.append(Entry(b.line_id, b.tag, b.node_id, status, detail, revised))
        return out

    def write(self, since: datetime) -> list[Entry]:
        """One manifest (every configured node of every line, stamped `since`) to the sink; the nodes that
        became missing or rejected are logged once, one line per line and status, saying what to do."""
        entries = self.entries()
        news: dict[tuple[str, str], list[Entry]] = {}
        for e in entries:
            if e.status != "subscribed" and self._reported.get(e.node_id) != e.status:
                news.setdefault((e.line_id, e.status), []).append(e)
            self._reported[e.node_id] = e.status
        for (line_id, status), missing in news.items():
            log.error(
                "line %s: the server %s %d configured node(s): %s; they are recorded as %s in the subscriptions "
                "manifest and collection goes on without them (check the node ids or the tags in the configuration)",
                line_id,
                "does not have" if status == "missing" else "refused",
                len(missing),
                ", ".join(f"{e.tag} ({e.node_id}: {e.detail})" for e in missing),
                status,
                extra={"line_id": line_id, "status": status, "tags": [e.tag for e in missing]},
            )
        self.sink(manifest_rows(entries, since, self.session_id, self.next_seq))
        self.manifests += 1
        return entries
