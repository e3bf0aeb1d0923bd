"""The fault proxy's own behaviour: blackhole/restore and added latency (used by R3), cut() (used by R6)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import free_port
from tests.support.fault_proxy import FaultProxy


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(65536):
            self.request.sendall(data)


@pytest.fixture
def echo_port() -> Iterator[int]:
    port = free_port()
    server = socketserver.ThreadingTCPServer(("127.0.0.1", port), _Echo)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield port
    server.shutdown()
    server.server_close()


def test_blackhole_discards_both_ways_without_closing_and_restore_forwards_again(echo_port: int) -> None:
    with FaultProxy(echo_port) as proxy, socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn:
        conn.sendall(b"a")
        assert conn.recv(10) == b"a"
        proxy.blackhole()
        conn.sendall(b"lost")
        conn.settimeout(0.5)
        with pytest.raises(socket.timeout):  # no data, and no EOF (recv would return b"") or reset
            conn.recv(10)
        assert proxy.blackholed_bytes == 4
        proxy.restore()
        conn.settimeout(5)
        conn.sendall(b"b")
        assert conn.recv(10) == b"b"  # the discarded bytes stay lost


def test_delay_adds_latency_per_chunk(echo_port: int) -> None:
    with (
        FaultProxy(echo_port, delay_s=0.2) as proxy,
        socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as conn,
    ):
        start = time.monotonic()
        conn.sendall(b"x")
        assert conn.recv(10) == b"x"
        assert time.monotonic() - start >= 0.4  # 0.2 s each way


def test_cut_resets_every_open_connection_and_new_ones_pass_again(echo_port: int) -> None:
    with FaultProxy(echo_port) as proxy:
        conns = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(2)]
        try:
            for conn in conns:
                conn.sendall(b"a")
                assert conn.recv(10) == b"a"
            assert proxy.connections == 2
            assert proxy.cut() == 2
            assert proxy.connections == 0 and proxy.cuts == 1
            for conn in conns:  # an RST, not an orderly FIN (recv would return b"")
                with pytest.raises(ConnectionResetError):
                    conn.recv(10)
        finally:
            for conn in conns:
                conn.close()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as again:
            again.sendall(b"c")
            assert again.recv(10) == b"c"
            assert proxy.cut() == 1 and proxy.cuts == 2
