"""Which tags a line is expected to deliver in a shift, and which of them it did not.

A real line exposes what its program declares, not the simulator's tag map: the expected tags come from
the collector's subscriptions manifest (edge `subscriptions`), the latest one in effect before the shift
ended. Only what OEE needs blocks gold (`OEE_REQUIRED_TAGS`); any other subscribed tag without a value is
a warning. Lakes written before the manifest existed fall back to the tag map's subscribed tags.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl

from edge_collector.manifest import expected_tags as manifest_tags
from plc.tagmap import TAGS
from twin_pipeline.lib.transforms.counters import COUNT_TAGS, DESIGN_SPEED_TAG
from twin_pipeline.lib.transforms.states import STATE_TAG

#: The tags ISO 22400 OEE is computed from: the state (time elements), both part counters and the design
#: speed (ideal cycle time). Without any of them a shift's OEE cannot be final.
OEE_REQUIRED_TAGS: tuple[str, ...] = (STATE_TAG, COUNT_TAGS["produced"], COUNT_TAGS["defective"], DESIGN_SPEED_TAG)


@dataclass(frozen=True)
class Expected:
    """A line's expected tags: `subscribed` ones deliver data; `absent` ones the server does not have
    (tag -> the manifest's status and detail)."""

    subscribed: frozenset[str]
    absent: dict[str, str]
    from_manifest: bool


def expected_tags(manifest: pl.DataFrame, line_ids: list[str], at: datetime) -> dict[str, Expected]:
    """Per line, its manifest in force at `at` (edge_collector.manifest's rule, the earliest one when none
    took effect before: `since_ts` is the collector's clock, `at` the PLC's): what it subscribed, and what
    the server did not have with the manifest's status and detail (the latest said)."""
    out: dict[str, Expected] = {}
    for line_id in line_ids:
        subscribed = manifest_tags(manifest, line_id, at)
        if subscribed is None:
            out[line_id] = Expected(frozenset(t.path for t in TAGS.subscribed_line_tags()), {}, from_manifest=False)
            continue
        absent = manifest_tags(manifest, line_id, at, statuses=("missing", "rejected")) or frozenset()
        rows = manifest.filter((pl.col("line_id") == line_id) & pl.col("tag").is_in(list(absent))).sort(
            "since_ts", "seq"
        )
        why = {
            r["tag"]: f"{r['status']}{': ' + r['detail'] if r['detail'] else ''}" for r in rows.iter_rows(named=True)
        }
        out[line_id] = Expected(subscribed, why, from_manifest=True)
    return out


@dataclass(frozen=True)
class MissingTag:
    line_id: str
    tag: str
    why: str

    def __str__(self) -> str:
        return f"{self.line_id}/{self.tag} ({self.why})"


def _known(samples: pl.DataFrame) -> set[tuple[str, str]]:
    """(line, tag) pairs with a Good or Uncertain value known by the shift's end (carried-in values count:
    an unchanged value is not sent again; a writable input stays UncertainInitialValue until written)."""
    not_bad = (pl.col("status_code") // (1 << 30)) != 2
    if not samples.height:
        return set()
    # lazy: only the two key columns of the kept rows are gathered, not every column of the shift
    return set(samples.lazy().filter(not_bad).select("line_id", "tag").unique().collect().iter_rows())


def missing_required(samples: pl.DataFrame, expected: dict[str, Expected]) -> list[MissingTag]:
    """OEE-required tags of each line without a known value, and why (what to do next)."""
    known, out = _known(samples), []
    for line_id, exp in sorted(expected.items()):
        for tag in OEE_REQUIRED_TAGS:
            if (line_id, tag) in known:
                continue
            if tag in exp.absent:
                why = f"{exp.absent[tag]}: the server does not serve it; map its node id in the collector config"
            elif exp.from_manifest and tag not in exp.subscribed:
                why = "not subscribed: add it to the collector config's tags or [[subscription.nodes]]"
            else:
                why = "subscribed, but no value known by the shift end"
            out.append(MissingTag(line_id, tag, why))
    return out


def missing_optional(samples: pl.DataFrame, expected: dict[str, Expected]) -> list[MissingTag]:
    """Subscribed tags beyond OEE's without a known value, and tags the server does not have."""
    known, out = _known(samples), []
    for line_id, exp in sorted(expected.items()):
        out += [
            MissingTag(line_id, tag, "subscribed, but no value known by the shift end")
            for tag in sorted(exp.subscribed - set(OEE_REQUIRED_TAGS))
            if (line_id, tag) not in known
        ]
        out += [
            MissingTag(line_id, tag, why)
            for tag, why in sorted(exp.absent.items())
            if tag not in OEE_REQUIRED_TAGS and (line_id, tag) not in known
        ]
    return out
