"""The collector's durable Delta datalogger (see `writer.py` for why it is shaped as it is).

Stages: `rows.py` (rows -> Arrow, quarantine rows), `spool.py` (durable batches on local disk),
`writer.py` (the Datalogger: buffer, flush, spool), `commits.py` (exactly-once Delta commits,
checkpoints, compaction), `preflight.py`
(refuses a filesystem without atomic commits), `reports.py` (counters and reports). Delta helpers
shared with the pipeline are `edge_collector.lake`; the two lock errors a datalogger's caller may
meet are re-exported here.
"""

from ..lake import VacuumRefused, WriterLocked
from .preflight import FilesystemUnsupported
from .reports import Acknowledged, DataloggerHooks, DataloggerStats, RecoveryReport
from .rows import Rejected, build_batch, quarantine_row
from .spool import SpoolFile, read_spool, scan_spool, write_spool
from .writer import Datalogger

__all__ = [
    "Acknowledged",
    "Datalogger",
    "DataloggerHooks",
    "DataloggerStats",
    "FilesystemUnsupported",
    "RecoveryReport",
    "Rejected",
    "SpoolFile",
    "VacuumRefused",
    "WriterLocked",
    "build_batch",
    "quarantine_row",
    "read_spool",
    "scan_spool",
    "write_spool",
]
