"""Free loopback ports for peers started by the tests."""

from __future__ import annotations

import socket

_given: set[int] = set()  # handed out already in this test process


def free_port() -> int:
    """A TCP port nobody holds now, never one this process handed out before: the kernel can
    offer a just-closed port again, and two peers of one daemon (its panel and its AudioSocket)
    once got the same one."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
        if port not in _given:
            _given.add(port)
            return port
