"""Refusals made before an operation runs, beyond the limits of its shape (schema.py) and
its cost (cost.py)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from graphql import GraphQLError, StringValueNode, visit
from graphql.language import (
    ListTypeNode,
    NamedTypeNode,
    NonNullTypeNode,
    OperationDefinitionNode,
    TypeNode,
    Visitor,
)
from strawberry.extensions import SchemaExtension
from strawberry.types.graphql import OperationType

from api.graphql.context import Context


class SubscriptionsOverWebSocket(SchemaExtension):
    """A subscription sent as an HTTP request is refused: they stream over WebSocket."""

    def on_execute(self) -> Generator[None, None, None]:
        ctx = self.execution_context
        if (
            ctx.operation_type is OperationType.SUBSCRIPTION
            and isinstance(ctx.context, Context)
            and ctx.context.over_http
        ):
            raise GraphQLError(
                "subscriptions stream over WebSocket (graphql-transport-ws) at /graphql, not over HTTP",
                extensions={"code": "subscription_over_http"},
            )
        yield


def _nul_in(value: Any) -> bool:
    # Iterative: a variable may be nested as deep as the request's JSON allows.
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            if "\x00" in v:
                return True
        elif isinstance(v, dict):
            stack.extend(v.keys())
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
    return False


class _Literals(Visitor):
    found = False

    def enter_string_value(self, node: StringValueNode, *_: Any) -> None:
        if "\x00" in node.value:
            self.found = True


def _named(t: TypeNode) -> str:
    while isinstance(t, (NonNullTypeNode, ListTypeNode)):
        t = t.type
    return t.name.value if isinstance(t, NamedTypeNode) else ""


def _json_variables(document: Any) -> set[str]:
    """The variables declared as JSON: documents (envelopes, orders) that the ledger's own
    checks refuse with the path of a NUL inside them, one envelope at a time."""
    out: set[str] = set()
    for d in getattr(document, "definitions", ()):
        if isinstance(d, OperationDefinitionNode):
            out.update(
                v.variable.name.value for v in d.variable_definitions or () if _named(v.type) == "JSON"
            )
    return out


class NoNulInInputs(SchemaExtension):
    """Text with a NUL character (U+0000) is refused in any argument or variable: no
    identifier, name or filter holds one, and PostgreSQL cannot even compare with one.
    JSON documents passed as variables are left to the ledger's checks, which name the
    envelope and the path of the NUL (``ledger.log.admission``)."""

    def on_execute(self) -> Generator[None, None, None]:
        ctx = self.execution_context
        literals = _Literals()
        # A NUL can only come from an escape (the lexer refuses a raw one): most queries
        # have none, and are not walked.
        if ctx.graphql_document is not None and "\\u" in (ctx.query or ""):
            visit(ctx.graphql_document, literals)
        documents = _json_variables(ctx.graphql_document) if ctx.variables else set()
        variables = {k: v for k, v in (ctx.variables or {}).items() if k not in documents}
        if literals.found or _nul_in(variables):
            raise GraphQLError(
                "text in this request holds a NUL character (U+0000), which no "
                "code, id or name may; remove it",
                extensions={"code": "malformed"},
            )
        yield
