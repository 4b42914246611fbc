"""What a GraphQL operation would cost, estimated before it runs, and the limit on it.

Depth, aliases and tokens bound a document's shape, not what it asks for: five aliases
of ``parties { entries(first: 1000) { … } }`` are a short, shallow document that reads
every party's thousand entries five times. So each operation gets a cost before it
executes: every field selected costs 1, times the number of times it is resolved, which
a list multiplies:

- a field with a ``first`` or ``limit`` argument returns that many (its value, from a
  literal, a variable, or the schema's default); on a connection (an object with a list
  of ``edges``), the edges are that many and the connection itself is one;
- any other list returns ``LIST_SIZE`` (an estimate: most journeys, party lists and
  lineages are shorter, and a longer one still costs no more than its own read);
- every other field returns one.

An operation over ``MAX_COST`` is refused with code ``too_costly`` and nothing runs; a
subscription is estimated per event it sends.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Any, Final

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    VariableNode,
    get_named_type,
)
from strawberry.extensions import SchemaExtension

LIST_SIZE: Final = 20  # assumed length of a list no argument bounds
MAX_COST: Final = 25_000  # a full page of 1,000 entries with a dozen fields fits
SIZE_ARGUMENTS: Final = ("first", "limit")


def _is_list(t: Any) -> bool:
    while isinstance(t, GraphQLNonNull):
        t = t.of_type
    return isinstance(t, GraphQLList)


class _Estimate:
    def __init__(self, schema: GraphQLSchema, document: DocumentNode, variables: Mapping[str, Any]) -> None:
        self.schema, self.variables = schema, variables
        self.fragments = {
            d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)
        }

    def size(self, node: FieldNode, field: Any) -> int | None:
        """The count a ``first``/``limit`` argument asks for, if the field has one."""
        for name in SIZE_ARGUMENTS:
            arg = field.args.get(name)
            if arg is None:
                continue
            given = next((a.value for a in node.arguments or () if a.name.value == name), None)
            value: Any = arg.default_value
            if isinstance(given, IntValueNode):
                value = int(given.value)
            elif isinstance(given, VariableNode):
                value = self.variables.get(given.name.value, value)
            elif given is not None:
                value = None
            # Filters as input objects (findings' limit) are not arguments here: LIST_SIZE.
            return max(value, 0) if isinstance(value, int) and not isinstance(value, bool) else LIST_SIZE
        return None

    def cost(
        self,
        selections: SelectionSetNode | None,
        parent: Any,
        carried: int | None,
        seen: frozenset[str] = frozenset(),
    ) -> int:
        if selections is None or not isinstance(parent, GraphQLObjectType):
            return 0
        total = 0
        for sel in selections.selections:
            if isinstance(sel, FieldNode):
                field = parent.fields.get(sel.name.value)
                if field is None:  # __typename and introspection: one each
                    total += 1
                    continue
                asked = self.size(sel, field)
                if _is_list(field.type):
                    times = asked if asked is not None else (carried if carried is not None else LIST_SIZE)
                    passed = None
                else:
                    times, passed = 1, asked
                total += times * (1 + self.cost(sel.selection_set, get_named_type(field.type), passed, seen))
            elif isinstance(sel, InlineFragmentNode):
                cond = self.schema.get_type(sel.type_condition.name.value) if sel.type_condition else parent
                total += self.cost(sel.selection_set, cond, carried, seen)
            elif isinstance(sel, FragmentSpreadNode):
                name = sel.name.value
                frag = self.fragments.get(name)
                if frag is None or name in seen:  # validation refuses both
                    continue
                total += self.cost(
                    frag.selection_set,
                    self.schema.get_type(frag.type_condition.name.value),
                    carried,
                    seen | {name},
                )
        return total


def operation_cost(
    schema: GraphQLSchema,
    document: DocumentNode,
    *,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
) -> int:
    """The estimated cost of the operation a request runs (see the module's doc)."""
    ops = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    op = next(
        (o for o in ops if operation_name is None or (o.name is not None and o.name.value == operation_name)),
        None,
    )
    if op is None:
        return 0
    root = schema.get_root_type(op.operation)
    return _Estimate(schema, document, variables or {}).cost(op.selection_set, root, None)


class CostLimit(SchemaExtension):
    """Refuses, before execution, an operation whose estimated cost is over ``MAX_COST``."""

    def on_execute(self) -> Generator[None, None, None]:
        ctx = self.execution_context
        if ctx.graphql_document is not None:
            cost = operation_cost(
                ctx.schema._schema,
                ctx.graphql_document,
                operation_name=ctx.operation_name,
                variables=ctx.variables,
            )
            if cost > MAX_COST:
                # Raised here, before execution: strawberry answers it as the only error.
                raise GraphQLError(
                    f"this query would cost about {cost:,} (fields times the lengths of the "
                    f"lists they are in), more than the limit of {MAX_COST:,}; ask for fewer "
                    "fields, smaller pages (first) or fewer aliases, or split it",
                    extensions={"code": "too_costly", "cost": cost, "limit": MAX_COST},
                )
        yield
