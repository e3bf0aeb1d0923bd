"""Fault injection and synthetic history, kept apart from the production collector's modules.

`engine.py` (the variability engine: breakdowns, quality drift, feed-rate changes, written to the
PLC), `distributions.py` (its validated distributions), `plc_port.py` (its view of the PLC),
`engine_setup.py` (binds it to a running collector from the `[variability]` config) and
`history.py` (seeds days of edge data in-process with the same line models and engine).
"""
