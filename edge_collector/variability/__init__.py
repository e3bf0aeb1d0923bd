"""Fault injection and synthetic history, kept apart from the production collector's modules.

`engine.py` (the variability engine: its config and the scheduler of the injections, written to the
PLC), its injectors `faults.py` (breakdowns), `periodic.py` (quality drift, feed rate) and `losses.py`
(episodes, start-up rejects) with what they share in `injection.py`, `distributions.py` (its validated
distributions), `plc_port.py` (its view of the PLC),
`engine_setup.py` (binds it to a running collector from the `[variability]` config) and
`history.py` (seeds days of edge data in-process with the same line models and engine).
"""
