"""The socket ``gennaker server`` binds itself (to report a taken port in one line) must be one that
asyncio treats as TCP: otherwise accepted connections keep Nagle's algorithm, and every keep-alive
response after the first waits ~40 ms for the client's delayed ACK (seen: 44 ms per /api/health)."""

from __future__ import annotations

import asyncio
import socket

from gennaker.cli.web import _listen


def test_accepted_connections_have_nagle_off() -> None:
    async def main() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def on_connect(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            sock = writer.get_extra_info("socket")
            accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            writer.close()

        server = await asyncio.start_server(on_connect, sock=_listen("127.0.0.1", 0))
        port = server.sockets[0].getsockname()[1]
        _r, w = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            w.close()
            server.close()

    assert asyncio.run(main()) != 0
