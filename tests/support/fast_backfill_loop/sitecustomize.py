"""Test-only: the Dagster daemon's backfill loop every TWIN_TEST_BACKFILL_LOOP_S seconds, not every 30.

Dagster hard-codes the pause between two iterations of its backfill loop
(`dagster._daemon.controller.DEFAULT_DAEMON_INTERVAL_SECONDS`, which `execute_backfill_iteration_loop`
reads each time it starts), so a backfill waits up to 30 s to be picked up and another 30 s to be marked
done once its runs have finished. The end-to-end tests start their Dagster processes with this folder on
PYTHONPATH (tests/support/dagster_dev.py): Python imports `sitecustomize` at start-up, and this one sets
the constant in the daemon. Only the waiting changes; the daemon does the same work (the asset daemon,
which reads the same constant, evaluates sensors by their own intervals). Without the variable it does
nothing.
"""

import os
import sys

# the daemon only (`dagster-daemon run`, or `python -m dagster._daemon run` under `dagster dev`): the other
# Dagster processes do not import the daemon's modules
DAEMON = "dagster._daemon" in sys.orig_argv or any(a.endswith("dagster-daemon") for a in sys.orig_argv)

if DAEMON and os.environ.get("TWIN_TEST_BACKFILL_LOOP_S"):
    from dagster._daemon import controller

    assert hasattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS"), "Dagster renamed the daemon interval"
    controller.DEFAULT_DAEMON_INTERVAL_SECONDS = float(os.environ["TWIN_TEST_BACKFILL_LOOP_S"])
