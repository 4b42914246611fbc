"""Bad input at the door, on SQLite and PostgreSQL: each is a refusal naming the envelope
and the field, through the CLI (exit 2, ``error [code]: …``) and GraphQL (the code), never
a traceback or "Unexpected error", and the ledger is unchanged after it.

- shapes that crashed: ``statement.kind`` a list or object, ``statement`` a list (also in
  an ``{envelope, private}`` item), ``signatures`` an object;
- U+0000 anywhere in a statement (PostgreSQL text cannot hold it);
- identifiers longer than an index row holds (a 27 KB ``bizTransaction``);
- ``issued`` far in the future; lot numbers outside GS1 AI 10; party names that are not
  one line of visible text.
"""

from __future__ import annotations

import copy
import json
import random
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core import registry
from ledger.core.errors import BatchRejected, LedgerError
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log.home import genesis_envelope
from ledger.store.db import Store
from tests.support import ORIGIN, World, new_uscc
from tests.test_auth import Api
from tools.cli import main

Env = dict[str, Any]
ALL_ROLES = [r for r in registry.ROLES if r != "registrar"]


@pytest.fixture
def party(world: World) -> tuple[str, PartyKey]:
    return world.register(ALL_ROLES)


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    a = Api(create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example")))
    yield a
    a.app.state.store.dispose()


@pytest.fixture
def submit(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> Callable[[Any], tuple[int, str, str]]:
    """``suyuan submit FILE`` in this process: (exit code, stdout, stderr). The command
    leaves its store to the process's exit; here each one is disposed of after it."""
    import tools.cli

    monkeypatch.setenv("SUYUAN_DB", world.url)
    monkeypatch.setenv("SUYUAN_HOME", str(world.home.path))
    opened = []
    real = tools.cli._ledger

    def tracked(home: Any) -> Any:
        opened.append(real(home))
        return opened[-1]

    monkeypatch.setattr(tools.cli, "_ledger", tracked)

    def run(doc: Any) -> tuple[int, str, str]:
        f = tmp_path / "in.json"
        f.write_text(json.dumps(doc), encoding="utf-8")
        capsys.readouterr()
        try:
            rc = main(["submit", str(f)])
        finally:
            while opened:
                opened.pop().store.dispose()
        got = capsys.readouterr()
        return rc, got.out, got.err

    return run


def event(
    party: tuple[str, PartyKey], n: int = 1, *, issued: str = "2026-11-27T13:05:00+08:00", **extra: Any
) -> Env:
    body = {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
        **extra,
    }
    return sign_one(kind="event", signer=party[0], key=party[1], body=body, issued=issued)


def refused(world: World, envs: list[Any], index: int, code: str, *words: str) -> LedgerError:
    """Append ``envs``: refused as a batch, envelope ``index`` with ``code`` and ``words``;
    nothing landed."""
    size = world.ledger.size()
    with pytest.raises(BatchRejected) as info:
        world.ledger.append_batch(envs)
    assert world.ledger.size() == size
    found = dict(info.value.errors)
    assert index in found, info.value.errors
    err = found[index]
    assert err.code == code, err.message
    for w in words:
        assert w in err.message, err.message
    assert len(err.message) < 400, err.message
    return err


def cli_refuses(submit: Callable[[Any], tuple[int, str, str]], world: World, doc: Any, *words: str) -> str:
    size = world.ledger.size()
    rc, out, err = submit(doc)
    assert (rc, out) == (2, ""), err
    assert err.startswith("error [") and "Traceback" not in err
    for w in words:
        assert w in err, err
    assert world.ledger.size() == size
    return err


SUBMIT_Q = """mutation($e: [JSON!]!) {
  submit(envelopes: $e) { index error { code message } receipt { seq } } }"""


def gql_refuses(api: Api, world: World, envs: list[Any], index: int, code: str, *words: str) -> None:
    size = world.ledger.size()
    r = api.gql(SUBMIT_Q, e=envs)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "errors" not in body, body  # no "Unexpected error": an answer per envelope
    results = body["data"]["submit"]
    assert results[index]["error"]["code"] == code, results
    for w in words:
        assert w in results[index]["error"]["message"]
    assert world.ledger.size() == size


# --- shapes that crashed ------------------------------------------------------------------

SHAPES: list[tuple[str, Callable[[Env], Any], str]] = [
    ("kind-list", lambda e: e["statement"].__setitem__("kind", ["event"]), "statement kind ['event']"),
    ("kind-object", lambda e: e["statement"].__setitem__("kind", {"a": 1}), "statement kind {'a': 1}"),
    ("statement-list", lambda e: e.__setitem__("statement", [1]), "statement must be a JSON object"),
    ("signatures-object", lambda e: e.__setitem__("signatures", {"a": 1}), "signatures must be"),
    (
        "kind-huge-list",
        lambda e: e["statement"].__setitem__("kind", list(range(10000))),
        "statement kind [0, 1, 2",
    ),
]


@pytest.mark.parametrize(("name", "damage", "words"), SHAPES, ids=[s[0] for s in SHAPES])
def test_bad_shapes_are_malformed_everywhere(
    world: World,
    party: tuple[str, PartyKey],
    api: Api,
    submit: Any,
    name: str,
    damage: Callable[[Env], Any],
    words: str,
) -> None:
    bad = event(party)
    damage(bad)
    refused(world, [event(party, 2), bad], 1, "malformed", words)
    err = cli_refuses(submit, world, [event(party, 2), bad], "envelope 1: [malformed]", words)
    assert err.startswith("error [batch_rejected]: 1 envelope(s) refused, nothing appended")
    gql_refuses(api, world, [event(party, 2), bad], 1, "malformed", words)
    # As an {envelope, private} item too: the blob lookup must not crash on it.
    item = {"envelope": bad, "private": {"salt": "AAAAAAAAAAAAAAAAAAAAAA==", "data": {}}}
    cli_refuses(submit, world, [item], "[malformed]")
    gql_refuses(api, world, [item], 0, "malformed")


def test_a_real_submit_process_refuses_a_kind_list(
    world: World, party: tuple[str, PartyKey], tmp_path: Path
) -> None:
    bad = event(party)
    bad["statement"]["kind"] = ["event"]
    f = tmp_path / "bad.json"
    f.write_text(json.dumps(bad))
    r = subprocess.run(
        [sys.executable, "-m", "tools.cli", "submit", str(f)],
        capture_output=True,
        text=True,
        env={"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": "/usr/bin:/bin"},
    )
    assert (r.returncode, r.stdout) == (2, "")
    assert "[malformed] statement kind ['event'] is not one of" in r.stderr
    assert "Traceback" not in r.stderr


# --- NUL ----------------------------------------------------------------------------------

NULS: list[tuple[str, Callable[[tuple[str, PartyKey]], Env], str]] = [
    ("extension", lambda p: event(p, **{"ex:note": "a\x00b"}), "$.statement.body['ex:note']"),
    ("read-point", lambda p: event(p, readPoint={"id": "urn:x:a\x00"}), "$.statement.body.readPoint.id"),
    ("epc", lambda p: event(p, epcList=["urn:x:\x00"]), "$.statement.body.epcList[0]"),
    ("ilmd-key", lambda p: event(p, ilmd={"ex:a\x00b": 1}), "(its key)"),
    (
        "biz-transaction",
        lambda p: event(p, bizTransactionList=[{"type": "po", "bizTransaction": "urn:po:\x001"}]),
        "$.statement.body.bizTransactionList[0].bizTransaction",
    ),
    (
        "credit-reason",
        lambda p: sign_one(
            kind="credit.record",
            signer=p[0],
            key=p[1],
            body={"party": p[0], "item": "x", "points": 1, "reason": "late\x00"},
        ),
        "$.statement.body.reason",
    ),
]


@pytest.mark.parametrize(("name", "make", "path"), NULS, ids=[n[0] for n in NULS])
def test_nul_is_refused_with_its_path(
    world: World,
    party: tuple[str, PartyKey],
    api: Api,
    submit: Any,
    name: str,
    make: Callable[[tuple[str, PartyKey]], Env],
    path: str,
) -> None:
    bad = make(party)
    refused(world, [event(party, 5), bad], 1, "malformed", path, "U+0000")
    cli_refuses(submit, world, [bad], "envelope 0: [malformed]", path)
    gql_refuses(api, world, [bad], 0, "malformed", path)


def test_a_backslash_u0000_text_is_not_a_nul(world: World, party: tuple[str, PartyKey]) -> None:
    """JCS writes the text \\u0000 as \\\\u0000: the fast search's hit is confirmed."""
    world.ledger.append(event(party, 6, **{"ex:note": "\\u0000 is how JSON writes NUL"}))


# --- identifiers bounded for the indexes ----------------------------------------------------


def _random_text(n: int, lo: int = 0x4E00, hi: int = 0x9FFF) -> str:
    rnd = random.Random(n)
    return "".join(chr(rnd.randint(lo, hi)) for _ in range(n))


LONG = "urn:x:" + "".join(
    random.Random(1).choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(27_000)
)
BOUNDS: list[tuple[str, dict[str, Any], str]] = [
    (
        "biz-transaction-27kb",
        {"bizTransactionList": [{"type": "po", "bizTransaction": LONG}]},
        "$.bizTransactionList[0].bizTransaction is 27006 characters long",
    ),
    ("epc", {"epcList": [LONG]}, "$.epcList[0] is 27006"),
    ("read-point", {"readPoint": {"id": LONG}}, "$.readPoint.id is 27006"),
    (
        "biz-transaction-type",
        {"bizTransactionList": [{"type": "x:" + "t" * 299, "bizTransaction": "urn:po:1"}]},
        "$.bizTransactionList[0].type is 301 characters long",
    ),
    (
        "destination",
        {"destinationList": [{"type": "owning_party", "destination": LONG}]},
        "$.destinationList[0].destination is 27006",
    ),
    (
        "class",
        {"quantityList": [{"epcClass": "urn:x:" + _random_text(295), "quantity": 1}]},
        "$.quantityList[0].epcClass is 301",
    ),
]


@pytest.mark.parametrize(("name", "extra", "words"), BOUNDS, ids=[b[0] for b in BOUNDS])
def test_over_long_identifiers_are_refused_before_the_lock(
    world: World,
    party: tuple[str, PartyKey],
    api: Api,
    submit: Any,
    name: str,
    extra: dict[str, Any],
    words: str,
) -> None:
    bad = event(party, 7, **extra)
    refused(world, [event(party, 8), bad], 1, "malformed", "event body", words)
    cli_refuses(submit, world, [event(party, 8), bad], "envelope 1: [malformed] event body", words)
    gql_refuses(api, world, [bad], 0, "malformed", words)


def test_identifiers_at_the_bound_fit_every_index(world: World, party: tuple[str, PartyKey]) -> None:
    """The worst case the bound allows: two 300-character URIs of 4-byte characters in one
    index row (lineage, containment, business transactions, a seller in a finding)."""

    def u(prefix: str = "urn:") -> str:
        return prefix + _random_text(300 - len(prefix), 0x1F300, 0x1F5FF)

    def ev(**body: Any) -> Env:
        return sign_one(
            kind="event",
            signer=party[0],
            key=party[1],
            body={"eventTime": "2026-11-27T13:05:00+08:00", "eventTimeZoneOffset": "+08:00", **body},
        )

    order = {
        "goods": "1.00",
        "freight": "0.00",
        "tax": "0.00",
        "discount": "0.00",
        "paid": "1.00",
        "currency": "CNY",
        "buyerIdHash": "hmac-sha256:" + "a" * 64,
    }
    receipts = world.ledger.append_batch(
        [
            ev(type="TransformationEvent", inputEPCList=[u()], outputEPCList=[u()]),
            ev(type="AggregationEvent", action="ADD", parentID=u(), childEPCs=[u()]),
            ev(
                type="TransactionEvent",
                action="ADD",
                epcList=[u()],
                bizTransactionList=[{"type": u("x:"), "bizTransaction": u()}],
            ),
            # An order naming a seller and an owner no one registered: a finding names the seller.
            ev(
                type="ObjectEvent",
                action="OBSERVE",
                epcList=[u()],
                bizTransactionList=[{"type": "cbec:order", "bizTransaction": u()}],
                sourceList=[{"type": "owning_party", "source": u()}],
                destinationList=[{"type": "owning_party", "destination": u()}],
                **{"cbec:orderInfo": order},
            ),
        ]
    )
    assert len(receipts) == 4


# --- issued -------------------------------------------------------------------------------


def test_issued_far_in_the_future_is_refused(
    world: World, party: tuple[str, PartyKey], api: Api, submit: Any
) -> None:
    from datetime import UTC, datetime, timedelta

    for issued in (
        "9999-01-01T00:00:00Z",
        (datetime.now(UTC) + timedelta(days=2)).isoformat(timespec="seconds"),
    ):
        bad = event(party, 9, issued=issued)
        refused(world, [bad], 0, "issued_future", f"statement issued {issued} is more than a day")
        cli_refuses(submit, world, [bad], "[issued_future]", "check the signer's clock")
        gql_refuses(api, world, [bad], 0, "issued_future")
    # Times no UTC instant holds: they crashed the findings' time rule under the lock.
    for issued in ("9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"):
        refused(
            world,
            [event(party, 9, issued=issued)],
            0,
            "malformed",
            f"statement issued {issued} is outside the years 1 to 9999 in UTC",
        )
    # Within a day ahead (a clock a little fast, local time sent as UTC) and any past: facts.
    soon = (datetime.now(UTC) + timedelta(hours=23)).isoformat(timespec="seconds")
    world.ledger.append_batch(
        [event(party, 10, issued=soon), event(party, 11, issued="0001-01-02T00:00:00+14:00")]
    )


# --- lot numbers --------------------------------------------------------------------------

LOTS: list[tuple[str, Any, str]] = [
    ("control", "L1\x07", "contains '\\x07'"),
    # < and > are GS1 characters ("<script>" is a valid lot, which pages escape): the
    # length stops a script.
    ("script", "<script>alert(1)</script>", "is 25 characters long"),
    ("space", "L 1", "contains ' '"),
    ("newline", "L1\n", "contains '\\n'"),
    ("chinese", "批次1", "contains '批'"),
    ("twenty-one", "L" * 21, "is 21 characters long"),
    ("200kb", "L" * 200_000, "is 200000 characters long"),
    ("empty", "", "must be a GS1 lot number"),
    ("number", 12, "must be a GS1 lot number"),
]


@pytest.mark.parametrize(("name", "lot", "words"), LOTS, ids=[x[0] for x in LOTS])
@pytest.mark.parametrize("where", ["ilmd", "top", "ilmd-iri"])
def test_lot_numbers_follow_gs1_ai_10(
    world: World, party: tuple[str, PartyKey], submit: Any, name: str, lot: Any, words: str, where: str
) -> None:
    if where == "ilmd":
        bad, path = event(party, 12, ilmd={"cbvmda:lotNumber": lot}), "$.ilmd['cbvmda:lotNumber']"
    elif where == "top":
        bad, path = event(party, 12, **{"cbvmda:lotNumber": lot}), "$['cbvmda:lotNumber']"
    else:
        key = "https://ref.gs1.org/cbv/mda#lotNumber"
        bad, path = event(party, 12, ilmd={key: lot}), f"$.ilmd['{key}']"
    refused(world, [bad], 0, "malformed", f"event body {path} {words}")
    if name in ("script", "200kb"):
        cli_refuses(submit, world, [bad], path, words)


def test_good_lot_numbers_are_accepted(world: World, party: tuple[str, PartyKey]) -> None:
    world.ledger.append_batch(
        [
            event(party, 13, ilmd={"cbvmda:lotNumber": "L2026A"}),
            event(party, 14, ilmd={"cbvmda:lotNumber": "A!\"%&'()*+,-./:;<=>?_z"[:20]}),
            event(party, 16, ilmd={"cbvmda:lotNumber": "<script>"}),
            event(party, 15, **{"cbvmda:lotNumber": "20261127-01"}),
        ]
    )


def test_a_lot_in_a_digital_link_follows_the_same_rule(world: World, party: tuple[str, PartyKey]) -> None:
    bad = event(party, epcList=["https://id.gs1.org/01/09506000134352/10/%3Cscript%3E%00/21/1"])
    refused(world, [bad], 0, "bad_identifier", "lot")


# --- names --------------------------------------------------------------------------------

NAMES: list[tuple[str, str, str]] = [
    ("nul", "ACME\x00", "U+0000"),
    ("newline", "ACME\nLtd", "control character U+000A"),
    ("bidi-override", "ACME \u202eLtd", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
    ("bidi-isolate", "\u2066ACME\u2069", "U+2066"),
    ("line-separator", "ACME\u2028Ltd", "U+2028"),
    ("zero-width-only", "\u200b\u200d\ufeff", "shows nothing"),
    ("blank-with-zero-width", " \u200b \u3164 ", "shows nothing"),
    ("201-characters", "名" * 201, "is 201 characters long"),
    ("200kb", "A" * 200_000, "is 200000 characters long"),
]


@pytest.mark.parametrize(("name", "value", "words"), NAMES, ids=[n[0] for n in NAMES])
def test_party_names_are_one_line_of_visible_text(
    world: World, api: Api, submit: Any, name: str, value: str, words: str
) -> None:
    party, key = new_uscc(), PartyKey.generate("p")
    bad = world.registration(party, key, ["producer"], name=value)
    where = "$.statement.body.name" if name == "nul" else "party.register body name"
    refused(world, [bad], 0, "malformed", where, words)
    cli_refuses(submit, world, [bad], where, words)
    gql_refuses(api, world, [bad], 0, "malformed", words)


def test_good_names_are_accepted(world: World) -> None:
    for value in ("ACME Co., Ltd.", "名" * 200, "株式会社 明治", "شركة\u200fالمثال"):
        party, key = new_uscc(), PartyKey.generate("p")
        world.ledger.append(world.registration(party, key, ["producer"], name=value))


def test_the_registrar_name_in_genesis_follows_the_same_rule(db_url: str, tmp_path: Path) -> None:
    from ledger.log.home import Home
    from ledger.log.sequencer import Ledger

    store = Store(db_url)
    try:
        store.migrate()
        home = Home(tmp_path / "home")
        signer = home.create_note_signer(ORIGIN)
        led = Ledger(store, note_signer=signer)
        bad = genesis_envelope(
            origin=ORIGIN,
            signer=signer,
            registrar_id=new_uscc(),
            registrar_name="登记\u202e中心",
            registrar_key=home.keys.create("r"),
        )
        with pytest.raises(BatchRejected, match="genesis registrar name contains U[+]202E"):
            led.append(bad)
        assert led.size() == 0
    finally:
        store.dispose()


def test_the_door_rules_never_judge_old_entries(
    world: World, party: tuple[str, PartyKey], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rules of ledger.log.admission judge new statements only: an entry holding what they
    now refuse (appended before them; here, past them) still audits, reindexes and reads."""
    from ledger.log import admission
    from ledger.log.audit import audit
    from ledger.log.reindex import reindex

    extra = {} if world.store.dialect == "postgresql" else {"ex:note": "old\x00"}
    old = event(party, 30, issued="9999-01-01T00:00:00Z", **extra)
    with monkeypatch.context() as m:
        m.setattr(admission, "admit", lambda p, now: None)
        world.ledger.append(copy.deepcopy(old))
    assert audit(world.store).ok
    reindex(world.store)
    assert world.ledger.entry(world.ledger.size() - 1).decoded()["envelope"] == old
