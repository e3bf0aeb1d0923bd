"""The edge lake's lock files: one writer per edge lake, and one compaction at a time.

`LOCK_NAME` is held by a running datalogger (and the history seeder, and `twin up` checks it), so a
second collector on the same lake, or a full vacuum beside a writer, is refused instead of racing.
`MAINTENANCE_LOCK_NAME` serialises compactions: delta-rs 1.6.6 lets two concurrent compactions of
the same files both commit, which duplicates every row they rewrote.
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

try:  # POSIX advisory locks; on Windows the single-writer rule is not enforced
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]  # a module or None: the lock is skipped without it

LOCK_NAME = ".datalogger.lock"
MAINTENANCE_LOCK_NAME = ".maintenance.lock"


class WriterLocked(RuntimeError):
    """Another process (a second collector, or a full vacuum) holds the edge tables' writer lock."""


class WriterLock:
    """An exclusive advisory lock file: one writer per edge lake, and no full vacuum while it writes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, what: str, wait_s: float = 0.0) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait_s
        while fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    os.close(fd)
                    raise
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise WriterLocked(
                        f"{self.path} is locked by another process ({what} refused): stop the "
                        "other collector or the running vacuum first, or wait for it"
                    ) from exc
                time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            if fcntl is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        return self._fd is not None
