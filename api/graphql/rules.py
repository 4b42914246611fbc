"""Validation without the rules a document cannot break.

graphql-core validates a document by walking it once with every rule attached (35 here:
the specification's, strawberry's and our limits). Each attached rule costs its dispatch at
every node, about 15 µs a request on this project's 2-core machine even when it has
nothing to look at, and the three variable rules each walk the operation again for its
variables: about 1 ms for a one-field ``trace`` query, a third of that request.

Many rules can only report on syntax the document's text must spell out: variables are
written ``$name``, fragments ``...`` or ``fragment``, directives ``@name``, a type's name
only after ``$name:`` or in a fragment's type condition, an operation other than a query
after ``mutation`` or ``subscription``, and an introspection field is ``__schema`` or
``__type``. When that text is nowhere in the request, not even inside a string or a
comment, the document holds no such node and the rule has nothing it could refuse, so it
is left out. Where the text appears, for whatever reason, every rule runs as before.
``tests/test_graphql_rules.py`` holds the answers (errors, and their order) to what they
are with every rule, over documents written to break each rule and over generated ones.
"""

from __future__ import annotations

from collections.abc import Generator

from graphql.validation import (
    ASTValidationRule,
    DeferStreamDirectiveLabel,
    DeferStreamDirectiveOnRootField,
    DeferStreamDirectiveOnValidOperationsRule,
    FragmentsOnCompositeTypesRule,
    KnownDirectivesRule,
    KnownFragmentNamesRule,
    KnownOperationTypesRule,
    KnownTypeNamesRule,
    MaxIntrospectionDepthRule,
    NoFragmentCyclesRule,
    NoSchemaIntrospectionCustomRule,
    NoUndefinedVariablesRule,
    NoUnusedFragmentsRule,
    NoUnusedVariablesRule,
    PossibleFragmentSpreadsRule,
    SingleFieldSubscriptionsRule,
    StreamDirectiveOnListField,
    UniqueDirectivesPerLocationRule,
    UniqueFragmentNamesRule,
    UniqueVariableNamesRule,
    VariablesAreInputTypesRule,
    VariablesInAllowedPositionRule,
)
from strawberry.extensions import SchemaExtension

# (texts any of which the document must hold for a rule to have something to look at,
#  the rules that look only at that)
SYNTAX: tuple[tuple[tuple[str, ...], frozenset[type[ASTValidationRule]]], ...] = (
    (
        ("$",),  # a variable's definition or use
        frozenset(
            {
                NoUndefinedVariablesRule,
                NoUnusedVariablesRule,
                VariablesInAllowedPositionRule,
                UniqueVariableNamesRule,
                VariablesAreInputTypesRule,
            }
        ),
    ),
    (
        ("...", "fragment"),  # a spread, an inline fragment, a fragment's definition
        frozenset(
            {
                FragmentsOnCompositeTypesRule,
                UniqueFragmentNamesRule,
                KnownFragmentNamesRule,
                NoUnusedFragmentsRule,
                PossibleFragmentSpreadsRule,
                NoFragmentCyclesRule,
            }
        ),
    ),
    (
        ("@",),  # a directive
        frozenset(
            {
                KnownDirectivesRule,
                UniqueDirectivesPerLocationRule,
                DeferStreamDirectiveOnRootField,
                DeferStreamDirectiveOnValidOperationsRule,
                DeferStreamDirectiveLabel,
                StreamDirectiveOnListField,
            }
        ),
    ),
    (
        # a type's name: in a variable's definition, or a fragment's type condition
        ("$", "...", "fragment"),
        frozenset({KnownTypeNamesRule}),
    ),
    (
        ("mutation", "subscription"),  # an operation of another type than query
        frozenset({KnownOperationTypesRule}),
    ),
    (
        ("subscription",),
        frozenset({SingleFieldSubscriptionsRule}),
    ),
    (
        ("__schema", "__type"),  # an introspection field (``__typename`` holds ``__type``)
        frozenset({NoSchemaIntrospectionCustomRule, MaxIntrospectionDepthRule}),
    ),
)


def inapplicable(query: str) -> frozenset[type[ASTValidationRule]]:
    """The rules that cannot report anything on a document written as ``query``."""
    out: set[type[ASTValidationRule]] = set()
    for texts, rules in SYNTAX:
        if not any(t in query for t in texts):
            out |= rules
    return frozenset(out)


class OnlyApplicableRules(SchemaExtension):
    """Leaves out of a request's validation the rules its text shows it cannot break."""

    def on_validate(self) -> Generator[None, None, None]:
        ctx = self.execution_context
        if ctx.query is not None:
            skip = inapplicable(ctx.query)
            if skip:
                ctx.validation_rules = tuple(r for r in ctx.validation_rules if r not in skip)
        yield
