"""The golden OEE vectors (tests/golden/oee_vectors.json) and their samples as bronze rows: the polars
definition, the Spark job and the dashboard are all held to them."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import polars as pl

from twin_pipeline.lib.contracts import BRONZE_SAMPLES

VECTORS: list[dict[str, Any]] = json.loads((Path(__file__).parents[1] / "golden" / "oee_vectors.json").read_text())[
    "vectors"
]


def bronze(vector: dict[str, Any]) -> pl.DataFrame:
    rows = []
    for i, s in enumerate(vector["samples"]):
        ts = datetime.fromisoformat(s["ts"].replace("Z", "+00:00"))
        rows.append(
            {
                "shift_id": vector["shift_id"],
                "line_id": vector["line_id"],
                "tag": s["tag"],
                "source_ts": ts,
                "server_ts": ts,
                "received_ts": ts,
                "value": float(s["value"]),
                "value_text": None,
                "status_code": 0,
                "is_good": True,
                "session_id": "golden",
                "seq": i,
                "carried_in": s["carried_in"],
            }
        )
    return pl.DataFrame(rows, schema=BRONZE_SAMPLES)
