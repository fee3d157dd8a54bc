"""bench/latency_proxy.py, the benchmarks' stand-in for a real network: it adds the round trip and
passes a reset on, so that a client never waits out its read timeout for an answer that cannot come."""

from __future__ import annotations

import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import free_port

PROXY = Path(__file__).resolve().parent.parent / "bench" / "latency_proxy.py"
RTT_MS = 200


@pytest.fixture()
def upstream():
    """A server on 127.0.0.1 that echoes one message, or, if the message is b"reset", resets the connection."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            with conn:
                message = conn.recv(1024)
                if message == b"reset":
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
                else:
                    conn.sendall(message)
                    conn.recv(1024)  # until the client closes

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join(timeout=5)
    listener.close()


@pytest.fixture()
def proxy_port(upstream):
    port = free_port()
    process = subprocess.Popen([sys.executable, str(PROXY), str(port), str(upstream), str(RTT_MS)])
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert time.monotonic() < deadline and process.poll() is None, "the proxy did not start"
            time.sleep(0.05)
    yield port
    process.terminate()
    process.wait(timeout=10)


def test_an_exchange_takes_the_round_trip(proxy_port):
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as client:
        start = time.monotonic()
        client.sendall(b"ping")
        assert client.recv(1024) == b"ping"
        assert RTT_MS / 1000 <= time.monotonic() - start < RTT_MS / 1000 + 1


def test_a_reset_reaches_the_client_instead_of_a_hang(proxy_port):
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=5) as client:
        start = time.monotonic()
        client.sendall(b"reset")
        try:
            answer = client.recv(1024)
        except ConnectionResetError:
            answer = None
        except TimeoutError:
            pytest.fail("the client was left waiting: the proxy swallowed the server's reset")
        assert answer in (None, b"")
        assert time.monotonic() - start < 2
