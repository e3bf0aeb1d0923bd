"""The edge lake's Delta helpers, shared by the datalogger, the history seeder and the pipeline:
exactly-once durable appends (`delta`), the writer and maintenance locks (`lock`), compaction
and vacuum beside a running collector (`maintenance`)."""

from .delta import (
    LOG_RETENTION,
    append_once,
    fsync_commit,
    fsync_dir,
    fsync_file,
    last_checkpoint_version,
    open_or_create,
)
from .lock import LOCK_NAME, MAINTENANCE_LOCK_NAME, WriterLock, WriterLocked
from .maintenance import VacuumRefused, compact, vacuum

__all__ = [
    "LOCK_NAME",
    "LOG_RETENTION",
    "MAINTENANCE_LOCK_NAME",
    "VacuumRefused",
    "WriterLock",
    "WriterLocked",
    "append_once",
    "compact",
    "fsync_commit",
    "fsync_dir",
    "fsync_file",
    "last_checkpoint_version",
    "open_or_create",
    "vacuum",
]
