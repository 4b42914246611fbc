"""Bearer tokens at the API: who may see what, and every way a token is refused (401 with
the reason), through the real ASGI stack on SQLite and PostgreSQL, and `suyuan token`."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.private import make_blob
from ledger.core.statements import sign_one
from ledger.core.tokens import make_token
from tests.support import ORIGIN, World

REPO = Path(__file__).resolve().parent.parent

PRIVATE_Q = "query($s:Int!){ viewer{ kind party } entry(seq:$s){ private{ status data salt commitment } } }"


class Api:
    def __init__(self, app: Any) -> None:
        self.app = app

    def request(
        self, method: str, path: str, token: str | None = None, header: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if header is not None:
            headers["Authorization"] = header

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, path, headers=headers, **kw)

        return asyncio.run(go())

    def gql(self, query: str, token: str | None = None, **variables: Any) -> httpx.Response:
        return self.request("POST", "/graphql", token, json={"query": query, "variables": variables})


@pytest.fixture
def api(world: World) -> Iterator[Api]:
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    yield Api(app)
    app.state.store.dispose()


def _private_order(w: World) -> tuple[int, dict[str, Any], str, PartyKey, tuple[str, PartyKey]]:
    """A platform's order whose buyer data is private; names a payment party."""
    platform, key = w.register(["platform"])
    named, nkey = w.register(["payment"])
    commitment, blob = make_blob({"buyer": "张三", "price": "298.00"})
    body = {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": "2026-11-27T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "bizStep": "retail_selling",
        "epcList": ["https://id.gs1.org/01/09506000134352/21/900"],
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": "urn:suyuan:order:1"}],
        "destinationList": [{"type": "owning_party", "destination": named}],
    }
    env = sign_one(kind="event", signer=platform, key=key, body=body, private=commitment)
    seq = w.ledger.append_batch([env], private={commitment: blob})[0].seq
    return seq, blob, platform, key, (named, nkey)


def _refused(r: httpx.Response, code: str) -> str:
    assert r.status_code == 401, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["www-authenticate"].startswith("Bearer ")
    err = r.json()["error"]
    assert err["code"] == code and set(err) == {"code", "message"}
    assert err["message"].strip()
    return str(err["message"])


def test_who_sees_private_data(world: World, api: Api) -> None:
    seq, blob, platform, key, named = _private_order(world)
    stranger, skey = world.register(["logistics"])
    regulator, rkey = world.register(["regulator"])

    def view(token: str | None) -> dict[str, Any]:
        r = api.gql(PRIVATE_Q, token, s=seq)
        assert r.status_code == 200 and "errors" not in r.json(), r.text
        return dict(r.json()["data"])

    public = view(None)
    assert public["viewer"] == {"kind": "public", "party": None}
    assert public["entry"]["private"]["status"] == "not_entitled"
    assert public["entry"]["private"]["data"] is None and public["entry"]["private"]["salt"] is None
    assert "张三" not in json.dumps(public, ensure_ascii=False)

    own = view(make_token(key, signer=platform, audience=ORIGIN))
    assert own["viewer"] == {"kind": "party", "party": platform}
    assert own["entry"]["private"] == {
        "status": "shown",
        "data": blob["data"],
        "salt": blob["salt"],
        "commitment": own["entry"]["private"]["commitment"],
    }
    # The shown blob is the one the signed statement commits to.
    st = world.ledger.entry(seq).decoded()["envelope"]["statement"]
    assert own["entry"]["private"]["commitment"] == st["private"]

    other = view(make_token(skey, signer=stranger, audience=ORIGIN))
    assert other["viewer"]["kind"] == "party"
    assert other["entry"]["private"]["status"] == "not_entitled"

    reg = view(make_token(rkey, signer=regulator, audience=ORIGIN))
    assert reg["viewer"] == {"kind": "regulator", "party": regulator}
    assert reg["entry"]["private"]["data"] == blob["data"]

    world.ledger.shred(st["private"])
    assert view(make_token(key, signer=platform, audience=ORIGIN))["entry"]["private"]["status"] == "shredded"


def test_named_party_sees_it_and_lists_hide_it(world: World, api: Api) -> None:
    seq, blob, _, _, (named, nkey) = _private_order(world)
    q = "{ entries(first: 100){ edges{ node{ seq private{ status data } } } } }"

    def statuses(token: str | None) -> dict[int, Any]:
        r = api.gql(q, token)
        assert "errors" not in r.json(), r.text
        return {e["node"]["seq"]: e["node"]["private"] for e in r.json()["data"]["entries"]["edges"]}

    public = statuses(None)
    assert public[seq] == {"status": "not_entitled", "data": None}
    assert all(v is None for s, v in public.items() if s != seq)
    assert statuses(make_token(nkey, signer=named, audience=ORIGIN))[seq] == {
        "status": "shown",
        "data": blob["data"],
    }


def test_refusals_say_why(world: World, api: Api) -> None:
    party, key = world.register(["producer"])
    now = time.time()
    expired = make_token(key, signer=party, audience=ORIGIN, ttl=60, now=now - 3600)
    assert "expired" in _refused(api.gql("{ viewer{ kind } }", expired), "token_expired")

    other_ledger = make_token(key, signer=party, audience="other.example/log")
    assert "other.example/log" in _refused(api.gql("{ viewer{ kind } }", other_ledger), "token_audience")

    # Forged: claims the party's key, signed by another key.
    intruder = PartyKey.generate(party)
    good = make_token(key, signer=party, audience=ORIGIN)
    forged_sig = make_token(intruder, signer=party, audience=ORIGIN).split(".")[1]
    _refused(api.gql("{ viewer{ kind } }", good.split(".")[0] + "." + forged_sig), "bad_signature")
    # Forged: the claims changed after signing (a later expiry).
    claims = json.loads(base64.urlsafe_b64decode(good.split(".")[0] + "=="))
    claims["exp"] += 10_000
    raw = json.dumps(claims, separators=(",", ":"), sort_keys=True).encode()
    tampered = base64.urlsafe_b64encode(raw).rstrip(b"=").decode() + "." + good.split(".")[1]
    _refused(api.gql("{ viewer{ kind } }", tampered), "bad_signature")
    # A key that is not the party's.
    _refused(
        api.gql("{ viewer{ kind } }", make_token(intruder, signer=party, audience=ORIGIN)),
        "token_unknown_key",
    )

    for header in ("Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "Bearer a.b.c"):
        _refused(
            api.request("POST", "/graphql", header=header, json={"query": "{ viewer{ kind } }"}),
            "token_malformed",
        )

    # Every route checks, not only GraphQL; no header is the public.
    _refused(api.request("GET", "/healthz", expired), "token_expired")
    assert api.request("GET", "/healthz").status_code == 200
    assert api.gql("{ viewer{ kind } }", good).json()["data"]["viewer"]["kind"] == "party"
    # A GET query is checked the same way.
    _refused(api.request("GET", "/graphql", expired, params={"query": "{ viewer{ kind } }"}), "token_expired")


def test_a_token_living_longer_than_the_limit_is_refused(world: World, api: Api) -> None:
    """``exp`` is bounded when a token is checked, not only when `suyuan token` makes one: a
    token signed with a clock set ten years ahead (or with any tool) is refused."""
    from ledger.core.tokens import CLOCK_SKEW, MAX_TTL

    party, key = world.register(["producer"])
    now = time.time()
    forever = make_token(key, signer=party, audience=ORIGIN, now=now + 10 * 365 * 86400)
    assert "longer than the 2592000" in _refused(api.gql("{ viewer{ kind } }", forever), "token_lifetime")
    _refused(api.request("GET", "/healthz", forever), "token_lifetime")
    # The longest a token may live, made by a clock a little ahead, still works.
    longest = make_token(key, signer=party, audience=ORIGIN, ttl=MAX_TTL, now=now + CLOCK_SKEW - 5)
    assert api.gql("{ viewer{ kind } }", longest).json()["data"]["viewer"]["kind"] == "party"
    _refused(
        api.gql(
            "{ viewer{ kind } }",
            make_token(key, signer=party, audience=ORIGIN, ttl=MAX_TTL, now=now + CLOCK_SKEW + 60),
        ),
        "token_lifetime",
    )


def test_revoked_key_stops_at_once(world: World, api: Api) -> None:
    party, key = world.register(["producer"])
    token = make_token(key, signer=party, audience=ORIGIN)
    assert api.gql("{ viewer{ party } }", token).json()["data"]["viewer"]["party"] == party
    revoke = sign_one(
        kind="party.key.revoke", signer=party, key=key, body={"party": party, "key": key.key_id}
    )
    seq = world.ledger.append(revoke).seq
    message = _refused(api.gql("{ viewer{ party } }", token), "token_key_revoked")
    assert f"seq {seq}" in message


def test_suyuan_token_command(world: World, api: Api) -> None:
    key = world.home.keys.create("acme")
    party = "uscc:91310110666007217T"
    world.ledger.append(world.registration(party, key, ["producer"], name="ACME"))
    env = {"PATH": os.environ.get("PATH", ""), "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
        )

    before = int(time.time())
    r = cli("token", "--key", "acme", "--signer", party, "--ttl", "600")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert set(doc) == {"token", "sub", "key", "exp", "aud"}
    assert doc["sub"] == party and doc["key"] == key.key_id and doc["aud"] == ORIGIN
    assert before + 600 <= doc["exp"] <= int(time.time()) + 600
    claims = json.loads(base64.urlsafe_b64decode(doc["token"].split(".")[0] + "=="))
    assert claims == {k: doc[k] for k in ("sub", "key", "exp", "aud")}
    viewer = api.gql("{ viewer{ kind party } }", doc["token"]).json()["data"]["viewer"]
    assert viewer == {"kind": "party", "party": party}

    # The key of another party: refused on the spot, with the API's sentence.
    other, _ = world.register(["producer"])
    bad = cli("token", "--key", "acme", "--signer", other)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.startswith("error [token_unknown_key]: ")
