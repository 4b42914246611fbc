"""The ASGI view of the schema at ``/graphql``: queries, mutations, and subscriptions over
``graphql-transport-ws``; GraphiQL and introspection only in dev mode."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from api.auth import bearer_token, scope_viewer
from api.graphql.context import Context
from api.graphql.schema import make_schema
from api.settings import Settings
from ledger.log import Ledger


class LedgerGraphQL(GraphQL[Context, None]):
    def __init__(self, ledger: Ledger, settings: Settings,
                 appended: Callable[[], None] | None = None) -> None:
        super().__init__(make_schema(dev=settings.dev),
                         graphql_ide="graphiql" if settings.dev else None,
                         subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,))
        self.ledger, self.settings, self.appended = ledger, settings, appended

    async def get_context(self, request: Request | WebSocket, response: Response | WebSocket | Any
                          ) -> Context:
        return Context(ledger=self.ledger, settings=self.settings, viewer=scope_viewer(request.scope),
                       token=bearer_token(request.headers.get("authorization")),
                       appended=self.appended)


def graphql_app(ledger: Ledger, settings: Settings,
                appended: Callable[[], None] | None = None) -> LedgerGraphQL:
    """``appended`` is called after a ``submit`` that appended entries (the server asks its
    witnesses to cosign the new checkpoint)."""
    return LedgerGraphQL(ledger, settings, appended)
