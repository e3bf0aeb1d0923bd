"""Pre-flight check of the lake and spool directories: refuse to start on a mount where Delta
commits would not be atomic or durable.

delta-rs commits a version on local disk by hard-linking a temp file to `_delta_log/<n>.json`
(a rename that never replaces). FUSE and network mounts (blobfuse, s3fs, goofys, SMB/Azure Files,
Databricks volumes) often lack hard links or fsync; there a commit fails late, or worse, two
writers both "win". We probe the target directory once at start-up, before any data is written,
and fail with an error that says what to do. The operations are injectable so a test can
simulate a mount without hard links (RELIABILITY.md D4).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..lake import fsync_dir


class FilesystemUnsupported(RuntimeError):
    """The directory's filesystem cannot give the collector atomic, durable commits."""


@dataclass(frozen=True)
class FsOps:
    """The filesystem calls the probe uses; replace one to simulate a limited mount."""

    link: Callable[[str, str], None] = os.link
    rename: Callable[[str, str], None] = os.rename
    fsync: Callable[[int], None] = os.fsync


DEFAULT_OPS = FsOps()

_ADVICE = (
    "put it on a local POSIX or NTFS disk (ext4, xfs, btrfs, NTFS), e.g. by setting collector.lake / "
    "collector.spool or TWIN_HOME; network and FUSE mounts (blobfuse, s3fs, goofys, SMB/Azure Files, "
    "Databricks volumes) are not supported"
)


def check_directory(directory: Path, *, need_link: bool = True, ops: FsOps = DEFAULT_OPS) -> None:
    """Probe `directory` (created if missing) for fsync, rename and, if `need_link`, no-replace hard links.

    Raises FilesystemUnsupported naming the failed operation and what to do."""
    directory.mkdir(parents=True, exist_ok=True)
    token = uuid.uuid4().hex[:12]
    probe = directory / f".preflight-{token}"
    linked = directory / f".preflight-{token}.link"
    renamed = directory / f".preflight-{token}.renamed"
    step = "create and fsync a file"
    try:
        with open(probe, "wb") as f:
            f.write(b"preflight")
            f.flush()
            ops.fsync(f.fileno())
        if need_link:
            step = "hard-link a file (os.link)"
            ops.link(str(probe), str(linked))
            step = "refuse to replace an existing name with a hard link"
            try:
                ops.link(str(probe), str(linked))
            except FileExistsError:
                pass
            else:
                raise FilesystemUnsupported(
                    f"{directory}: filesystem lacks atomic no-replace rename/hard link (os.link replaced an existing "
                    f"file); {_ADVICE}"
                )
            os.unlink(linked)
        step = "rename a file (os.rename)"
        ops.rename(str(probe), str(renamed))
        step = "fsync a directory"
        fsync_dir(directory, ops.fsync)
    except FilesystemUnsupported:
        raise
    except OSError as exc:
        what = "atomic no-replace rename/hard link" if "link" in step or "rename" in step else "durable writes (fsync)"
        raise FilesystemUnsupported(
            f"{directory}: filesystem lacks {what}: could not {step} ({exc}); the collector cannot commit Delta "
            f"versions safely here: {_ADVICE}"
        ) from exc
    finally:
        for leftover in (probe, linked, renamed):
            try:
                leftover.unlink()
            except OSError:
                pass


def check_lake_and_spool(lake_edge: Path, spool: Path, ops: FsOps = DEFAULT_OPS) -> None:
    """The edge tables need hard links (delta-rs commits); the spool needs rename + fsync only."""
    check_directory(lake_edge, need_link=True, ops=ops)
    check_directory(spool, need_link=False, ops=ops)
