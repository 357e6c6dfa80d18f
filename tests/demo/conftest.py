"""Fixtures of the demo tests."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest


@pytest.fixture
def port_8080_taken() -> Iterator[None]:
    """8080 in use, by this test or by whatever already listens there."""
    sock = socket.socket()
    try:
        sock.bind(("127.0.0.1", 8080))
        sock.listen(1)
    except OSError:
        pass  # someone else holds it: taken all the same
    try:
        yield
    finally:
        sock.close()
