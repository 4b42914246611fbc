"""The ASGI view of the schema at ``/graphql``: queries, mutations, and subscriptions over
``graphql-transport-ws``; GraphiQL and introspection only in dev mode.

The request body is read as the CLI reads its input (``ledger.core.canonical.parse_json``:
UTF-8, no duplicate keys, nested at most 32 deep, integers within ±(2^53-1)); what the
transport refuses comes back as ``{"error": {"code", "message"}}`` with its status, like
every other route (api/errors.py). The body's size is bounded before it is read
(api/body.py)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.extensions import SchemaExtension
from strawberry.http.parse_content_type import parse_content_type
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL
from strawberry.types.graphql import OperationType

from api.auth import bearer_token, scope_viewer
from api.body import MAX_BODY
from api.errors import UnsupportedMediaType
from api.graphql.context import Context
from api.graphql.loaders import Loaders
from api.graphql.schema import make_schema
from api.settings import Settings
from ledger.core import canonical
from ledger.core.errors import MalformedInput
from ledger.log.sequencer import Ledger

# What strawberry's own refusals are, as codes.
_CODES = {400: "malformed", 404: "not_found", 405: "method_not_allowed", 415: "unsupported_media_type"}


# What a GET without a query (a browser, a curious curl) is told instead of "Not Found".
USAGE = (
    'this is the GraphQL endpoint: POST {"query": "…", "variables": {…}} as '
    "application/json (or GET ?query=…); the schema is schemas/schema.graphql in the "
    "Suyuan repository (introspection is off; `suyuan serve --dev` opens GraphiQL here)"
)


class MutationsOnPrimary(SchemaExtension):
    """Queries and subscriptions read through the context's ledger (the replicas' when
    SUYUAN_DB_READ is set); a mutation is given the primary's before it runs, so that it
    appends there and reads its own writes."""

    def __init__(self, primary: Ledger) -> None:
        self.primary = primary

    def on_execute(self) -> Iterator[None]:
        ctx = self.execution_context.context
        if (
            self.execution_context.operation_type is OperationType.MUTATION
            and isinstance(ctx, Context)
            and ctx.ledger is not self.primary
        ):
            ctx.ledger = self.primary
            ctx.loaders = Loaders(self.primary, ctx.viewer)
        yield


class LedgerGraphQL(GraphQL[Context, None]):
    def __init__(
        self,
        ledger: Ledger,
        settings: Settings,
        appended: Callable[[], None] | None = None,
        *,
        reader: Ledger | None = None,
    ) -> None:
        schema = make_schema(dev=settings.dev)
        if reader is not None and reader is not ledger:
            schema.extensions = (*schema.extensions, lambda: MutationsOnPrimary(ledger))
        super().__init__(
            schema,
            graphql_ide="graphiql" if settings.dev else None,
            subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        )
        self.ledger, self.settings, self.appended = ledger, settings, appended
        self.reader = reader or ledger

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket | Any
    ) -> Context:
        return Context(
            ledger=self.reader,
            settings=self.settings,
            viewer=scope_viewer(request.scope),
            token=bearer_token(request.headers.get("authorization")),
            appended=self.appended,
            over_http=isinstance(request, Request),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope=scope, receive=receive)
        if (
            request.method in ("GET", "HEAD")
            and not self.settings.dev
            and "query" not in request.query_params
        ):
            usage = JSONResponse({"error": {"code": "malformed", "message": USAGE}}, status_code=400)
            await usage(scope, receive, send)
            return
        try:
            response = await self.run(request)
        except HTTPException as e:
            response = JSONResponse(
                {"error": {"code": _CODES.get(e.status_code, "bad_request"), "message": e.reason}},
                status_code=e.status_code,
            )
        await response(scope, receive, send)

    async def parse_http_body(self, request: Any) -> Any:
        if request.method == "POST":
            media, _ = parse_content_type(request.content_type or "")
            if media != "application/json":
                raise UnsupportedMediaType(
                    f"a GraphQL request is POSTed as application/json, not {media or 'untyped'!r}; "
                    "or send a query in the URL with GET"
                )
        return await super().parse_http_body(request)

    def parse_json(self, data: str | bytes) -> Any:
        """A request's JSON (its body, or variables in the URL), refused as the CLI refuses
        its input; the refusal propagates to the app's error mapping (400)."""
        try:
            doc = canonical.parse_json(data, max_bytes=MAX_BODY)
        except MalformedInput as e:
            raise MalformedInput(f"the request's JSON is refused: {e.message}", code=e.code) from None
        if not isinstance(doc, (dict, list)):
            raise MalformedInput(
                'a GraphQL request is a JSON object: {"query", "variables", "operationName"}'
            )
        return doc

    def decode_json(self, data: str | bytes) -> object:
        # WebSocket messages: strawberry closes the socket on a JSONDecodeError (4400).
        try:
            return canonical.parse_json(data, max_bytes=MAX_BODY)
        except MalformedInput as e:
            raise json.JSONDecodeError(e.message, data if isinstance(data, str) else "", 0) from None


def graphql_app(
    ledger: Ledger,
    settings: Settings,
    appended: Callable[[], None] | None = None,
    *,
    reader: Ledger | None = None,
) -> LedgerGraphQL:
    """``appended`` is called after a ``submit`` that appended entries (the server asks its
    witnesses to cosign the new checkpoint). ``reader``, if given, answers queries and
    subscriptions; mutations always run on ``ledger``."""
    return LedgerGraphQL(ledger, settings, appended, reader=reader)
