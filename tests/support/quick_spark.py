"""The JVMs of the Spark tests (this process's session and every job process, which inherit the environment):
tuned for seconds of work on small frames, where starting up and compiling cost more than computing.

- SPARK_SUBMIT_OPTS (read by spark-submit): the client JIT alone and the serial collector halve the CPU of
  starting up (11-14 s instead of 22-28 s on 2 cores).
- PYSPARK_SUBMIT_ARGS (read by pyspark when it starts its JVM): expressions interpreted instead of compiled
  to Java by Janino for every stage (`spark.sql.codegen.factoryMode=NO_CODEGEN` is the switch Spark's own
  test suites use to run the interpreted path; Spark requires both paths to give the same results). A cold
  run of the golden vectors took 19.5 CPU s instead of 27 s, a warm one 10.6 instead of 14.4. The
  cluster (and `make run`'s spark engine) keeps Spark's defaults: this is the tests' environment only.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest

QUICK_JVM = "-XX:TieredStopAtLevel=1 -XX:CICompilerCount=2 -XX:+UseSerialGC"
INTERPRETED = "--conf spark.sql.codegen.wholeStage=false --conf spark.sql.codegen.factoryMode=NO_CODEGEN pyspark-shell"


@contextmanager
def quick_spark() -> Iterator[None]:
    """Every JVM started inside: QUICK_JVM and INTERPRETED (a JVM already running keeps its settings)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARK_SUBMIT_OPTS", QUICK_JVM)
        mp.setenv("PYSPARK_SUBMIT_ARGS", INTERPRETED)
        yield
