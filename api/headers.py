"""Security headers on every HTTP response: ``X-Content-Type-Options: nosniff``,
``Referrer-Policy: no-referrer`` and the pages' strict ``Content-Security-Policy``
(api/pages.py), which on JSON, images and text forbids as much and costs nothing. The
regulator console (api/console) has its own stylesheet and posts its forms back here;
GraphiQL in dev mode, an app of scripts from a CDN, only may not be framed."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.console import CSP as CONSOLE_CSP
from api.pages import CSP

_ALWAYS = [(b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"no-referrer")]
STRICT = [*_ALWAYS, (b"content-security-policy", CSP.encode())]
IDE = [*_ALWAYS, (b"content-security-policy", b"frame-ancestors 'none'")]
# The regulator console: its own stylesheet, and forms that post back to this server.
CONSOLE = [*_ALWAYS, (b"content-security-policy", CONSOLE_CSP.encode())]


class SecurityHeaders:
    def __init__(self, app: ASGIApp, *, dev: bool = False) -> None:
        self.app, self.dev = app, dev

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        extra = (
            IDE
            if self.dev and path == "/graphql"
            else CONSOLE
            if path == "/console" or path.startswith("/console/")
            else STRICT
        )

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
