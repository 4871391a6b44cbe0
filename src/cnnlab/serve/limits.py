"""The request body limit, enforced before a byte of the body is parsed.

A pure ASGI middleware: a declared ``Content-Length`` over the limit is refused without parsing; a
body sent without one (chunked) is counted as it arrives and refused as soon as it passes the limit,
so an endless upload can neither fill memory nor the disk (Starlette spools large multipart files to
disk). A client still sending when the 413 goes out would see a reset connection instead of the
answer, so the rest of a refused body is read and dropped, up to ``DRAIN_FACTOR`` times the limit;
beyond that the connection is closed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


DRAIN_FACTOR = 4


class _BodyTooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await json_error(send, 400, "the Content-Length header is not a number")
                return
            if int(declared) > self.max_bytes:
                if int(declared) <= DRAIN_FACTOR * self.max_bytes:
                    await drain(receive, int(declared))
                await json_error(send, 413, self.message())
                return
        received = 0
        too_large = started = body_complete = False

        async def counting_receive() -> Message:
            nonlocal received, too_large, body_complete
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_complete = not message.get("more_body", False)
                if received > self.max_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if not too_large:  # the app's answer to a body cut short is replaced by the 413
                started = True
                await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not too_large:
                raise
        if too_large and not started:
            if not body_complete:
                await drain(receive, DRAIN_FACTOR * self.max_bytes - received)
            await json_error(send, 413, self.message())

    def message(self) -> str:
        return f"request body larger than {self.max_bytes:,} bytes: send a smaller image"


async def drain(receive: Receive, budget: int) -> None:
    """Read and drop the rest of a request body that is not complete yet, at most ``budget`` bytes."""
    while budget > 0:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return  # the body is complete (or the client left): receiving more would wait for nothing
        budget -= len(message.get("body", b""))


async def json_error(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
