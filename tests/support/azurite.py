"""Azurite, Microsoft's Azure Storage emulator (npm `azurite`, installed by `make test` from
package-lock.json), started on a free loopback port for the tests and stopped after them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
BINARY = ROOT / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
#: The emulator's published, well-known development key (not a secret).
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass(frozen=True)
class Azurite:
    port: int

    def url(self, port: int | None = None) -> str:
        """The account URL (through `port`, e.g. a fault proxy, when given)."""
        return f"http://127.0.0.1:{port or self.port}/{ACCOUNT}"

    def lake_env(self) -> dict[str, str]:
        """What a lake on this emulator needs in the environment (deltalake and polars read these)."""
        return {
            "AZURE_STORAGE_ACCOUNT_URL": self.url(),
            "AZURE_STORAGE_ACCOUNT": ACCOUNT,
            "AZURE_STORAGE_KEY": KEY,
            "AZURE_STORAGE_USE_EMULATOR": "true",
            "AZURITE_BLOB_STORAGE_URL": f"http://127.0.0.1:{self.port}",
        }


@contextmanager
def azurite(workdir: Path) -> Iterator[Azurite]:
    if not BINARY.exists():
        raise RuntimeError(f"{BINARY} is missing: run `make test` (it runs `npm ci`) or `npm ci` in {ROOT}")
    port = free_port()
    log = (workdir / "azurite.log").open("w")
    process = subprocess.Popen(
        [
            str(BINARY),
            "--blobHost",
            "127.0.0.1",
            "--blobPort",
            str(port),
            "--location",
            str(workdir),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError as exc:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "azurite.log").read_text()[-2000:]
                    raise RuntimeError(f"Azurite did not start: {log}") from exc
                time.sleep(0.2)
        yield Azurite(port)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()
