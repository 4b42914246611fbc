"""Arbitrary JSON at every position of an envelope: anything but a refusal is a bug.

Hypothesis takes a well-formed envelope of each kind (every example event of schemas/ and
every GS1 fixture event among them), picks one position in it (the envelope itself, a
field, an item of a list, the body of an event at any depth) and puts an arbitrary JSON
value there, deletes it, or adds a sibling. What ``prepare``, the body rules, the door
rules and the event validator say must be a ``LedgerError``; appended through the ledger
(re-signed, so that only the content is wrong) and through ``suyuan submit``, it must land
or be refused as a whole, on SQLite and on PostgreSQL, and leave a ledger that audits.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core import registry
from ledger.core.errors import BatchRejected, LedgerError
from ledger.core.keys import PartyKey
from ledger.core.private import unwrap_envelopes
from ledger.core.statements import prepare, sign, sign_one
from ledger.epcis import bodies
from ledger.epcis.stages import classify
from ledger.log import admission
from ledger.log.audit import audit
from ledger.log.sequencer import event_facts
from tests.support import World, new_uscc

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "epcis"
KEY = PartyKey.from_seed("fuzz", bytes(32))
OTHER = PartyKey.from_seed("other", bytes([1]) * 32)
SIGNER = new_uscc()
ISSUED = "2026-11-27T13:05:00+08:00"


def _bodies() -> list[dict[str, Any]]:
    out = [json.loads(p.read_text(encoding="utf-8")) for p in sorted((SCHEMAS / "examples").glob("*.json"))]
    for path in sorted(FIXTURES.glob("*.jsonld")):
        body = json.loads(path.read_text(encoding="utf-8"))["epcisBody"]
        events = body.get("eventList") or body["queryResults"]["resultsBody"]["eventList"]
        out += events
    return out


BODIES = _bodies()


def _statements(signer: str, key: PartyKey) -> list[dict[str, Any]]:
    """One well-formed statement of every kind (events: every example and fixture)."""

    def st_(kind: str, body: dict[str, Any]) -> dict[str, Any]:
        return dict(sign_one(kind=kind, signer=signer, key=key, body=body, issued=ISSUED)["statement"])

    return [st_("event", b) for b in BODIES] + [
        st_(
            "party.register",
            {"id": signer, "name": "甲", "roles": ["producer"], "publicKey": key.public_key_b64},
        ),
        st_(
            "genesis",
            {
                "origin": "o",
                "logKey": "k",
                "registrar": {"id": signer, "name": "R", "publicKey": key.public_key_b64},
            },
        ),
        st_("party.key.rotate", {"publicKey": OTHER.public_key_b64}),
        st_("party.key.revoke", {"party": signer, "key": key.key_id}),
        st_("list.update", {"list": "negative", "action": "add", "party": signer, "reason": "r"}),
        st_("list.update", {"list": "positive", "action": "add", "hsCodes": ["190110"], "reason": "r"}),
        st_("credit.record", {"party": signer, "item": "i", "points": 3, "reason": "r"}),
        st_("attest", {"seq": 1, "entry": "ab" * 32}),
    ]


ENVELOPES = [sign(s, [(SIGNER, KEY), (new_uscc(), OTHER)]) for s in _statements(SIGNER, KEY)]


def _positions(value: Any, here: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield here
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _positions(v, (*here, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _positions(v, (*here, i))


POSITIONS = [(i, p) for i, e in enumerate(ENVELOPES) for p in _positions(e)]

# Values that matter here besides arbitrary ones: NUL, long and invisible text, times at the
# calendar's ends, identifiers the rules look for, a huge integer.
SPECIAL = st.sampled_from(
    [
        "\x00",
        "a\x00b",
        "urn:x:\x00",
        "\u202eACME",
        "\u200b",
        "x" * 301,
        "urn:x:" + "y" * 400,
        "9999-12-31T23:59:59-14:00",
        "0001-01-01T00:00:00+14:00",
        "9999-01-01T00:00:00Z",
        "event",
        "ADD",
        "DELETE",
        "urn:x:y",
        "cbec:order",
        "owning_party",
        "commissioning",
        "https://id.gs1.org/01/09506000134352/10/L1",
        "https://id.gs1.org/01/09506000134352/21/7",
        "<script>",
        "L" * 21,
        SIGNER,
        KEY.key_id,
        2**53 - 1,
        -1,
        0,
        1.5,
    ]
)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53) + 1, 2**53 - 1)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | st.text(max_size=24)
    | SPECIAL
)
KEYS = st.text(max_size=10) | st.sampled_from(
    [
        "type",
        "id",
        "epcClass",
        "bizTransaction",
        "quantity",
        "cbvmda:lotNumber",
        "name",
        "registrar",
        "statement",
        "signatures",
        "kind",
        "ilmd",
        "ex:x",
        "cbec:orderInfo",
        "\x00",
    ]
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=8,
)
OPS = st.sampled_from(["set", "delete", "add"])


def _damage(doc: Any, path: tuple[Any, ...], value: Any, op: str) -> Any:
    doc = copy.deepcopy(doc)
    if not path:
        return value
    target = doc
    for step in path[:-1]:
        target = target[step]
    if op == "set":
        target[path[-1]] = value
    elif op == "delete" and isinstance(target, dict):
        del target[path[-1]]
    elif isinstance(target, dict):
        target["ex:added"] = value
    else:
        target.append(value)
    return doc


def _check_all(env: Any) -> None:
    """Every check an envelope meets before the lock, as the append path runs them."""
    p = prepare(env)
    bodies.check_body(p)
    registry.embedded_keys(p)
    admission.admit(p, now=datetime.now(UTC))
    if p.kind == "event":
        event_facts(p.body)
        classify(p.body, signer_roles=("producer",))


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(POSITIONS), VALUES, OPS)
def test_prepare_and_every_check_before_the_lock_only_refuse(
    position: tuple[int, tuple[Any, ...]], value: Any, op: str
) -> None:
    index, path = position
    env = _damage(ENVELOPES[index], path, value, op)
    try:
        _check_all(env)
    except LedgerError:
        pass
    # The {envelope, private} form of the CLI and GraphQL reads the envelope first.
    unwrap_envelopes([{"envelope": env, "private": value}, env])


@settings(max_examples=600, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from([(i, p) for i, b in enumerate(BODIES) for p in _positions(b)]), VALUES, OPS)
def test_the_event_validator_only_refuses(position: tuple[int, tuple[Any, ...]], value: Any, op: str) -> None:
    index, path = position
    body = _damage(BODIES[index], path, value, op)
    try:
        event_facts(body)
    except LedgerError:
        return
    # What the validator lets through, the classification and projection rules can read.
    classify(body, signer_roles=("warehouse",))


# --- through the ledger and the CLI, on both databases ------------------------------------


@pytest.fixture
def signer(world: World) -> tuple[str, PartyKey]:
    return world.register([r for r in registry.ROLES if r != "registrar"])


def _resigned(
    statement: dict[str, Any], path: tuple[Any, ...], value: Any, op: str, signer: tuple[str, PartyKey]
) -> Any:
    """The statement damaged at ``path`` (under its body) and signed properly again."""
    st_ = copy.deepcopy(statement)
    st_["signer"], st_["key"] = signer[0], signer[1].key_id
    st_["body"] = _damage(st_["body"], path, value, op)
    try:
        return sign(st_, [(signer[0], signer[1])])
    except LedgerError:  # our own signer refuses to canonicalise it
        return {
            "statement": st_,
            "signatures": [{"signer": signer[0], "key": signer[1].key_id, "sig": "A" * 86 + "=="}],
        }


LEDGER_STATEMENTS = [
    s for s in _statements(SIGNER, KEY) if s["kind"] in ("event", "list.update", "credit.record")
]
BODY_POSITIONS = [(i, p) for i, s in enumerate(LEDGER_STATEMENTS) for p in _positions(s["body"])]


def test_appends_of_damaged_statements_land_or_are_refused(
    world: World, signer: tuple[str, PartyKey]
) -> None:
    outcomes = {"landed": 0, "refused": 0}

    @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from(BODY_POSITIONS), VALUES, OPS)
    def one(position: tuple[int, tuple[Any, ...]], value: Any, op: str) -> None:
        index, path = position
        env = _resigned(LEDGER_STATEMENTS[index], path, value, op, signer)
        size = world.ledger.size()
        try:
            world.ledger.append_batch([env])
        except BatchRejected:
            assert world.ledger.size() == size
            outcomes["refused"] += 1
        else:
            outcomes["landed"] += 1

    one()
    assert outcomes["refused"] and outcomes["landed"], outcomes
    assert audit(world.store).ok


def test_cli_submit_of_damaged_envelopes_lands_or_refuses(
    world: World,
    signer: tuple[str, PartyKey],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import tools.cli

    monkeypatch.setenv("SUYUAN_DB", world.url)
    monkeypatch.setenv("SUYUAN_HOME", str(world.home.path))
    opened: list[Any] = []
    real = tools.cli._ledger
    monkeypatch.setattr(tools.cli, "_ledger", lambda home: opened.append(real(home)) or opened[-1])
    statements = [dict(s, signer=signer[0], key=signer[1].key_id) for s in LEDGER_STATEMENTS]
    envs = [sign(s, [(signer[0], signer[1])]) for s in statements]

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.sampled_from([(i, p) for i, e in enumerate(envs) for p in _positions(e)]), VALUES, OPS)
    def one(position: tuple[int, tuple[Any, ...]], value: Any, op: str) -> None:
        index, path = position
        doc = _damage(envs[index], path, value, op)
        f = tmp_path / "in.json"
        try:
            f.write_text(json.dumps(doc, allow_nan=False), encoding="utf-8")
        except ValueError:
            return
        size = world.ledger.size()
        capsys.readouterr()
        try:
            rc = tools.cli.main(["submit", str(f)])
        finally:
            while opened:
                opened.pop().store.dispose()
        err = capsys.readouterr().err
        assert rc in (0, 2), err
        if rc == 2:
            assert err.startswith("error [") and "Traceback" not in err, err
            assert world.ledger.size() == size

    one()
    assert audit(world.store).ok
