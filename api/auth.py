"""Who is asking: ``Authorization: Bearer <token>`` (see ledger/core/tokens.py) to a Viewer.

No header: the public. A good token: its party, or a regulator when the party has that
role. Anything else (expired, forged, for another ledger, by a revoked key, malformed)
is answered 401 with the reason, on every route including GraphQL, before the request
reaches it; a WebSocket handshake is refused the same way.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Receive, Scope, Send

from ledger.core.errors import LedgerError, NotAuthentic
from ledger.core.private import PUBLIC, Viewer
from ledger.log.sequencer import Ledger

SCOPE_KEY = "suyuan.viewer"


def bearer_token(authorization: str | None) -> str | None:
    """The token of a well-formed ``Bearer <token>`` header value, else None."""
    if authorization is None:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def viewer_of(authorization: str | None, ledger: Ledger) -> Viewer:
    """The viewer an ``Authorization`` header value speaks for; raises NotAuthentic."""
    if authorization is None:
        return PUBLIC
    token = bearer_token(authorization)
    if token is None:
        raise NotAuthentic(
            "the Authorization header is `Bearer <token>`; make a token with "
            "`suyuan token --key NAME --signer ID`",
            code="token_malformed",
        )
    return ledger.viewer_for_token(token)


def scope_viewer(scope: Scope) -> Viewer:
    """The viewer BearerAuth put in this request's scope (the public if none)."""
    v = scope.get(SCOPE_KEY)
    return v if isinstance(v, Viewer) else PUBLIC


class BearerAuth:
    """ASGI middleware: puts the request's Viewer in its scope, or refuses it with 401."""

    def __init__(self, app: ASGIApp, ledger: Ledger) -> None:
        self.app, self.ledger = app, ledger

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", ()):
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        try:
            viewer = PUBLIC if header is None else await run_in_threadpool(viewer_of, header, self.ledger)
        except LedgerError as e:
            await _refuse(scope, receive, send, e)
            return
        scope[SCOPE_KEY] = viewer
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send, err: LedgerError) -> None:
    body = json.dumps({"error": err.as_dict()}, ensure_ascii=False).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"www-authenticate", f'Bearer error="invalid_token", error_description="{err.code}"'.encode()),
    ]
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 401, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    # WebSocket: answer the handshake with the same 401 where the server supports it
    # (ASGI "websocket.http.response"), else refuse it (the server answers 403).
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    if "websocket.http.response" in scope.get("extensions", {}):
        await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
    else:
        await send({"type": "websocket.close", "code": 4401, "reason": err.message[:120]})
