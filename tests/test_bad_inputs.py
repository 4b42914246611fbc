"""A catalogue of bad inputs: each gets a clear error and a code, nothing is appended, and
the audit still passes afterwards."""

from __future__ import annotations

import base64
import copy
import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from ledger.core import canonical
from ledger.core.errors import BatchRejected, LedgerError
from ledger.core.keys import PartyKey
from ledger.core.statements import sign, sign_one
from ledger.log.audit import audit
from tests.support import World, new_uscc

Env = dict[str, Any]


def party_of(holder: Env) -> str:
    return str(holder["statement"].get("signer", ""))


def _resign(w: World, key: PartyKey, mutate: Callable[[Env], None]) -> Callable[[Env], Env]:
    """Mutate the statement, then sign it properly: only the content is wrong."""

    def f(env: Env) -> Env:
        st = copy.deepcopy(env["statement"])
        holder = {"statement": st}
        mutate(holder)
        try:
            return sign(holder["statement"], [(holder["statement"].get("signer", ""), key)])
        except LedgerError:
            # Our own signer refuses to canonicalise it; a hostile client sends it anyway.
            return {
                "statement": holder["statement"],
                "signatures": [
                    {
                        "signer": party_of(holder),
                        "key": key.key_id,
                        "sig": base64.b64encode(bytes(64)).decode(),
                    }
                ],
            }

    return f


# (name, transform of a good envelope, expected error code, words the message must hold)
def catalogue(w: World, party: str, key: PartyKey) -> list[tuple[str, Any, str, str]]:
    other_party, other_key = w.register()
    revoked_party, revoked_key = w.register()
    w.ledger.append(
        sign_one(
            kind="party.key.revoke",
            signer=revoked_party,
            key=revoked_key,
            body={"party": revoked_party, "key": revoked_key.key_id},
        )
    )
    stranger = PartyKey.generate("stranger")

    def st(f: Callable[[Env], None]) -> Callable[[Env], Env]:
        return _resign(w, key, f)

    def setf(field: str, value: Any) -> Callable[[Env], None]:
        return lambda e: e["statement"].__setitem__(field, value)

    def delf(field: str) -> Callable[[Env], None]:
        return lambda e: e["statement"].pop(field)

    def deep(n: int) -> Any:
        v: Any = 1
        for _ in range(n):
            v = {"a": v}
        return v

    def unregistered(env: Env) -> Env:
        p = new_uscc()
        return sign_one(kind="event", signer=p, key=stranger, body=env["statement"]["body"])

    def other_key_sig(env: Env) -> Env:
        stmt = dict(env["statement"])
        e = sign(stmt, [(party, other_key)])
        e["signatures"][0]["key"] = key.key_id
        return e

    def cross_party(env: Env) -> Env:
        stmt = dict(env["statement"], key=other_key.key_id)
        return sign(stmt, [(party, other_key)])

    def no_registrar(env: Env) -> Env:
        p, k = new_uscc(), PartyKey.generate("x")
        return sign_one(
            kind="party.register",
            signer=p,
            key=k,
            body={"id": p, "name": "X", "roles": ["producer"], "publicKey": k.public_key_b64},
        )

    def fake_registrar(env: Env) -> Env:
        p, k = new_uscc(), PartyKey.generate("x")
        return sign_one(
            kind="party.register",
            signer=p,
            key=k,
            body={"id": p, "name": "X", "roles": ["producer"], "publicKey": k.public_key_b64},
            cosigners=[(w.registrar, stranger)],
        )

    def bad_uscc(env: Env) -> Env:
        good = new_uscc()
        last = good[-1]
        wrong = good[:-1] + ("0" if last != "0" else "1")
        return sign_one(kind="event", signer=wrong, key=key, body=env["statement"]["body"])

    def revoked(env: Env) -> Env:
        return sign_one(kind="event", signer=revoked_party, key=revoked_key, body=env["statement"]["body"])

    def unknown_role(env: Env) -> Env:
        p, k = new_uscc(), PartyKey.generate("x")
        return sign_one(
            kind="party.register",
            signer=p,
            key=k,
            body={"id": p, "name": "X", "roles": ["smuggler"], "publicKey": k.public_key_b64},
            cosigners=[(w.registrar, w.registrar_key)],
        )

    def second_genesis(env: Env) -> Env:
        return sign_one(
            kind="genesis",
            signer=w.registrar,
            key=w.registrar_key,
            body={
                "origin": "x",
                "logKey": "x",
                "registrar": {"id": w.registrar, "name": "R", "publicKey": w.registrar_key.public_key_b64},
            },
        )

    def attest_missing(env: Env) -> Env:
        return sign_one(kind="attest", signer=party, key=key, body={"seq": 10**6, "entry": "ab" * 32})

    def attest_wrong_hash(env: Env) -> Env:
        return sign_one(kind="attest", signer=party, key=key, body={"seq": 0, "entry": "ab" * 32})

    def sig_bytes(n: int) -> Callable[[Env], Env]:
        def f(env: Env) -> Env:
            env["signatures"][0]["sig"] = base64.b64encode(bytes(n)).decode()
            return env

        return f

    def env_set(path: tuple[str, ...], value: Any) -> Callable[[Env], Env]:
        def f(env: Env) -> Env:
            target = env
            for p in path[:-1]:
                target = target[p]
            target[path[-1]] = value
            return env

        return f

    return [
        ("not an object", lambda e: [e], "malformed", "envelope"),
        ("string envelope", lambda e: "envelope", "malformed", "envelope"),
        ("missing signatures", lambda e: {"statement": e["statement"]}, "malformed", "signatures"),
        ("extra envelope field", lambda e: {**e, "x": 1}, "malformed", "exactly two fields"),
        ("missing body", st(delf("body")), "malformed", "missing body"),
        ("missing issued", st(delf("issued")), "malformed", "missing issued"),
        ("extra statement field", st(setf("colour", "red")), "malformed", "unknown field"),
        ("wrong v", st(setf("v", 2)), "malformed", "version"),
        ("v as bool", st(setf("v", True)), "malformed", "version"),
        ("unknown kind", st(setf("kind", "teleport")), "malformed", "kind"),
        ("body not object", st(setf("body", [1, 2])), "malformed", "body"),
        ("issued without offset", st(setf("issued", "2026-11-27T13:05:00")), "malformed", "offset"),
        (
            "issued impossible date",
            st(setf("issued", "2026-02-30T13:05:00+08:00")),
            "malformed",
            "not a real date",
        ),
        ("bad key id", st(setf("key", "XYZ")), "malformed", "key id"),
        ("bad private commitment", st(setf("private", "md5:00")), "malformed", "private"),
        ("sig not base64", env_set(("signatures", 0, "sig"), "@@@"), "malformed", "base64"),
        ("sig too short", sig_bytes(10), "malformed", "64 bytes"),
        (
            "sig with stray padding bits",
            lambda e: (
                env_set(("signatures", 0, "sig"), e["signatures"][0]["sig"][:-3] + "B==")(e)
                if e["signatures"][0]["sig"][-3] not in "BRhx"
                else env_set(("signatures", 0, "sig"), e["signatures"][0]["sig"][:-3] + "C==")(e)
            ),
            "malformed",
            "canonical base64",
        ),
        (
            "sig with a space",
            env_set(("signatures", 0, "sig"), "A" * 43 + " " + "A" * 42 + "=="),
            "malformed",
            "not valid base64",
        ),
        ("wrong signature", sig_bytes(64), "bad_signature", "does not verify"),
        ("signature by another party's key", other_key_sig, "bad_signature", "does not verify"),
        ("statement claims another party's key", cross_party, "wrong_key", "belongs to"),
        (
            "first signature not the signer",
            env_set(("signatures", 0, "signer"), "uscc:91310110666007217T"),
            "malformed",
            "first signature",
        ),
        ("unknown signer", unregistered, "unknown_key", "not registered"),
        ("revoked key", revoked, "key_revoked", "revoked at seq"),
        ("registration without registrar", no_registrar, "registrar_cosignature_missing", "registrar"),
        ("registrar cosignature with a stranger's key", fake_registrar, "unknown_key", "not registered"),
        ("USCC with a wrong check character", bad_uscc, "bad_identifier", "expected"),
        ("unknown role", unknown_role, "malformed", "unknown role"),
        ("second genesis", second_genesis, "not_authorised", "genesis"),
        ("attest of a missing entry", attest_missing, "not_found", "not yet in the ledger"),
        ("attest with the wrong hash", attest_wrong_hash, "malformed", "another leaf hash"),
        (
            "body over 1 MiB",
            st(lambda e: e["statement"]["body"].__setitem__("x", "a" * (1 << 20))),
            "malformed",
            "1 MiB",
        ),
        (
            "NaN in body",
            st(lambda e: e["statement"]["body"].__setitem__("q", float("nan"))),
            "malformed",
            "NaN",
        ),
        (
            "Infinity in body",
            st(lambda e: e["statement"]["body"].__setitem__("q", float("inf"))),
            "malformed",
            "cannot represent",
        ),
        (
            "integer beyond 2^53",
            st(lambda e: e["statement"]["body"].__setitem__("q", 2**53 + 1)),
            "malformed",
            "2^53",
        ),
        (
            "deeply nested",
            st(lambda e: e["statement"]["body"].__setitem__("q", deep(40))),
            "malformed",
            "deeper",
        ),
        (
            "lone surrogate",
            st(lambda e: e["statement"]["body"].__setitem__("q", "\ud800")),
            "malformed",
            "surrogate",
        ),
    ]


@pytest.fixture
def actors(world: World) -> tuple[str, PartyKey]:
    return world.register(["producer"])


def test_catalogue_is_refused_and_nothing_lands(world: World, actors: tuple[str, PartyKey]) -> None:
    party, key = actors
    cases = catalogue(world, party, key)
    assert len(cases) >= 30
    size, cp = world.ledger.size(), world.ledger.latest_checkpoint()
    for name, transform, code, words in cases:
        bad = transform(copy.deepcopy(world.event(party, key, 1)))
        with pytest.raises(BatchRejected) as info:
            world.ledger.append_batch([world.event(party, key, 2), bad])
        index, err = info.value.errors[0]
        assert index == 1, name
        assert err.code == code, f"{name}: {err.code} {err.message}"
        assert words.lower() in err.message.lower(), f"{name}: {err.message}"
        assert err.message.endswith((".", ")")) or len(err.message.split()) > 3, name
        assert world.ledger.size() == size, name
        assert world.ledger.latest_checkpoint() == cp, name
    assert audit(world.store).ok


RAW_CASES = [
    (b"{not json", "not valid JSON"),
    (b"\xff\xfe{}", "UTF-8"),
    (b'{"statement": NaN}', "NaN"),
    (b'{"statement": Infinity}', "Infinity"),
    (b'{"a": 1, "a": 2}', "more than once"),
    (b'{"n": 123456789012345678901234567890}', "2^53"),
    (b"[" * 100 + b"]" * 100, "deeper"),
    (b'{"s": "\\ud800"}', "surrogate"),
    (b'{"n": 1e400}', "infin"),
]


@pytest.mark.parametrize("raw,words", RAW_CASES, ids=[w for _, w in RAW_CASES])
def test_raw_bytes_refused_by_the_parser(raw: bytes, words: str) -> None:
    with pytest.raises(LedgerError) as info:
        canonical.parse_json(raw)
    assert info.value.code == "malformed"
    assert words.lower() in info.value.message.lower()


def test_cli_submit_refuses_bad_files_with_one_sentence(
    world: World, tmp_path: Any, actors: tuple[str, PartyKey]
) -> None:
    party, key = actors
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": "/usr/bin:/bin"}
    size = world.ledger.size()
    good = json.dumps(world.event(party, key, 77))
    for content in (b"{oops", b"\xff\xfe", good.encode() + b"\n{bad line}\n", b"[1, 2]"):
        f = tmp_path / "in.jsonl"
        f.write_bytes(content)
        r = subprocess.run(
            [sys.executable, "-m", "tools.cli", "submit", str(f)], env=env, capture_output=True, text=True
        )
        assert r.returncode == 2
        assert r.stdout == ""
        assert r.stderr.startswith("error [")
        assert "Traceback" not in r.stderr
    assert world.ledger.size() == size
