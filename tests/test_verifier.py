"""The one verifier (``ledger.log.verifier``) against a plain re-implementation of the
registry's rules, on random registry histories: registrations with and without the
registrar's cosignature, rotations, revocations by the party or the registrar, events
signed with valid, ended, foreign and unknown keys, bad signatures, at random seqs.

Both the whole history and the slice a page reads (the genesis, the registry entries an
honest projection points to for the event's signer, the event) must give the model's
verdict."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

import nacl.signing
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import ids
from ledger.core.errors import LedgerError
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.statements import entry_bytes, prepare, sign_one
from ledger.log.home import genesis_envelope
from ledger.log.verifier import (
    ParsedEntry,
    parse_entry,
    pin_log_key,
    read_genesis,
    verify_entries,
)

ORIGIN = "test.suyuan/log"
NOTE = NoteSigner(ORIGIN, nacl.signing.SigningKey(bytes([200]) * 32))
REGISTRAR = "uscc:" + ids.make_uscc("9113020000000000")
REGISTRAR_KEY = PartyKey.from_seed("registrar", bytes([100]) * 32)
PARTIES = ["uscc:" + ids.make_uscc(f"911302000000001{n}") for n in range(3)]
KEYS = [PartyKey.from_seed(f"k{n}", bytes([n + 1]) * 32) for n in range(6)]
FOREIGN = PartyKey.from_seed("foreign", bytes([99]) * 32)  # never registered by anyone
TIME = "2026-11-27T13:05:00+08:00"
ITEM = "https://id.gs1.org/01/09506000134352/21/{}"


def entry(seq: int, env: dict[str, Any]) -> ParsedEntry:
    raw = entry_bytes(
        seq=seq,
        prev=bytes(32),
        time="2026-11-27T05:05:00.000000Z",
        envelope_bytes=prepare(env).envelope_bytes,
    )
    return parse_entry(raw)


def _spoil(env: dict[str, Any]) -> dict[str, Any]:
    sig = bytearray(base64.b64decode(env["signatures"][0]["sig"]))
    sig[5] ^= 0x20
    env["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()
    return env


# --- the model: the rules of docs/design.md and registry.py, written out plainly -----------


@dataclass
class Model:
    keys: dict[str, tuple[str, int, int | None]] = field(default_factory=dict)  # kid -> party, from, until
    parties: dict[str, int] = field(default_factory=dict)  # party -> registered at

    def valid(self, party: str, kid: str, seq: int) -> bool:
        k = self.keys.get(kid)
        return k is not None and k[0] == party and k[1] <= seq and (k[2] is None or seq <= k[2])


def build(ops: list[tuple[Any, ...]]) -> tuple[dict[int, ParsedEntry], dict[int, bool], Model]:
    """The entries of a history, the model's verdict on each, and the model's registry."""
    m = Model()
    m.keys[REGISTRAR_KEY.key_id] = (REGISTRAR, 0, None)
    m.parties[REGISTRAR] = 0
    entries = {
        0: entry(
            0,
            genesis_envelope(
                origin=ORIGIN,
                signer=NOTE,
                registrar_id=REGISTRAR,
                registrar_name="登记中心",
                registrar_key=REGISTRAR_KEY,
            ),
        )
    }
    verdict = {0: True}
    for seq, op in enumerate(ops, 1):
        kind, bad_sig = op[0], op[-1]
        if kind == "register":
            _, p, k, cosign, _ = op
            party, key = PARTIES[p], KEYS[k]
            co = {"registrar": [(REGISTRAR, REGISTRAR_KEY)], "foreign": [(REGISTRAR, FOREIGN)], "none": []}[
                cosign
            ]
            env = sign_one(
                kind="party.register",
                signer=party,
                key=key,
                cosigners=co,
                body={
                    "id": party,
                    "name": f"party {p}",
                    "roles": ["producer"],
                    "publicKey": key.public_key_b64,
                },
                issued=TIME,
            )
            ok = party not in m.parties and key.key_id not in m.keys and cosign == "registrar"
            if ok and not bad_sig:
                m.parties[party] = seq
                m.keys[key.key_id] = (party, seq, None)
        elif kind == "rotate":
            _, p, old, new, cosign, _ = op
            party, key, new_key = PARTIES[p], KEYS[old], KEYS[new]
            co = [(REGISTRAR, REGISTRAR_KEY)] if cosign == "registrar" else []
            env = sign_one(
                kind="party.key.rotate",
                signer=party,
                key=key,
                cosigners=co,
                body={"publicKey": new_key.public_key_b64},
                issued=TIME,
            )
            ok = (
                party in m.parties
                and m.valid(party, key.key_id, seq)
                and new_key.key_id not in m.keys
                and cosign == "registrar"
            )
            if ok and not bad_sig:
                m.keys[key.key_id] = (party, m.keys[key.key_id][1], seq)
                m.keys[new_key.key_id] = (party, seq, None)
        elif kind == "revoke":
            _, by, p, target, signing, _ = op
            party, kid = PARTIES[p], KEYS[target].key_id
            signer, key = (party, KEYS[signing]) if by == "party" else (REGISTRAR, REGISTRAR_KEY)
            env = sign_one(
                kind="party.key.revoke",
                signer=signer,
                key=key,
                body={"party": party, "key": kid},
                issued=TIME,
            )
            t = m.keys.get(kid)
            ok = (
                signer in m.parties
                and m.valid(signer, key.key_id, seq)
                and t is not None
                and t[0] == party
                and t[2] is None
            )
            if ok and not bad_sig:
                m.keys[kid] = (party, t[1], seq)  # type: ignore[index]
        else:
            _, p, k, step, _ = op
            party, key = PARTIES[p], (KEYS + [FOREIGN])[k]
            env = sign_one(
                kind="event",
                signer=party,
                key=key,
                issued=TIME,
                body={
                    "type": "ObjectEvent",
                    "eventTime": TIME,
                    "eventTimeZoneOffset": "+08:00",
                    "action": "OBSERVE",
                    "bizStep": step,
                    "epcList": [ITEM.format(seq)],
                },
            )
            # A producer signs production, never a customs release.
            ok = party in m.parties and m.valid(party, key.key_id, seq) and step == "commissioning"
        entries[seq] = entry(seq, _spoil(env) if bad_sig else env)
        verdict[seq] = ok and not bad_sig
    return entries, verdict, m


@st.composite
def histories(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Random histories whose choices lean on the keys each party was given so far (so
    that rotations, revocations and events often concern a key in use, or one that
    ended), and sometimes any key, a foreign one or one nobody registered."""
    held: dict[int, list[int]] = {}
    ops: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 24))):
        kind = draw(st.sampled_from(["register", "register", "rotate", "revoke", "event", "event", "event"]))
        p = draw(st.integers(0, len(PARTIES) - 1))

        def key_of(who: int) -> int:
            own = held.get(who, [])
            return draw(st.sampled_from(own * 3 + list(range(len(KEYS)))))

        bad_sig = draw(st.integers(0, 9)) == 0
        if kind == "register":
            k = draw(st.integers(0, len(KEYS) - 1))
            cosign = draw(st.sampled_from(["registrar"] * 4 + ["none", "foreign"]))
            held.setdefault(p, []).append(k)
            ops.append(("register", p, k, cosign, bad_sig))
        elif kind == "rotate":
            old, new = key_of(p), draw(st.integers(0, len(KEYS) - 1))
            cosign = draw(st.sampled_from(["registrar"] * 4 + ["none"]))
            held.setdefault(p, []).append(new)
            ops.append(("rotate", p, old, new, cosign, bad_sig))
        elif kind == "revoke":
            by = draw(st.sampled_from(["party", "registrar"]))
            ops.append(("revoke", by, p, key_of(p), key_of(p), bad_sig))
        else:
            k = draw(st.sampled_from([key_of(p)] * 4 + [len(KEYS), key_of((p + 1) % 3)]))
            step = draw(st.sampled_from(["commissioning"] * 4 + ["cbec:releasing"]))
            ops.append(("event", p, k, step, bad_sig))
    return ops


class _Store(dict[tuple[Any, ...], Any]):
    def put(self, key: tuple[Any, ...], value: Any) -> None:
        self[key] = value


def _evidence(m: Model, signer: str) -> set[int]:
    """What an honest projection points to for ``signer``: its registration and the
    entries that introduced or ended its keys and the registrar's, and the genesis."""
    out = {0}
    for who in (signer, REGISTRAR):
        if who in m.parties:
            out.add(m.parties[who])
        for owner, since, until in m.keys.values():
            if owner == who:
                out.add(since)
                if until is not None:
                    out.add(until)
    return out


@settings(max_examples=400, deadline=None)
@given(histories())
def test_verdicts_match_the_rules(ops: list[tuple[Any, ...]]) -> None:
    entries, verdict, model = build(ops)
    # Strictly in seq order, and key statements first with events judged after them.
    for in_order in (True, False):
        got = verify_entries(entries, log_key=NOTE.verifier_key(), in_order=in_order)
        assert {s: got.ok(s) for s in entries} == verdict, in_order
        assert not got.general
        # Only registrations that hold show a name.
        assert set(got.parties) == set(model.parties)
    # The page's slice: an event judged with the genesis and the registry entries a
    # projection points to for its signer (as the model's registry holds them), with
    # replays kept between slices as the page keeps them.
    replays = _Store()
    for seq, e in entries.items():
        if e.prepared is not None and e.prepared.kind == "event":
            part = {s: entries[s] for s in _evidence(model, e.prepared.signer) | {seq}}
            for kept in (None, replays, replays):
                got = verify_entries(part, log_key=NOTE.verifier_key(), replays=kept)
                assert got.ok(seq) == verdict[seq]


def test_the_model_sees_every_rule() -> None:
    """Hand-picked histories, so that a weak generator cannot hide a rule from the test."""
    cases: list[tuple[list[tuple[Any, ...]], dict[int, bool]]] = [
        (
            [("register", 0, 0, "registrar", False), ("event", 0, 0, "commissioning", False)],
            {1: True, 2: True},
        ),
        ([("register", 0, 0, "none", False), ("event", 0, 0, "commissioning", False)], {1: False, 2: False}),
        (
            [("register", 0, 0, "foreign", False), ("event", 0, 0, "commissioning", False)],
            {1: False, 2: False},
        ),
        (
            [("register", 0, 0, "registrar", True), ("event", 0, 0, "commissioning", False)],
            {1: False, 2: False},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("revoke", "party", 0, 0, 0, False),
                ("event", 0, 0, "commissioning", False),
            ],
            {1: True, 2: True, 3: False},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("revoke", "registrar", 0, 0, 0, False),
                ("event", 0, 0, "commissioning", False),
            ],
            {1: True, 2: True, 3: False},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("revoke", "registrar", 0, 0, 0, True),
                ("event", 0, 0, "commissioning", False),
            ],
            {1: True, 2: False, 3: True},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("rotate", 0, 0, 1, "registrar", False),
                ("event", 0, 0, "commissioning", False),
                ("event", 0, 1, "commissioning", False),
            ],
            {1: True, 2: True, 3: False, 4: True},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("rotate", 0, 0, 1, "none", False),
                ("event", 0, 1, "commissioning", False),
            ],
            {1: True, 2: False, 3: False},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("register", 1, 1, "registrar", False),
                ("event", 1, 0, "commissioning", False),
                ("event", 0, 6, "commissioning", False),
                ("event", 0, 0, "cbec:releasing", False),
                ("revoke", "party", 1, 0, 1, False),
            ],
            {1: True, 2: True, 3: False, 4: False, 5: False, 6: False},
        ),
        (
            [
                ("register", 0, 0, "registrar", False),
                ("register", 0, 1, "registrar", False),
                ("register", 1, 0, "registrar", False),
            ],
            {1: True, 2: False, 3: False},
        ),
    ]
    for ops, want in cases:
        entries, verdict, _ = build(ops)
        assert verdict == {0: True, **want}, ops
        for in_order in (True, False):
            got = verify_entries(entries, log_key=NOTE.verifier_key(), in_order=in_order)
            assert {s: got.ok(s) for s in entries} == verdict, (ops, in_order, got.problems)


def test_reasons_name_the_rule() -> None:
    entries, _, _ = build(
        [
            ("register", 0, 0, "registrar", False),
            ("revoke", "registrar", 0, 0, 0, False),
            ("event", 0, 0, "commissioning", False),
            ("register", 1, 1, "foreign", False),
        ]
    )
    got = verify_entries(entries, log_key=NOTE.verifier_key())
    assert got.problems[3] == (f"key {KEYS[0].key_id} of {PARTIES[0]} was revoked at seq 2")
    assert got.problems[4] == f"key {FOREIGN.key_id} of {REGISTRAR} is not registered (at seq 4)"
    other = NoteSigner(ORIGIN, nacl.signing.SigningKey(bytes([201]) * 32)).verifier_key()
    wrong = verify_entries(entries, log_key=other)
    assert wrong.problems[0].startswith("the genesis names log key ")
    assert wrong.problems[1] == "the genesis entry (seq 0) does not verify"
    assert not any(wrong.ok(s) for s in entries) and not wrong.parties
    del entries[0]
    assert verify_entries(entries, log_key=NOTE.verifier_key()).general


def test_pinned_key_and_genesis() -> None:
    g0 = entry(
        0,
        genesis_envelope(
            origin=ORIGIN,
            signer=NOTE,
            registrar_id=REGISTRAR,
            registrar_name="登记中心",
            registrar_key=REGISTRAR_KEY,
        ),
    )
    raw = entry_bytes(
        seq=0, prev=bytes(32), time="2026-11-27T05:05:00.000000Z", envelope_bytes=g0.prepared.envelope_bytes
    )  # type: ignore[union-attr]
    genesis = read_genesis(raw)
    assert (genesis.log_key, genesis.registrar, genesis.origin) == (NOTE.verifier_key(), REGISTRAR, ORIGIN)
    with pytest.raises(LedgerError, match="no predecessor"):
        read_genesis(raw.replace(b'"prev":"00', b'"prev":"11', 1))
    with pytest.raises(LedgerError, match="not a valid entry"):
        read_genesis(raw[:-1])
    pin = pin_log_key(published=None, genesis=genesis)
    assert (pin.key, pin.problem) == (NOTE.verifier_key(), None)
    assert pin_log_key(published=NOTE.verifier_key(), genesis=genesis).problem is None
    other = NoteSigner(ORIGIN, nacl.signing.SigningKey(bytes([201]) * 32)).verifier_key()
    mismatch = pin_log_key(published=other, genesis=genesis)
    assert mismatch.key == other and "genesis entry names" in (mismatch.problem or "")
    assert "unusable" in (pin_log_key(published="nonsense", genesis=genesis).problem or "")
    assert pin_log_key(published=None, genesis=None).key is None
