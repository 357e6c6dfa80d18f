"""A database that cannot be reached answers 503 with one line, not a 500 with a traceback.

Pure ASGI and outermost, so that it also covers what runs before any route: access control looks
sessions and tokens up in the database. Only the errors of reaching the database (``OperationalError``:
refused, gone, closed mid-way, locked past the timeout; ``InterfaceError``) are a 503: any other
database error is a bug of ours and stays a 500. Once a response has started (a live stream) there is
no status left to change, and the error goes on up. The reason (which names the database's host and
name) is logged, never sent: the caller may not even be signed in yet.
"""

from __future__ import annotations

import json
import logging

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("gennaker.api")

RETRY_AFTER_SECONDS = 5
UNAVAILABLE = "the database is unavailable; try again"


class DatabaseUnavailable:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except (OperationalError, InterfaceError) as exc:
            if started:
                raise
            reason = " ".join(str(exc.orig).split()) or type(exc.orig).__name__  # one line
            log.warning("%s %s: the database is unavailable: %s", scope.get("method"), scope.get("path"), reason)
            body = json.dumps(
                {"error": "DatabaseUnavailable", "message": "the database is unavailable; try again"}
            ).encode()
            headers = [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(RETRY_AFTER_SECONDS).encode()),
            ]
            await send({"type": "http.response.start", "status": 503, "headers": headers})
            await send({"type": "http.response.body", "body": body})
