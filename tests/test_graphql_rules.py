"""GraphQL validation leaves out only the rules a document's text shows it cannot break
(``api.graphql.rules``): every answer is the one all the rules give, errors and order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Generator
from typing import Any

import hypothesis_graphql
import pytest
from graphql import GraphQLError, parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from api.graphql import rules
from api.graphql.schema import make_schema, sdl

# Each breaks one of the rules that ``rules.SYNTAX`` may leave out (and some break more).
BREAKING = [
    # variables
    "query { trace(code: $c) { journey { seq } } }",
    "query Q($c: String!, $unused: Int) { trace(code: $c) { journey { seq } } }",
    "query Q($c: Int) { trace(code: $c) { journey { seq } } }",
    "query Q($c: String!, $c: String!) { trace(code: $c) { journey { seq } } }",
    "query Q($c: Trace) { viewer { party } }",
    # fragments
    "{ ...Missing }",
    "fragment F on Query { ...F } { ...F }",
    "fragment Unused on Query { viewer { party } } { viewer { party } }",
    "fragment A on Query { viewer { party } } fragment A on Query { viewer { party } } { ...A }",
    "{ ... on String { length } }",
    "{ ... on Trace { code } }",
    "fragment onString on String { length } { viewer { party } }",
    # directives
    '{ trace(code: "x") @nope { code } }',
    '{ trace(code: "x") @skip(if: false) @skip(if: true) { code } }',
    '{ trace(code: "x") @defer { code } }',
    '{ trace(code: "x") { journey @stream { seq } } }',
    # type names, operation types
    "query Q($c: Nope) { viewer { party } }",
    "fragment F on Nope { a } { ...F }",
    "{ ... on Nope { a } }",
    "subscription { a b }",
    "subscription S { checkpoints { size } viewer { party } }",
    "mutation { nope }",
    # introspection (refused outside dev)
    "{ __schema { types { name } } }",
    '{ __type(name: "Query") { name } }',
    "{ viewer { __typename } __schema { queryType { name } } }",
    # the syntax only inside strings and comments: every rule runs, nothing to report
    '{ trace(code: "$c ...F @nope __schema") { code } }',
    '# $c ...F @nope __type\n{ trace(code: "x") { code } }',
    # none of that syntax, and other faults
    "{ trace { code } }",
    "{ trace(code: 1) { code } }",
    "{ nothere }",
    '{ trace(code: "x") }',
]


class _Spy(SchemaExtension):
    seen: list[tuple[type, ...]] = []

    def on_validate(self) -> Generator[None, None, None]:
        yield
        _Spy.seen.append(self.execution_context.validation_rules)


def _schema(*, filtered: bool, spy: bool = False) -> Any:
    s = make_schema()
    exts = [e for e in s.extensions if filtered or e is not rules.OnlyApplicableRules]
    s.extensions = (*exts, _Spy) if spy else tuple(exts)
    return s


def _run(schema: Any, query: str) -> list[tuple[str, Any]]:
    logging.disable(logging.CRITICAL)
    try:
        result = asyncio.run(schema.execute(query))
    finally:
        logging.disable(logging.NOTSET)
    return [(e.message, e.locations) for e in result.errors or []]


def _full_rules() -> tuple[type, ...]:
    """The rules a request is validated with when none is left out."""
    _Spy.seen.clear()
    _run(_schema(filtered=False, spy=True), "{ nothere }")
    return _Spy.seen[-1]


FULL = _full_rules()


def _errors(query: str, rule_set: tuple[type, ...]) -> list[tuple[str, Any]]:
    try:
        doc = parse(query)
    except GraphQLError as e:
        return [("syntax", e.message)]
    return [(e.message, e.locations) for e in validate_document(make_schema()._schema, doc, rule_set)]


def _filtered(query: str) -> tuple[type, ...]:
    skip = rules.inapplicable(query)
    return tuple(r for r in FULL if r not in skip)


@pytest.mark.parametrize("query", BREAKING)
def test_a_request_gets_the_errors_every_rule_gives(query: str) -> None:
    full = _run(_schema(filtered=False), query)
    assert full, f"{query!r} should be refused"
    assert _run(_schema(filtered=True), query) == full


def test_each_left_out_rule_is_one_a_request_is_validated_with() -> None:
    # Else leaving it out would change nothing and this module would test nothing.
    for _, group in rules.SYNTAX:
        for rule in group:
            assert rule in FULL, rule.__name__


def test_a_plain_query_is_validated_without_the_rules_it_cannot_break() -> None:
    q = '{ trace(code: "https://id.gs1.org/01/09506000134352/21/1") { journey { seq } } }'
    _Spy.seen.clear()
    _run(_schema(filtered=True, spy=True), q)
    used = set(_Spy.seen[-1])
    for _, group in rules.SYNTAX:
        assert not used & group
    assert len(used) < len(FULL)
    # what it can break still runs: unknown fields, argument types, depth, aliases
    names = {r.__name__ for r in used}
    assert {"FieldsOnCorrectTypeRule", "ValuesOfCorrectTypeRule", "ScalarLeafsRule"} <= names
    assert {"DepthLimitValidator", "MaxAliasesValidator"} <= names


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("query($c: String!) { trace(code: $c) { code } }", rules.SYNTAX[0][1]),
        ("{ ...F } fragment F on Query { viewer { party } }", rules.SYNTAX[1][1]),
        ("{ ... on Query { viewer { party } } }", rules.SYNTAX[1][1]),
        ('{ trace(code: "x") @include(if: true) { code } }', rules.SYNTAX[2][1]),
        ("query($c: String!) { trace(code: $c) { code } }", rules.SYNTAX[3][1]),
        ("{ ... on Query { viewer { party } } }", rules.SYNTAX[3][1]),
        ("mutation { nope }", rules.SYNTAX[4][1]),
        ("subscription { a }", rules.SYNTAX[4][1]),
        ("subscription { a }", rules.SYNTAX[5][1]),
        ("{ __typename }", rules.SYNTAX[6][1]),
    ],
)
def test_where_the_syntax_is_written_its_rules_run(text: str, kept: frozenset[type]) -> None:
    assert not rules.inapplicable(text) & kept


_SDL = sdl()
# The JSON scalar as a literal string (what the generator needs a strategy for).
_SCALARS = {"JSON": st.text(max_size=8).map(hypothesis_graphql.nodes.String)}


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    query=st.one_of(
        hypothesis_graphql.queries(_SDL, custom_scalars=_SCALARS),
        hypothesis_graphql.queries(_SDL, custom_scalars=_SCALARS, mode=hypothesis_graphql.Mode.NEGATIVE),
    ),
    extra=st.sampled_from(
        [
            "",
            " $v",
            " ...F",
            " @skip(if: true)",
            " fragment F on Query { viewer { party } }",
            " fragment F on Nope { a }",
            " __schema",
            " subscription { a }",
            " mutation { a }",
        ]
    ),
)
def test_generated_documents_get_the_same_errors(query: Any, extra: str) -> None:
    text = (query.decode() if isinstance(query, bytes) else str(query)) + extra
    assert _errors(text, _filtered(text)) == _errors(text, FULL)
