"""Hostile HTTP: proofs beyond the log, numbers that do not fit, bodies too big or not
JSON as the CLI reads it, queries too costly, and one status per refusal class, on every
route, through the ASGI app and (where a socket matters) a real uvicorn server, on SQLite
and PostgreSQL. Nothing answers 500."""

from __future__ import annotations

import asyncio
import json
import select
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.body import MAX_BODY
from api.errors import STATUS, RequestTooLarge, UnsupportedMediaType, status_of
from api.graphql.cost import MAX_COST
from api.settings import Settings
from ledger.core import errors
from tests.pagechain import FormulaChain
from tests.support import Server, World

REPO = Path(__file__).resolve().parent.parent


class Http:
    """The whole app through httpx's ASGI transport; an exception in the app is a 500
    here, as a server would answer it, not an exception in the test."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def __call__(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=False)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def gql(self, query: str, **variables: Any) -> httpx.Response:
        return self("POST", "/graphql", json={"query": query, "variables": variables})


@pytest.fixture
def http(world: World) -> Iterator[Http]:
    app = create_app(Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example"))
    yield Http(app)
    app.state.store.dispose()


def refused(r: httpx.Response, status: int, code: str) -> str:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert err["code"] == code and set(err) == {"code", "message"}, err
    return str(err["message"])


def gql_error(r: httpx.Response) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body.get("errors"), body
    return dict(body["errors"][0])


def test_proofs_beyond_the_log_are_refused(world: World, http: Http) -> None:
    """A proof for a tree the log does not have proved nothing and looked like a proof:
    leaf n of a tree of n+1 came back with hashes, a consistency proof from 0 or to the
    same size came back empty. Each is now refused with the log's size."""
    world.append_events(*world.register(), 6)
    n = world.ledger.size()
    said = f"the tree has {n} entries, not {n + 1}"
    assert refused(http("GET", f"/proof/inclusion/{n}/{n + 1}"), 404, "not_found") == said
    assert refused(http("GET", f"/proof/inclusion/{n - 1}/{n + 1}"), 404, "not_found") == said
    assert refused(http("GET", f"/proof/consistency/0/{n + 1}"), 404, "not_found") == said
    assert refused(http("GET", f"/proof/consistency/{n + 1}/{n + 1}"), 404, "not_found") == said
    # Sizes the node keys cannot tell apart from smaller trees' nodes.
    for size in (2**56, 2**56 + 1, 2**63 - 1):
        refused(http("GET", f"/proof/inclusion/0/{size}"), 404, "not_found")
        refused(http("GET", f"/proof/consistency/3/{size}"), 404, "not_found")
    # The log's own sizes still prove.
    assert http("GET", f"/proof/inclusion/{n - 1}/{n}").json()["treeSize"] == n
    assert http("GET", f"/proof/consistency/0/{n}").json() == {"first": 0, "second": n, "hashes": []}
    # GraphQL asks the same ledger.
    for q in (
        f"{{ inclusionProof(seq: {n}, treeSize: {n + 1}) {{ hashes }} }}",
        f"{{ consistencyProof(first: 0, second: {n + 1}) {{ hashes }} }}",
        f"{{ entry(seq: 1) {{ inclusionProof(treeSize: {n + 1}) {{ hashes }} }} }}",
    ):
        e = gql_error(http.gql(q))
        assert e["extensions"]["code"] == "not_found" and e["message"] == said


@pytest.mark.parametrize(
    "first,second",
    [
        ("0", "99999999999999999999999"),
        ("99999999999999999999999", "5"),
        ("-1", "5"),
        ("0", "-3"),
        ("١", "5"),
        ("1_0", "20"),
        ("+1", "5"),
        ("0x1", "5"),
        ("1e3", "5"),
        ("%ff", "5"),
        ("1", "9223372036854775808"),
    ],
)
def test_proof_numbers_are_decimal_and_fit(http: Http, first: str, second: str) -> None:
    for kind in ("inclusion", "consistency"):
        msg = refused(http("GET", f"/proof/{kind}/{first}/{second}"), 400, "malformed")
        assert "is a decimal integer from 0 to 9223372036854775807" in msg


def test_one_status_per_refusal_class(http: Http) -> None:
    class NoSuchParty(errors.NotFound):
        code = "no_such_party"

    expected = {
        errors.MalformedInput("x"): 400,
        errors.IdentifierError("x"): 400,
        errors.ProofError("x"): 400,
        RequestTooLarge("x"): 413,
        UnsupportedMediaType("x"): 415,
        errors.NotAuthentic("x"): 401,
        errors.NotAuthorised("x"): 403,
        errors.NotFound("x"): 404,
        NoSuchParty("x"): 404,
        errors.ConfigError("x"): 503,
        errors.StorageFailure("x"): 503,
        errors.NoteError("x"): 422,
        errors.LedgerError("x"): 422,
        errors.BatchRejected([(0, errors.MalformedInput("x"))]): 422,
    }
    assert {type(e).__name__: status_of(e) for e in expected} == {
        type(e).__name__: s for e, s in expected.items()
    }
    assert set(STATUS) <= {type(e) for e in expected}
    # Through the routes: the same class answers alike wherever it is raised.
    refused(http("GET", "/proof/consistency/5/3"), 400, "bad_proof")
    refused(http("GET", "/01/09506000134353"), 400, "bad_identifier")
    refused(http("GET", "/qr/01/09506000134353.png"), 400, "bad_identifier")
    refused(http("GET", "/01/09506000134352/21/1", params={"linkType": "nope"}), 400, "bad_link_type")
    refused(http("GET", "/01/09506000134352/21/nothing-here"), 404, "not_found")
    refused(http("GET", f"/proof/inclusion/0/{10**6}"), 404, "not_found")


def test_request_json_is_read_as_the_cli_reads_it(world: World, http: Http, tmp_path: Path) -> None:
    """Duplicate keys, bytes that are not UTF-8, nesting 10,000 deep, integers past 2^53,
    and a body that is not an object are refusals (400, with the reason), not parsed
    leniently nor answered 500."""

    def post(body: bytes, ctype: str = "application/json") -> httpx.Response:
        return http("POST", "/graphql", content=body, headers={"Content-Type": ctype})

    dup = refused(
        post(b'{"query": "{ viewer { kind } }", "query": "{ viewer { party } }"}'), 400, "malformed"
    )
    assert 'has the key "query" more than once' in dup
    # The CLI says the same of the same text.
    (tmp_path / "dup.json").write_bytes(b'{"a": 1, "a": 2}')
    cli = subprocess.run(
        [sys.executable, "-m", "tools.cli", "submit", str(tmp_path / "dup.json")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": "/usr/bin:/bin"},
    )
    assert cli.returncode == 2 and 'has the key "a" more than once' in cli.stderr
    assert "more than once" in refused(
        post(
            b'{"query": "query($o: JSON!) { taxFor(order: $o) { total } }", '
            b'"variables": {"o": {"x": 1, "x": 2}}}'
        ),
        400,
        "malformed",
    )
    assert "not valid UTF-8" in refused(post(b'{"query": "{ viewer { kind } }\xff"}'), 400, "malformed")
    assert "not valid UTF-8" in refused(post(b"\xff\xfe{"), 400, "malformed")
    deep = "[" * 10_000 + "]" * 10_000
    body = '{"query": "query($o: JSON!) { taxFor(order: $o) { total } }", "variables": {"o": %s}}'
    assert "deeper than 32 levels" in refused(post((body % deep).encode()), 400, "malformed")
    assert "deeper than 32 levels" in refused(
        http("GET", "/graphql", params={"query": "{ viewer { kind } }", "variables": deep}), 400, "malformed"
    )
    refused(post((body % str(2**60)).encode()), 400, "malformed")
    for scalar in (b"null", b"1", b'"x"', b"true"):
        assert "is a JSON object" in refused(post(scalar), 400, "malformed")
    refused(post(b"[]"), 400, "malformed")  # batching is off
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "application/graphql"):
        refused(post(b'{"query": "{ viewer { kind } }"}', ctype), 415, "unsupported_media_type")
    # A subscription is a WebSocket's, not an HTTP request's.
    e = gql_error(http.gql("subscription { entries { seq } }"))
    assert e["extensions"]["code"] == "subscription_over_http"
    # NUL is in no code, id or name; PostgreSQL cannot even compare with one.
    for r in (
        http.gql('{ journey(code: "JP\\u0000") { code } }'),
        http.gql("query($p: String!) { party(id: $p) { id } }", p="uscc:\x00"),
        http.gql("query($o: String!) { parties(role: $o) { id } }", o="x\x00"),
    ):
        e = gql_error(r)
        assert e["extensions"]["code"] == "malformed" and "NUL" in e["message"]
    # Envelopes are documents: the ledger refuses each one by itself (test_admission shows
    # the path of the NUL named), not the whole request.
    r = http.gql(
        "mutation($e: [JSON!]!) { submit(envelopes: $e) { index error { code message } } }",
        e=[{"statement": {"kind": "x\x00"}}],
    )
    (got,) = r.json()["data"]["submit"]
    assert got["error"]["code"] == "malformed", got
    # A variable that does not coerce is the request's fault, said as such, not masked.
    e = gql_error(http.gql("query($o: JSON!) { taxFor(order: $o) { total } }", o=None))
    assert "Variable '$o'" in e["message"]


def test_query_cost_is_bounded_before_it_runs(world: World, http: Http) -> None:
    """Five aliases of parties{entries(first:1000){…}} returned 48 MB: refused now, with
    its estimated cost, before any resolver reads anything."""
    for _ in range(3):
        world.register()
    sel = "{ id entries(first: 1000) { edges { node { seq bytes statement signatures } } } }"
    attack = "{ " + " ".join(f"a{i}: parties {sel}" for i in range(5)) + " }"
    e = gql_error(http.gql(attack))
    assert e["extensions"]["code"] == "too_costly" and e["extensions"]["limit"] == MAX_COST
    assert e["extensions"]["cost"] > MAX_COST and "fewer" in e["message"]
    assert http.gql(attack).json()["data"] is None
    # One alias is still too much; a variable page size counts as its value.
    one = "query($n: Int) { parties { entries(first: $n) { edges { node { seq } } } } }"
    assert gql_error(http.gql(one, n=1000))["extensions"]["code"] == "too_costly"
    assert "errors" not in http.gql(one, n=5).json()
    # A full page of entries with every field is a fair question.
    page = (
        "{ entries(first: 1000) { edges { cursor node { seq leafHash bytes time prev kind "
        "signer statement signatures stage private { commitment status } signerParty { name } "
        "} } pageInfo { hasNextPage endCursor } } }"
    )
    got = http.gql(page).json()
    assert "errors" not in got and len(got["data"]["entries"]["edges"]) == world.ledger.size()
    # Fragments count as what they select.
    frag = (
        "query { ...P } fragment P on Query { a: parties { ...E } b: parties { ...E } } "
        "fragment E on Party { entries(first: 1000) { edges { node { seq bytes } } } }"
    )
    assert gql_error(http.gql(frag))["extensions"]["code"] == "too_costly"


def test_a_body_over_the_limit_is_answered_413(http: Http) -> None:
    big = b'{"query": "{ viewer { kind } }", "pad": "' + b"x" * MAX_BODY + b'"}'
    msg = refused(
        http("POST", "/graphql", content=big, headers={"Content-Type": "application/json"}), 413, "too_large"
    )
    assert f"over the limit of {MAX_BODY:,} bytes" in msg
    # Every route: the limit holds before routing, whatever would read the body.
    refused(http("POST", "/healthz", content=big), 413, "too_large")
    refused(http("POST", "/graphql", content=b"{}", headers={"Content-Length": "nope"}), 400, "malformed")


def _read_status(sock: socket.socket) -> tuple[int, bytes]:
    got = b""
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(65536)
        if not chunk:
            break
        got += chunk
    head, _, rest = got.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head + b"\r\n\r\n" + rest


def test_a_big_body_is_refused_before_it_is_read(world: World) -> None:
    """On a real socket: a 50 MB Content-Length is answered 413 after its first kilobyte,
    and a chunked body as soon as it passes the limit."""
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    try:
        with Server(app) as srv:
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
                s.sendall(
                    b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                    b"\r\nContent-Length: 50000000\r\n\r\n" + b"x" * 1024
                )
                status, raw = _read_status(s)
            assert status == 413 and b'"too_large"' in raw and b"50,000,000 bytes" in raw

            chunk = b"x" * (1 << 20)
            sent = 0
            with socket.create_connection(("127.0.0.1", srv.port), timeout=30) as s:
                s.sendall(
                    b"POST /graphql HTTP/1.1\r\nHost: t\r\nContent-Type: application/json"
                    b"\r\nTransfer-Encoding: chunked\r\n\r\n"
                )
                try:
                    for _ in range(50):
                        s.sendall(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                        sent += len(chunk)
                        # Stop sending as soon as the server has answered.
                        if select.select([s], [], [], 0.2)[0]:
                            break
                except OSError:
                    pass  # the server answered and closed while we were still sending
                status, raw = _read_status(s)
            assert status == 413 and b'"too_large"' in raw
            assert sent < MAX_BODY + 8 * len(chunk)  # the limit, and what was on its way
    finally:
        app.state.store.dispose()


def test_websocket_messages_that_are_not_json_close_the_socket(world: World) -> None:
    from websockets.sync.client import connect

    app = create_app(Settings(db_url=world.url, home=world.home.path))
    try:
        with Server(app) as srv:
            for message in ("[" * 10_000, '{"type": "connection_init", "type": "x"}'):
                with connect(
                    f"ws://127.0.0.1:{srv.port}/graphql", subprotocols=["graphql-transport-ws"]
                ) as ws:  # type: ignore[list-item]
                    ws.send(message)
                    with pytest.raises(Exception) as closed:
                        ws.recv(timeout=10)
                    assert "4400" in str(closed.value)
    finally:
        app.state.store.dispose()


def test_no_route_answers_500_to_hostile_input(world: World, http: Http) -> None:
    item = FormulaChain(world).build()["sold"].removeprefix("https://id.gs1.org")
    paths = [
        "/healthz",
        "/checkpoint",
        "/log-key",
        "/.well-known/gs1resolver",
        item,
        "/00/106141411234567897",
        f"/qr{item}.png",
        f"/qr{item}.svg",
        "/01/%ff%fe%fd",
        "/01/" + "9" * 5000,
        item + "/%00",
        item + "?linkType=%ff",
        item + "?lang=%ff%00",
        "/qr/%ff.png",
        "/qr/01/%00.svg",
        "/00/%ff",
        "/01/09506000134352/10/%ff/21/1",
        "/proof/inclusion/%ff/1",
        "/proof/consistency/1/" + "9" * 400,
        "/graphql?query=%ff",
        "/graphql?query={viewer{kind}}&variables=%ff",
        "/graphql?query={viewer{kind}}&variables=" + "[" * 3000,
        '/graphql?query={viewer{kind}}&variables={"a":1,"a":2}',
        "/graphql?query=" + "{" * 3000,
        "/graphql?query={viewer{kind}}&operationName=%ff",
    ]
    headers: list[dict[str, Any]] = [
        {},
        {"Accept": "text/html"},
        {"Accept": "text/html;q=nan, application/json;q=1e999"},
        {"Accept-Language": "en;q=abc,zh;q=-1,*"},
        {"Accept": b"\xff\xfe text/html"},
        {"If-None-Match": "x" * 10_000},
        {"User-Agent": b"\xff\x01 Mozilla/5.0"},
        {"X-Forwarded-For": "%%%", "X-Region": b"\xff"},
        {"Authorization": "Bearer " + "A" * 5000},
        {"Content-Type": "application/json"},
    ]
    for path in paths:
        for h in headers:
            for method in ("GET", "HEAD", "OPTIONS", "POST", "PUT", "DELETE"):
                r = http(method, path, headers=h, content=b"[" * 2000)
                assert r.status_code < 500, (method, path, h, r.status_code, r.text[:200])
    queries = [
        "{ entry(seq: -1) { seq } }",
        "{ entries(first: -1) { edges { cursor } } }",
        "{ entries(first: 2147483647) { edges { cursor } } }",
        '{ entries(after: "%%%") { edges { cursor } } }',
        '{ entries(since: "9999-99-99T00:00:00Z") { edges { cursor } } }',
        "{ inclusionProof(seq: 0, treeSize: -1) { hashes } }",
        "{ inclusionProof(seq: 0, treeSize: 2147483647) { hashes } }",
        "{ consistencyProof(first: 3, second: -5) { hashes } }",
        "{ entry(seq: 1) { inclusionProof(treeSize: 0) { hashes } } }",
        "{ entry(seq: 99999999999) { seq } }",
        f'{{ upstream(code: "{item}", depth: -5) {{ code }} }}',
        f'{{ downstream(code: "{item}", depth: 2147483647) {{ code }} }}',
        '{ journey(code: "\\u0000") { code } }',
        '{ trace(code: "' + "9" * 20_000 + '") { code } }',
        '{ party(id: "\\u0000") { id } }',
        '{ parties(role: "\\u0000") { id } }',
        "{ taxFor(order: 5) { total } }",
        "{ taxFor(order: {cbec_orderInfo: 1}) { total } }",
        'mutation { issueTraceCodes(codes: ["\\u0000", "%ff"], format: "png") { code } }',
        "mutation { submit(envelopes: [1]) { index } }",
        "mutation { submit(envelopes: [{statement: [], signatures: {}}]) { index } }",
    ]
    for q in queries:
        r = http.gql(q)
        assert r.status_code < 500, (q, r.text[:300])
        assert "Unexpected error" not in r.text, (q, r.text[:300])
    for order in ([1], "x", {"cbec:orderInfo": []}, {"cbec:orderInfo": {"goodsValue": "9" * 5000}}):
        r = http.gql("query($o: JSON!) { taxFor(order: $o) { total } }", o=order)
        assert r.status_code == 200 and "Unexpected error" not in r.text, (order, r.text[:300])
    assert json.loads(http("GET", "/healthz").text)["ok"] is True
