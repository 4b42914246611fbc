"""A bound on request bodies, before they are read.

A body whose ``Content-Length`` is over ``MAX_BODY`` is answered 413 at once, unread; one
sent without a length (chunked) is read up to the bound and then answered 413. The bound
holds for every route: GraphQL (a submit of 1,000 envelopes is a few MB) and any other
that would read a body.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import RequestTooLarge, error_response
from ledger.core.errors import MalformedInput

MAX_BODY: Final = 8 * 1024 * 1024


def _too_large(length: int | None) -> RequestTooLarge:
    size = f"{length:,} bytes" if length is not None else "more"
    return RequestTooLarge(
        f"the request body is {size}, over the limit of {MAX_BODY:,} bytes; "
        "send less at once (a GraphQL submit of up to 1,000 envelopes fits)"
    )


class BodyLimit:
    """ASGI middleware: refuses a request body over ``max_bytes`` with 413."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():
                    await error_response(MalformedInput("Content-Length is a decimal number of bytes"))(
                        scope, receive, send
                    )
                    return
                length = int(value)
        if length is not None and length > self.max_bytes:
            await error_response(_too_large(length))(scope, receive, send)
            return
        seen = 0
        limit = self.max_bytes

        async def bounded() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # Raised into whoever reads the body; the app's error mapping answers 413.
                    raise _too_large(None)
            return message

        await self.app(scope, bounded, send)
