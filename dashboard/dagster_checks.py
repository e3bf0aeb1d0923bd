"""Failed asset checks per shift, asked of the Dagster webserver's GraphQL API (the check results live
in Dagster's instance, not in the lake), and links to an asset's shift in the Dagster UI."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import polars as pl
import requests

CHECKS = """
{ assetNodes { assetKey { path } assetChecksOrError { ... on AssetChecks { checks { name } } } } }"""
EXECUTIONS = """
query Executions($key: AssetKeyInput!, $check: String!) {
  assetCheckExecutions(assetKey: $key, checkName: $check, limit: 500) {
    runId partition evaluation { success severity partition }
  }
}"""
FAILED = pl.Schema(
    {"shift_id": pl.String, "asset": pl.String, "check": pl.String, "severity": pl.String, "run_id": pl.String}
)


class DagsterUnreachable(RuntimeError):
    pass


def _ask(url: str, query: str, variables: dict[str, Any] | None = None, timeout: float = 3.0) -> dict[str, Any]:
    try:
        reply = requests.post(f"{url}/graphql", json={"query": query, "variables": variables or {}}, timeout=timeout)
        reply.raise_for_status()
        body = reply.json()
    except (requests.RequestException, ValueError) as exc:
        raise DagsterUnreachable(f"the Dagster UI at {url} did not answer ({exc.__class__.__name__})") from exc
    if body.get("errors"):
        raise DagsterUnreachable(f"the Dagster UI at {url} refused the query: {body['errors'][0].get('message')}")
    return body["data"]


def failed_checks(url: str, shift_ids: Sequence[str]) -> pl.DataFrame:
    """One row per failed check evaluation of these shifts (the latest kept per check and shift), across
    every asset with checks."""
    wanted = set(shift_ids)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for node in _ask(url, CHECKS)["assetNodes"]:
        checks = (node.get("assetChecksOrError") or {}).get("checks") or []
        path = node["assetKey"]["path"]
        for check in checks:
            executions = _ask(url, EXECUTIONS, {"key": {"path": path}, "check": check["name"]})["assetCheckExecutions"]
            for e in reversed(executions):  # oldest first: a later evaluation of the same shift replaces it
                evaluation = e.get("evaluation") or {}
                shift_id = evaluation.get("partition") or e.get("partition")
                if shift_id in wanted and evaluation:
                    key = ("/".join(path), check["name"], shift_id)
                    rows[key] = {
                        "shift_id": shift_id,
                        "asset": key[0],
                        "check": key[1],
                        "severity": evaluation.get("severity"),
                        "run_id": e["runId"],
                        "success": evaluation.get("success"),
                    }
    failed = [{k: v for k, v in r.items() if k != "success"} for r in rows.values() if r["success"] is False]
    return pl.DataFrame(failed, schema=FAILED).sort("shift_id", "asset", "check")


def asset_url(url: str, asset: str, shift_id: str | None = None) -> str:
    """The asset's page in the Dagster UI, at the shift's partition when given."""
    return f"{url}/assets/{asset}" + (f"?view=partitions&partition={shift_id}" if shift_id else "")
