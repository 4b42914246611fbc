"""GS1's EPCIS 2.0 REST query bindings on the ledger, under ``/epcis/``: events with the
query language (ledger/queries/epcis_query.py), the top-level resources, named queries and their
subscriptions over WebSocket. Capture happens at each enterprise (`suyuan agent`), so the
capture operations here answer 501, as does every other operation the bindings list and
this ledger does not offer (webhook subscriptions).

Access is GraphQL's: anyone reads public event bodies, never private data. Named queries
are created by a party with a bearer token and deleted by it or a regulator.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any, Final

import anyio.from_thread
import anyio.to_thread
import orjson
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from api.auth import scope_viewer
from api.epcis_http import (
    JSON,
    NotImplementedHere,
    ResourceExists,
    check_versions,
    document,
    link_next,
    media_type,
    options,
    problem,
)
from ledger.core.errors import LedgerError, NotAuthentic, NotAuthorised, NotFound
from ledger.core.times import utc_text
from ledger.log.sequencer import Ledger
from ledger.queries import epcis_query as eq
from ledger.store import epcisdb
from ledger.store.db import Store

TOP_LEVEL: Final = [
    "events",
    "eventTypes",
    "epcs",
    "bizSteps",
    "bizLocations",
    "readPoints",
    "dispositions",
    "capture",
    "queries",
]
COLLECTION_CONTEXT: Final = "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld"
# /{resource}/{value}/events is /events with one more parameter.
RESOURCE_PARAMETER: Final = {
    "eventTypes": "eventType",
    "bizSteps": "EQ_bizStep",
    "bizLocations": "EQ_bizLocation",
    "readPoints": "EQ_readPoint",
    "dispositions": "EQ_disposition",
    "epcs": "MATCH_anyEPC",
}
QUERY_NAME = re.compile(r"[A-Za-z0-9._~-]{1,200}")
MAX_QUERIES_PER_PARTY: Final = 100
POLL_SECONDS = 0.5  # how often a subscription looks for new entries
_PAGING: Final = ("perPage", "nextPageToken")

Handler = Callable[[Request], Response]


def _guarded(allow: str, fn: Handler) -> Callable[[Request], Awaitable[Response]]:
    """OPTIONS answered; versions checked; refusals as RFC 7807 problems; the work on a
    thread (it reads the database)."""

    async def endpoint(request: Request) -> Response:
        if request.method == "OPTIONS":
            return options(allow)
        try:
            check_versions(request)
            return await anyio.to_thread.run_sync(fn, request)
        except LedgerError as e:
            return problem(e)

    return endpoint


def _per_page(request: Request) -> int:
    text = request.query_params.get("perPage")
    if text is None:
        return eq.DEFAULT_PER_PAGE
    try:
        n = int(text)
    except ValueError:
        raise eq.QueryParameterException(f"perPage is an integer, not {text[:40]!r}") from None
    # The bindings let a server cap perPage; below 1 is read as 1.
    return min(max(n, 1), eq.MAX_PER_PAGE)


def _params(request: Request, **extra: str) -> dict[str, list[str]]:
    items = [(k, v) for k, v in request.query_params.multi_items() if k not in _PAGING]
    for k in extra:
        if any(name == k for name, _ in items):
            raise eq.QueryParameterException(f"{k} is given by the path; leave it out of the query")
    return eq.params_of_url([*items, *extra.items()])


def _events_page(
    ledger: Ledger, request: Request, params: dict[str, list[str]], *, query_name: str = eq.QUERY_NAME
) -> Response:
    kind = media_type(request, xml=True)
    per_page = _per_page(request)
    page = eq.run_query(
        ledger.store,
        eq.parse_query(params),
        per_page=per_page,
        token=request.query_params.get("nextPageToken"),
    )
    headers = link_next(request, page.next_token, per_page) if page.next_token else {}
    doc = eq.query_document(ledger.store, page.events, query_name=query_name)
    return document(doc, kind, headers=headers, xml=eq.query_xml)


def _collection(members: list[str], *, context: Any = COLLECTION_CONTEXT) -> dict[str, Any]:
    return {"@context": context, "type": "Collection", "member": members}


def _now() -> str:
    return utc_text(digits=3)


def routes(ledger: Ledger, reader: Ledger | None = None) -> list[BaseRoute]:
    """The routes to mount at ``/epcis``. Events and vocabularies are read through
    ``reader`` (the read replicas, one snapshot per request; default ``ledger``); named
    queries are defined on ``ledger``'s primary and read back from it, so a query just
    created is found at once."""
    store = ledger.store
    reader = reader or ledger
    events_store = reader.store

    def top(request: Request) -> Response:
        return document(_collection(TOP_LEVEL), media_type(request))

    def events(request: Request) -> Response:
        if request.method == "POST":
            raise NotImplementedHere(
                "capture is at each enterprise's `suyuan agent` (POST "
                "/epcis/capture there), which signs with its own key"
            )
        return _events_page(reader, request, _params(request))

    def event(request: Request) -> Response:
        kind = media_type(request, xml=True)
        found = eq.first_event(events_store, {"EQ_eventID": [request.path_params["eventID"]]})
        if found is None:
            raise NotFound(f"no event on this ledger has eventID {request.path_params['eventID'][:100]}")
        return document(eq.query_document(events_store, [found]), kind, xml=eq.query_xml)

    def vocabulary(resource: str) -> Handler:
        def endpoint(request: Request) -> Response:
            kind = media_type(request)
            per_page = _per_page(request)
            page = eq.vocabulary_page(
                events_store, resource, per_page=per_page, token=request.query_params.get("nextPageToken")
            )
            context: Any = COLLECTION_CONTEXT
            if resource in ("bizSteps", "dispositions"):
                context = eq.query_context(page.members)
            headers = link_next(request, page.next_token, per_page) if page.next_token else {}
            return document(_collection(page.members, context=context), kind, headers=headers)

        return endpoint

    def sub_resource(request: Request) -> Response:
        return document(_collection(["events"]), media_type(request))

    def resource_events(resource: str) -> Handler:
        def endpoint(request: Request) -> Response:
            value = request.path_params["value"]
            return _events_page(reader, request, _params(request, **{RESOURCE_PARAMETER[resource]: value}))

        return endpoint

    def capture(request: Request) -> Response:
        raise NotImplementedHere(
            "capture is at each enterprise's `suyuan agent`, which signs "
            "its events with its own key and submits them to this ledger"
        )

    def queries(request: Request) -> Response:
        if request.method == "POST":
            return _create_query(request)
        kind = media_type(request)
        per_page = _per_page(request)
        after = request.query_params.get("nextPageToken")
        with store.reading() as conn:
            found = epcisdb.named_queries(conn, after=after, limit=per_page + 1)
        page = found[:per_page]
        body = [{"name": q.name, "query": orjson.loads(q.query)} for q in page]
        headers = link_next(request, page[-1].name, per_page) if len(found) > per_page else {}
        return Response(
            orjson.dumps(body),
            media_type=kind,
            headers={"GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0", **headers},
        )

    def _create_query(request: Request) -> Response:
        viewer = scope_viewer(request.scope)
        if viewer.kind == "public" or viewer.party is None:
            raise NotAuthentic(
                "creating a named query needs a party's bearer token (`suyuan token --key NAME --signer ID`)",
                code="token_required",
            )
        try:
            doc = orjson.loads(request_body(request))
        except orjson.JSONDecodeError:
            raise eq.QueryParameterException("the body is a JSON object {name, query}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("name"), str):
            raise eq.QueryParameterException('the body is {"name": …, "query": {…}}')
        name = doc["name"]
        if not QUERY_NAME.fullmatch(name):
            raise eq.QueryParameterException("a query name is 1 to 200 letters, digits or . _ ~ -")
        params = eq.params_of_json(doc.get("query"))
        eq.parse_query(params)  # refused now, not when it is run
        with store.writing() as conn:
            if epcisdb.count_queries(conn, viewer.party) >= MAX_QUERIES_PER_PARTY:
                raise NotAuthorised(
                    f"{viewer.party} has {MAX_QUERIES_PER_PARTY} named queries; delete one first",
                    code="too_many_queries",
                )
            saved = epcisdb.save_query(
                conn,
                epcisdb.NamedQuery(
                    name=name, query=orjson.dumps(doc["query"]).decode(), owner=viewer.party, created=_now()
                ),
            )
        if not saved:
            raise ResourceExists(f"a query named {name} exists; choose another name")
        return Response(
            status_code=201,
            headers={"Location": f"queries/{name}", "GS1-EPCIS-Version": "2.0.0", "GS1-CBV-Version": "2.0.0"},
        )

    def named(request: Request) -> epcisdb.NamedQuery:
        with store.reading() as conn:
            q = epcisdb.named_query(conn, request.path_params["name"])
        if q is None:
            raise NotFound(f"no named query {request.path_params['name'][:100]}")
        return q

    def query(request: Request) -> Response:
        q = named(request)
        if request.method == "DELETE":
            viewer = scope_viewer(request.scope)
            if viewer.kind != "regulator" and viewer.party != q.owner:
                raise NotAuthorised(
                    "a named query is deleted by the party that created it or a regulator", code="not_owner"
                )
            with store.writing() as conn:
                epcisdb.delete_query(conn, q.name)
            return Response(status_code=204)
        return document({"name": q.name, "query": orjson.loads(q.query)}, media_type(request))

    def query_events(request: Request) -> Response:
        q = named(request)
        for name in ("stream", "second", "minute", "hour", "dayOfMonth", "month", "dayOfWeek"):
            if name in request.query_params:
                raise NotImplementedHere(
                    "subscriptions are WebSocket streams: open this URL as a WebSocket with ?stream=true"
                )
        params = eq.params_of_json(orjson.loads(q.query))
        return _events_page(reader, request, params, query_name=q.name)

    def subscriptions(request: Request) -> Response:
        named(request)
        if request.method == "POST":
            raise NotImplementedHere(
                "webhook subscriptions are not offered: this ledger calls "
                "no client URL; subscribe over WebSocket at "
                "queries/{name}/events?stream=true"
            )
        return Response(b"[]", media_type=JSON, headers={"GS1-EPCIS-Version": "2.0.0"})

    def subscription(request: Request) -> Response:
        named(request)
        raise NotFound("no such webhook subscription: this ledger has none")

    def next_page_token(request: Request) -> Response:
        # Tokens are positions, not server state: there is nothing to release.
        return Response(status_code=204)

    out: list[BaseRoute] = [
        Route("/", _guarded("OPTIONS, GET", top), methods=["GET", "OPTIONS"]),
        Route("/events", _guarded("OPTIONS, GET", events), methods=["GET", "POST", "OPTIONS"]),
        Route("/events/{eventID:path}", _guarded("OPTIONS, GET", event), methods=["GET", "OPTIONS"]),
        Route("/capture", _guarded("OPTIONS", capture), methods=["GET", "POST", "OPTIONS"]),
        Route("/capture/{captureID:path}", _guarded("OPTIONS", capture), methods=["GET", "OPTIONS"]),
        Route("/queries", _guarded("OPTIONS, GET, POST", queries), methods=["GET", "POST", "OPTIONS"]),
        Route(
            "/queries/{name}", _guarded("OPTIONS, GET, DELETE", query), methods=["GET", "DELETE", "OPTIONS"]
        ),
        WebSocketRoute("/queries/{name}/events", _subscribe(ledger)),
        Route("/queries/{name}/events", _guarded("OPTIONS, GET", query_events), methods=["GET", "OPTIONS"]),
        Route(
            "/queries/{name}/subscriptions",
            _guarded("OPTIONS, GET", subscriptions),
            methods=["GET", "POST", "OPTIONS"],
        ),
        Route(
            "/queries/{name}/subscriptions/{id}",
            _guarded("OPTIONS", subscription),
            methods=["GET", "DELETE", "OPTIONS"],
        ),
        Route("/nextPageToken/{token:path}", _guarded("DELETE", next_page_token), methods=["DELETE"]),
    ]

    def nowhere(request: Request) -> Response:
        raise NotFound(f"no EPCIS resource at {request.url.path[:120]!r}; GET /epcis/ lists them")

    for resource in eq.VOCABULARIES:
        out += [
            Route(f"/{resource}", _guarded("OPTIONS, GET", vocabulary(resource)), methods=["GET", "OPTIONS"]),
            Route(
                f"/{resource}/{{value:path}}/events",
                _guarded("OPTIONS, GET", resource_events(resource)),
                methods=["GET", "OPTIONS"],
            ),
            Route(
                f"/{resource}/{{value:path}}",
                _guarded("OPTIONS, GET", sub_resource),
                methods=["GET", "OPTIONS"],
            ),
        ]
    # Last: whatever no route above takes (a path holding a line break, which Starlette's
    # path convertor does not match) is a 404 problem, not the router's plain-text 404.
    out.append(
        Route("/{rest:epcis_anything}", _guarded("OPTIONS, GET", nowhere), methods=["GET", "HEAD", "OPTIONS"])
    )
    return out


def mount(ledger: Ledger, reader: Ledger | None = None) -> Mount:
    """``/epcis`` and its routes (see ``routes``), for any path below it: Starlette's mount
    does not take a path holding a line break (``%0A``), which then got the router's
    plain-text 404."""
    m = Mount("/epcis", routes=routes(ledger, reader))
    m.path_regex = re.compile(r"^/epcis/(?P<path>[\s\S]*)$")
    return m


class _Anything(Convertor[str]):
    regex = r"[\s\S]*"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("epcis_anything", _Anything())


def request_body(request: Request) -> bytes:
    """The body, read on the event loop by the caller's thread (the handlers run on one)."""
    return anyio.from_thread.run(request.body)


def _named_query(store: Store, name: str) -> epcisdb.NamedQuery | None:
    with store.reading() as conn:
        return epcisdb.named_query(conn, name)


def _subscribe(ledger: Ledger) -> Callable[[WebSocket], Awaitable[None]]:
    """``queries/{name}/events?stream=true`` as a WebSocket: an EPCISQueryDocument of each
    batch of new events the named query selects, from ``initialRecordTime`` (default now)."""
    store = ledger.store

    async def endpoint(ws: WebSocket) -> None:
        name = ws.path_params["name"]
        q = await anyio.to_thread.run_sync(_named_query, store, name)
        if q is None:
            await ws.close(code=4404, reason=f"no named query {name[:80]}")
            return
        if ws.query_params.get("stream") != "true":
            await ws.close(code=4400, reason="subscribe with ?stream=true; schedules are not offered")
            return
        try:
            query = eq.parse_query(eq.params_of_json(orjson.loads(q.query)))
            start = ws.query_params.get("initialRecordTime")
            if start is not None:
                query = replace(query, record_ge=eq.parse_query({"GE_recordTime": [start]}).record_ge)
        except LedgerError as e:
            await ws.close(code=4400, reason=e.message[:120])
            return
        await ws.accept()
        last = await anyio.to_thread.run_sync(ledger.size)
        if query.record_ge is not None:
            last = (await anyio.to_thread.run_sync(eq.resolve_selection, store, query)).seq_lo
        subscription_id = f"ws-{name}"
        try:
            while True:
                size = await anyio.to_thread.run_sync(ledger.size)
                if await anyio.to_thread.run_sync(_named_query, store, name) is None:
                    await ws.close(code=4410, reason="the named query was deleted")
                    return
                if size > last:
                    await _deliver(ws, store, query, last, size, name, subscription_id)
                    last = size
                # Wait by listening: a client that leaves ends the subscription at once.
                try:
                    message = await asyncio.wait_for(ws.receive(), timeout=POLL_SECONDS)
                except TimeoutError:
                    continue
                if message["type"] == "websocket.disconnect":
                    return
        except WebSocketDisconnect:
            return

    return endpoint


async def _deliver(
    ws: WebSocket, store: Store, query: eq.EventQuery, lo: int, hi: int, name: str, subscription_id: str
) -> None:
    sel = replace(
        await anyio.to_thread.run_sync(eq.resolve_selection, store, query),
        by_event_time=False,
        descending=False,
    )
    sel = replace(sel, seq_lo=max(sel.seq_lo, lo), seq_hi=hi if sel.seq_hi is None else min(sel.seq_hi, hi))
    stream = replace(query, selection=sel, record_ge=None, record_lt=None, count_limit=None, max_count=None)
    token = None
    while True:
        page = await anyio.to_thread.run_sync(
            functools.partial(eq.run_query, store, stream, per_page=eq.MAX_PER_PAGE, token=token)
        )
        if page.events:
            doc = eq.query_document(store, page.events, query_name=name, subscription_id=subscription_id)
            await ws.send_bytes(orjson.dumps(doc))
        if page.next_token is None:
            return
        token = page.next_token
