"""The EPCIS 2.0 query interface of `suyuan serve` (``/epcis/``), on SQLite and PostgreSQL:
the query language against the projections, paging, named queries and their WebSocket
stream, negotiation, access (public bodies only), and the agent's local refusals."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.private import make_blob
from ledger.core.statements import sign_one
from ledger.core.tokens import make_token
from tests.support import Server, World

REPO = Path(__file__).resolve().parent.parent
GS1 = jsonschema.Draft7Validator(
    json.loads((REPO / "tests/fixtures/epcis-standard/EPCIS-JSON-Schema.json").read_text()),
    format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER,
)
LOC = "urn:epc:id:sgln:0614141.00777.0"


class Api:
    def __init__(self, world: World) -> None:
        self.app = create_app(
            Settings(db_url=world.url, home=world.home.path, base_url="https://trace.example")
        )

    def call(self, method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    def events(self, query: str = "", **kw: Any) -> tuple[list[dict[str, Any]], httpx.Response]:
        r = self.call("GET", "/epcis/events" + (f"?{query}" if query else ""), **kw)
        assert r.status_code == 200, r.text
        doc = r.json()
        GS1.validate(doc)
        return doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"], r


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["suyuan:seq"] for e in events]


@pytest.fixture
def chain(world: World) -> Iterator[tuple[World, Api, dict[str, int]]]:
    """A producer's commissioning, an inspection with a purchase order and an eventID, a
    warehouse's shipping with a source and a destination, and a packing of two items."""
    producer, pkey = world.register(["producer"])
    warehouse, wkey = world.register(["warehouse"])
    at: dict[str, int] = {}
    env = world.event(producer, pkey, 1, readPoint={"id": LOC})
    at["commission"] = world.ledger.append(env).seq
    env = sign_one(
        kind="event",
        signer=producer,
        key=pkey,
        issued="2026-11-27T14:00:00+08:00",
        body={
            "type": "ObjectEvent",
            "eventTime": "2026-11-28T09:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "bizStep": "inspecting",
            "disposition": "conformant",
            "eventID": "urn:uuid:6d7b2a1e-0000-4000-8000-000000000001",
            "epcList": ["urn:epc:id:sgtin:9506000.013435.2"],
            "bizTransactionList": [{"type": "po", "bizTransaction": "urn:x:po:77"}],
        },
    )
    at["inspect"] = world.ledger.append(env).seq
    env = sign_one(
        kind="event",
        signer=warehouse,
        key=wkey,
        issued="2026-11-29T10:00:00+08:00",
        body={
            "type": "ObjectEvent",
            "eventTime": "2026-11-29T10:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "OBSERVE",
            "bizStep": "shipping",
            "disposition": "in_transit",
            "epcList": ["https://id.gs1.org/01/09506000134352/21/1"],
            "bizLocation": {"id": LOC},
            "sourceList": [{"type": "owning_party", "source": "urn:x:party:a"}],
            "destinationList": [{"type": "owning_party", "destination": "urn:x:party:b"}],
        },
    )
    at["ship"] = world.ledger.append(env).seq
    env = sign_one(
        kind="event",
        signer=producer,
        key=pkey,
        issued="2026-11-27T15:00:00+08:00",
        body={
            "type": "AggregationEvent",
            "eventTime": "2026-11-27T15:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "packing",
            "parentID": "urn:epc:id:sscc:0614141.1234567890",
            "childEPCs": [
                "https://id.gs1.org/01/09506000134352/21/1",
                "https://id.gs1.org/01/09506000134352/21/2",
            ],
        },
    )
    at["pack"] = world.ledger.append(env).seq
    api = Api(world)
    yield world, api, at
    api.app.state.store.dispose()


def test_each_parameter_selects_what_it_names(chain: tuple[World, Api, dict[str, int]]) -> None:
    _, api, at = chain
    everything, _ = api.events()
    assert seqs(everything) == sorted(at.values())
    cases = {
        "eventType=AggregationEvent": [at["pack"]],
        "eventType=ObjectEvent|AggregationEvent": sorted(at.values()),
        "EQ_action=OBSERVE": [at["inspect"], at["ship"]],
        "EQ_bizStep=shipping|packing": [at["ship"], at["pack"]],
        "EQ_bizStep=https://ref.gs1.org/cbv/BizStep-inspecting": [at["inspect"]],
        "EQ_disposition=in_transit": [at["ship"]],
        f"EQ_readPoint={LOC}": [at["commission"]],
        f"WD_bizLocation={LOC}": [at["ship"]],
        "GE_eventTime=2026-11-28T00:00:00Z": [at["inspect"], at["ship"]],
        "LT_eventTime=2026-11-27T07:00:00.000Z": [at["commission"]],
        "MATCH_epc=https://id.gs1.org/01/09506000134352/21/1": [at["commission"], at["ship"], at["pack"]],
        "MATCH_epc=https://id.gs1.org/01/09506000134352/21/2": [at["inspect"], at["pack"]],
        "MATCH_parentID=https://id.gs1.org/00/106141412345678908": [at["pack"]],
        "MATCH_anyEPC=urn:epc:id:sscc:0614141.1234567890": [at["pack"]],
        "MATCH_epc=urn:epc:idpat:sgtin:9506000.013435.*": sorted(at.values()),
        "MATCH_epcClass=urn:epc:idpat:sgtin:9506000.013435.*": [],
        "EQ_bizTransaction_po=urn:x:po:77": [at["inspect"]],
        "EQ_bizTransaction_desadv=urn:x:po:77": [],
        "EQ_source_owning_party=urn:x:party:a": [at["ship"]],
        "EQ_destination_owning_party=urn:x:party:a": [],
        "EQ_eventID=urn:uuid:6d7b2a1e-0000-4000-8000-000000000001": [at["inspect"]],
    }
    for query, want in cases.items():
        got, _ = api.events(query.replace("|", "%7C"))
        assert seqs(got) == want, query


def test_record_time_order_and_limits(chain: tuple[World, Api, dict[str, int]]) -> None:
    world, api, at = chain
    last = world.ledger.entry(at["pack"]).decoded()["time"]
    got, _ = api.events(f"GE_recordTime={last}")
    assert seqs(got) == [at["pack"]]
    got, _ = api.events(f"LT_recordTime={last}")
    assert at["pack"] not in seqs(got)
    got, _ = api.events("orderBy=eventTime")  # DESC by default
    assert seqs(got) == [at["ship"], at["inspect"], at["pack"], at["commission"]]
    got, _ = api.events("orderBy=eventTime&orderDirection=ASC&eventCountLimit=2")
    assert seqs(got) == [at["commission"], at["pack"]]
    # eventCountLimit holds across pages.
    got, r = api.events("orderBy=recordTime&eventCountLimit=3&perPage=2")
    assert seqs(got) == [at["pack"], at["ship"]]
    nxt = r.headers["link"].split(">")[0][1:].replace("http://test", "")
    more = api.call("GET", nxt).json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert seqs(more) == [at["inspect"]] and "link" not in api.call("GET", nxt).headers
    r = api.call("GET", "/epcis/events?maxEventCount=3")
    assert r.status_code == 413 and r.json()["type"] == "epcisException:QueryTooLargeException"
    got, _ = api.events("maxEventCount=4")
    assert len(got) == 4


def test_pages_follow_the_link_header_to_the_end(chain: tuple[World, Api, dict[str, int]]) -> None:
    _, api, at = chain
    found, url = [], "/epcis/events?perPage=1"
    while url:
        r = api.call("GET", url)
        assert r.status_code == 200 and r.headers["gs1-epcis-version"] == "2.0.0"
        found += r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        link = r.headers.get("link")
        url = link.split(">")[0][1:].replace("http://test", "") if link else ""
        assert not link or link.endswith('rel="next"')
    assert seqs(found) == sorted(at.values())
    # A token of another query, or a forged one, is refused.
    token = api.call("GET", "/epcis/events?perPage=1").headers["link"].split("nextPageToken=")[1]
    token = token.split("&")[0].split(">")[0]
    for bad in (f"eventType=ObjectEvent&nextPageToken={token}", "nextPageToken=xyz"):
        r = api.call("GET", f"/epcis/events?{bad}")
        assert r.status_code == 400
        assert r.json()["type"] == "epcisException:QueryParameterException"


def test_each_event_says_where_it_is_and_carries_no_private_data(
    chain: tuple[World, Api, dict[str, int]],
) -> None:
    world, api, at = chain
    party, key = world.register(["producer"])
    commitment, blob = make_blob({"buyer": "张三 13800000000"})
    env = sign_one(
        kind="event",
        signer=party,
        key=key,
        issued="2026-11-27T13:05:00+08:00",
        body={
            "type": "ObjectEvent",
            "eventTime": "2026-11-30T13:05:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": ["https://id.gs1.org/01/09506000134352/21/9"],
        },
        private=commitment,
    )
    seq = world.ledger.append_batch([env], private={commitment: blob})[0].seq
    # Even a regulator's token reads public bodies only here.
    reg, rkey = world.register(["regulator"])
    token = make_token(rkey, signer=reg, audience=world.ledger.origin())
    got, r = api.events(
        "MATCH_epc=https://id.gs1.org/01/09506000134352/21/9", headers={"Authorization": f"Bearer {token}"}
    )
    assert "13800000000" not in r.text and "private" not in r.text
    event = got[0]
    entry = world.ledger.entry(seq)
    assert event["suyuan:seq"] == seq and event["suyuan:leafHash"] == entry.leaf_hash.hex()
    assert event["recordTime"] == entry.decoded()["time"]
    body = {k: v for k, v in event.items() if not k.startswith("suyuan:") and k != "recordTime"}
    assert body == entry.decoded()["envelope"]["statement"]["body"]
    assert r.json()["@context"][1]["suyuan"] == "https://suyuan.example/ledger#"


def test_unsupported_and_unknown_parameters(chain: tuple[World, Api, dict[str, int]]) -> None:
    _, api, _ = chain
    for query in (
        "EQ_quantity=3",
        "EQ_persistentDisposition_set=active",
        "GE_startTime=2026-01-01T00:00:00Z",
        "EQ_INNER_ILMD_x=1",
        "orderBy=cbec:value",
        "EXISTS_errorDeclaration=true",
    ):
        r = api.call("GET", f"/epcis/events?{query}")
        assert r.status_code == 501, query
        assert r.json()["type"] == "epcisException:ImplementationException"
    for query in (
        "colour=red",
        "EQ_action=MOVE",
        "eventCountLimit=3",
        "GE_eventTime=yesterday",
        "orderDirection=UP",
        "eventCountLimit=2&maxEventCount=3&orderBy=eventTime",
        "EQ_action=ADD&EQ_action=OBSERVE",
    ):
        r = api.call("GET", f"/epcis/events?{query}")
        assert r.status_code == 400, query
        assert r.headers["content-type"] == "application/problem+json"
    r = api.call("GET", "/epcis/events/urn:uuid:6d7b2a1e-0000-4000-8000-000000000001")
    assert r.status_code == 200
    assert api.call("GET", "/epcis/events/urn:uuid:nothing").status_code == 404


def test_resources_and_negotiation(chain: tuple[World, Api, dict[str, int]]) -> None:
    _, api, at = chain
    r = api.call("GET", "/epcis/epcs/https://id.gs1.org/01/09506000134352/21/2/events")
    events = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
    assert seqs(events) == [at["inspect"], at["pack"]]
    r = api.call("GET", "/epcis/bizSteps/shipping/events")
    assert seqs(r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == [at["ship"]]
    assert api.call("GET", "/epcis/bizSteps/shipping/events?EQ_bizStep=packing").status_code == 400
    members = api.call("GET", "/epcis/readPoints").json()["member"]
    assert members == ["https://id.gs1.org/414/0614141007776"]
    epcs = api.call("GET", "/epcis/epcs").json()["member"]
    assert "https://id.gs1.org/00/106141412345678908" in epcs
    r = api.call("OPTIONS", "/epcis/events")
    assert r.status_code == 204 and r.headers["gs1-epcis-max"] == "2.0.0"
    r = api.call("GET", "/epcis/events", headers={"Accept": "application/xml"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/xml"
    r = api.call("GET", "/epcis/readPoints", headers={"Accept": "application/xml"})
    assert r.status_code == 406 and "XML" in r.json()["detail"]
    r = api.call("GET", "/epcis/events", headers={"Accept": "application/ld+json"})
    assert r.headers["content-type"] == "application/ld+json"
    r = api.call("GET", "/epcis/events", headers={"GS1-EPCIS-Min": "2.1"})
    assert r.status_code == 406
    r = api.call("POST", "/epcis/capture", json={})
    assert r.status_code == 501 and "suyuan agent" in r.json()["detail"]


def test_named_queries_need_a_token_and_stream_new_events(chain: tuple[World, Api, dict[str, int]]) -> None:
    world, api, at = chain
    body = {"name": "shipped", "query": {"EQ_bizStep": ["shipping"]}}
    r = api.call("POST", "/epcis/queries", json=body)
    assert r.status_code == 401
    owner, okey = world.register(["producer"])
    other, xkey = world.register(["producer"])
    auth = {"Authorization": f"Bearer {make_token(okey, signer=owner, audience=world.ledger.origin())}"}
    r = api.call("POST", "/epcis/queries", json=body, headers=auth)
    assert r.status_code == 201 and r.headers["location"] == "queries/shipped"
    assert api.call("POST", "/epcis/queries", json=body, headers=auth).status_code == 409
    bad = {"name": "bad", "query": {"EQ_colour": ["red"]}}
    assert api.call("POST", "/epcis/queries", json=bad, headers=auth).status_code == 501
    assert api.call("GET", "/epcis/queries").json() == [body]
    r = api.call("GET", "/epcis/queries/shipped/events")
    assert seqs(r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == [at["ship"]]
    assert r.json()["epcisBody"]["queryResults"]["queryName"] == "shipped"

    # The stream: a WebSocket gets each new shipping event, and nothing else.
    import websockets.exceptions
    import websockets.sync.client as ws_client

    warehouse, wkey = world.register(["warehouse"])
    with Server(api.app) as server:
        url = f"ws://127.0.0.1:{server.port}/epcis/queries/shipped/events?stream=true"
        with ws_client.connect(url) as ws:
            world.ledger.append(world.event(owner, okey, 50))
            env = sign_one(
                kind="event",
                signer=warehouse,
                key=wkey,
                issued="2026-11-29T10:00:00+08:00",
                body={
                    "type": "ObjectEvent",
                    "eventTime": "2026-12-01T10:00:00+08:00",
                    "eventTimeZoneOffset": "+08:00",
                    "action": "OBSERVE",
                    "bizStep": "shipping",
                    "epcList": ["https://id.gs1.org/01/09506000134352/21/50"],
                },
            )
            seq = world.ledger.append(env).seq
            doc = json.loads(ws.recv(timeout=10))
            GS1.validate(doc)
            assert seqs(doc["epcisBody"]["queryResults"]["resultsBody"]["eventList"]) == [seq]

            other_auth = {
                "Authorization": "Bearer " + make_token(xkey, signer=other, audience=world.ledger.origin())
            }
            assert api.call("DELETE", "/epcis/queries/shipped", headers=other_auth).status_code == 403
            assert api.call("DELETE", "/epcis/queries/shipped", headers=auth).status_code == 204
            # Deleting a query ends its subscriptions.
            with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
                ws.recv(timeout=10)
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4410
    assert api.call("GET", "/epcis/queries/shipped").status_code == 404


def test_agent_refusals_at_its_door(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.agent import AgentConfig, create_agent_app
    from tools.cli import main

    # Beyond loopback without a token file: it refuses to start, before binding.
    assert (
        main(
            [
                "agent",
                "--key",
                "k",
                "--signer",
                "uscc:91310110666007217T",
                "--ledger",
                "http://127.0.0.1:9",
                "--host",
                "0.0.0.0",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert "error [config]" in err and "--token-file" in err
    cfg = AgentConfig(
        key=PartyKey.generate("k"),
        signer="uscc:91310110666007217T",
        ledger_url="http://127.0.0.1:9",
        db_url=f"sqlite:///{tmp_path}/o.db",
        token="s3cret-s3cret-s3cret",
    )
    app = create_agent_app(cfg)

    def call(method: str, path: str, **kw: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://a") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())

    ok = {"Authorization": "Bearer s3cret-s3cret-s3cret"}
    assert call("GET", "/epcis/capture").status_code == 401
    assert call("GET", "/epcis/capture", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert call("GET", "/epcis/capture", headers=ok).json() == []
    r = call("POST", "/ceb", content=b"<CEB311Message/>", headers=ok)
    # No matching key in this agent's configuration: customs messages are 501, with the fix.
    assert r.status_code == 501 and "zone.key" in r.json()["detail"]
    # XML is read (test_agent shows a capture landing); this is no EPCIS document: 400.
    r = call("POST", "/epcis/capture", content=b"<epcis/>", headers={**ok, "Content-Type": "application/xml"})
    assert r.status_code == 400
    r = call("POST", "/epcis/capture", content=b"a,b", headers={**ok, "Content-Type": "text/csv"})
    assert r.status_code == 415
    r = call("POST", "/epcis/capture", content=b"{not json", headers=ok)
    assert r.status_code == 400 and r.json()["type"] == "epcisException:ValidationException"
    big = {"type": "EPCISDocument", "epcisBody": {"eventList": [{"type": "ObjectEvent"}] * 1001}}
    r = call("POST", "/epcis/capture", json=big, headers=ok)
    assert r.status_code == 413
    assert r.json()["type"] == "epcisException:CaptureLimitExceededException"
    assert call("GET", "/epcis/capture/cap-none", headers=ok).status_code == 404
    app.state.outbox.dispose()
