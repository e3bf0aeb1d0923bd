"""What every column of the edge tables (`schemas.py`) means, with its unit in brackets (the same
convention as twin_pipeline/lib/column_descriptions.py): Dagster shows them on the edge assets' pages.
"""

from __future__ import annotations

UTC = "[UTC, us]"

_SESSION = {
    "session_id": "Collector session that wrote the row (`seed-...` for seeded history) [id]",
    "seq": "Sequence number, strictly increasing per collector session and line [count]",
    "day": "UTC date of the row's event time, YYYY-MM-DD: the Delta partition [date]",
}
_LINE = "Production line, as named in the collector's configuration (e.g. L1) [id]"

RAW_SAMPLES = {
    "line_id": _LINE,
    "tag": "PackTags path as in plc/tagmap.toml, e.g. Status.StateCurrent, Admin.ProdProcessedCount [text]",
    "source_ts": f"When the PLC stamped the value (OPC UA SourceTimestamp) {UTC}",
    "server_ts": f"When the OPC UA server stamped the value (ServerTimestamp) {UTC}",
    "received_ts": f"When the collector received the data change {UTC}",
    "value": "The value as a number, in the tag's own unit (plc/tagmap.toml); booleans 0/1 [unit of the tag]",
    "value_text": "The value of a string tag; null for numeric tags [text]",
    "status_code": "OPC UA StatusCode; 0 = Good [code]",
    **_SESSION,
}

INJECTED_EVENTS = {
    "line_id": _LINE,
    "event_ts": f"Simulated PLC time of the injection {UTC}",
    "kind": "What was injected: fault_start, fault_end, quality_shift, feed_rate, ... [text]",
    "distribution": "Distribution the value was drawn from (weibull, exponential, lognormal, ...) [text]",
    "params": "The distribution's parameters, the value's unit and context, as JSON text [JSON]",
    "value": "The drawn value: time to failure for fault_start and repair time for fault_end [s]; for periodic "
    "kinds (quality_shift [mm], feed_rate, ...) the unit named in params [unit in params]",
    "fault_code": "Fault code requested of the PLC (Sim.FaultCode); null for other kinds [code]",
    "seed": "Random seed of the variability engine, to replay the draws [seed]",
    **_SESSION,
}

QUARANTINE = {
    "line_id": _LINE,
    "tag": "PackTags path of the rejected value, when known [text]",
    "node_id": "OPC UA node id the value came from [text]",
    "source_ts": f"SourceTimestamp of the value, when it had one {UTC}",
    "server_ts": f"ServerTimestamp of the value, when it had one {UTC}",
    "received_ts": f"When the collector received it {UTC}",
    "raw_value": "repr() of what arrived, truncated to 1,000 characters [text]",
    "variant_type": "OPC UA variant type of what arrived [text]",
    "status_code": "OPC UA StatusCode of what arrived [code]",
    "reason": "Why it was quarantined: non_finite, bad_status, type_changed, absurd_timestamp, ... "
    "(schemas.QUARANTINE_REASONS) [code]",
    "detail": "Human-readable detail of the reason [text]",
    **_SESSION,
}

GAPS = {
    "line_id": _LINE,
    "gap_start": f"Last moment data was known to flow (collector receive time) {UTC}",
    "gap_end": f"First moment data flowed again (or the collector stop) {UTC}",
    "reason": (
        "Why nothing arrived: disconnected, session_lost, subscription_stale, subscription_silent (no data and "
        "no keep-alive with the connection up), collector_down [code]"
    ),
    "source_ts_before": f"Last PLC source timestamp of the line before the gap {UTC}",
    "source_ts_after": f"First PLC source timestamp of the line after the gap {UTC}",
    **_SESSION,
}

SUBSCRIPTIONS = {
    "line_id": _LINE,
    "tag": "Tag path subscribed, e.g. Admin.ProdProcessedCount, or a custom node's name [text]",
    "node_id": "OPC UA node id subscribed, as configured [text]",
    "since_ts": f"Collector clock when this subscription took effect {UTC}",
    "status": "subscribed, missing or rejected (schemas.SUBSCRIPTION_STATUS) [code]",
    "detail": "Why a tag is missing or rejected (the server's status code) [text]",
    "sampling_interval_ms": "Revised sampling interval the server granted [ms]",
    **_SESSION,
}

#: Edge table name -> column -> description (the keys of `schemas.TABLES`).
DESCRIPTIONS: dict[str, dict[str, str]] = {
    "raw_samples": RAW_SAMPLES,
    "injected_events": INJECTED_EVENTS,
    "quarantine": QUARANTINE,
    "gaps": GAPS,
    "subscriptions": SUBSCRIPTIONS,
}
