"""Test hook for the kill -9 chaos test (RELIABILITY.md D1): die at a named point of the commit path.

A kill from outside lands wherever the scheduler happens to be, so "killed mid-commit" would be
luck. With `EDGE_COLLECTOR_CRASH_AT=<stage>:<n>` in the environment the process SIGKILLs itself the
n-th time it reaches `<stage>` (n defaults to 1). Stages, in the order a commit passes them:
  commit-begin    the batch is spooled (acknowledged), nothing of it is in Delta yet
  commit-written  the Delta commit exists, not yet fsync'd, the spool file is still there
  commit-durable  the commit is fsync'd, the spool file not yet deleted
Unset (always, outside the chaos tests) it costs one environment lookup per commit.
"""

from __future__ import annotations

import os
import signal

ENV = "EDGE_COLLECTOR_CRASH_AT"
STAGES = ("commit-begin", "commit-written", "commit-durable")
_hits: dict[str, int] = {}


def crash_point(stage: str) -> None:
    """SIGKILL this process if `ENV` names `stage` and this is its n-th visit."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    name, _, nth = spec.partition(":")
    if name != stage:
        return
    _hits[stage] = _hits.get(stage, 0) + 1
    if _hits[stage] >= int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)
