"""The HTTP face of the ledger: health, the latest checkpoint, the log key, proofs, the
Digital Link resolver with its consumer page, QR codes of Digital Links and GraphQL, every
route behind the bearer-token check (api/auth.py)."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute

from api.auth import BearerAuth
from api.body import BodyLimit
from api.console import console_routes
from api.epcis_rest import mount as epcis_mount
from api.errors import database_error, ledger_error
from api.graphql.app import graphql_app
from api.headers import SecurityHeaders
from api.qr import qr_response
from api.replicas import PrimaryBreaker, ReadSnapshot
from api.resolver import parsed_path, resolve, resolver_description
from api.settings import Settings
from api.tiles import CHECKPOINT_HEADERS, TilesMirror, tile_routes
from api.visitors import Visitors, visitor_secret
from ledger.core.errors import LedgerError, MalformedInput
from ledger.core.ids import DigitalLink
from ledger.log.home import Home
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import Gatherer, Witnessing, cosigned_note
from ledger.queries import scans
from ledger.queries.page import VerificationCache
from ledger.store.db import Store
from ledger.store.failures import DATABASE_ERRORS

PAGE_THREADS = 2  # pages answered at once by one worker process
_TREE_NUMBER = re.compile(r"[0-9]{1,19}")  # ASCII digits only: int() also takes "١" and "1_0"
MAX_TREE_NUMBER = 2**63 - 1  # what a BIGINT column holds


def _tree_number(request: Request, name: str) -> int:
    """A seq or tree size from the path: a decimal integer that fits the database."""
    text = request.path_params[name]
    if _TREE_NUMBER.fullmatch(text) and int(text) <= MAX_TREE_NUMBER:
        return int(text)
    raise MalformedInput(f"{name} is a decimal integer from 0 to {MAX_TREE_NUMBER}, not {text[:40]!r}")


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    store = Store(settings.db_url, read_urls=settings.db_read)
    # The checkpoint key, when this home has it, lets GraphQL `submit` append.
    ledger = Ledger(store, note_signer=Home(settings.home).note_signer_if_any(), log_key=settings.log_key)
    # Reads (GraphQL queries, the page, the resolver, proofs, tiles, the console) go to the
    # replicas of SUYUAN_DB_READ, each request to one snapshot of one of them (ReadSnapshot
    # below); appends, scans and cosignatures go to the primary through `ledger`.
    read_store = store.reader()
    reader = Ledger(read_store, log_key=settings.log_key)
    breaker = PrimaryBreaker(store.engine) if store.replicas else None
    # The witnesses the operator configured (URL, key, quorum): the page counts k of n, and
    # the checkpoint of each GraphQL submit is sent to them for cosigning in the background.
    cfg = Home(settings.home).config() if settings.home else {}
    witnessing = Witnessing.from_config(cfg) if cfg.get("witnesses") else None
    gatherer = (
        Gatherer(ledger, witnessing) if witnessing is not None and ledger.note_signer is not None else None
    )
    graphql = graphql_app(ledger, settings, gatherer.poke if gatherer is not None else None, reader=reader)
    verified = VerificationCache()
    visitors = Visitors(settings.trusted_proxies, visitor_secret(settings.home))
    # The page's scans, written in batches off the request path (to the primary).
    scan_writer = scans.ScanWriter(store, every_ms=settings.scan_batch_ms) if settings.scan_batch_ms else None

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "size": reader.size()})

    # Every LedgerError a route raises is answered by one mapping (api/errors.py).
    def checkpoint(request: Request) -> Response:
        # With every cosignature gathered so far: clients count the quorum themselves.
        return PlainTextResponse(cosigned_note(reader), headers=CHECKPOINT_HEADERS)

    def log_key(request: Request) -> Response:
        # The pinned key (the published one, else the genesis entry's), never a table row.
        return PlainTextResponse(reader.log_verifier().vkey() + "\n")

    def consistency(request: Request) -> Response:
        first, second = _tree_number(request, "first"), _tree_number(request, "second")
        return JSONResponse(reader.consistency_proof(first, second).as_dict())

    def inclusion(request: Request) -> Response:
        seq, size = _tree_number(request, "seq"), _tree_number(request, "size")
        return JSONResponse(reader.inclusion_proof(seq, size).as_dict())

    # The page is CPU work in Python around short database reads. On SQLite with scans
    # batched (written by the scan writer's thread), an item's page and its linkset never
    # wait: their reads are local and bounded by one item's journey, and they are answered
    # on the event loop. Handing them to a worker thread cost about a sixth of a page's CPU
    # on the 2-core bench machine (the loop and the thread passing the GIL back and forth:
    # 3.8-4.2 against 3.2-3.6 ms a page on one worker, alternated). Other pages (a lot's or
    # a product's can hold thousands of items), reads over a network (PostgreSQL,
    # replicas) and answers that write their own scan (scans unbatched; an item's other
    # link types, which do not use the queue) go to a few threads, so that a long one or
    # one waiting for the appender's lock does not hold up the rest.
    page_threads = anyio.CapacityLimiter(PAGE_THREADS)
    inline_items = read_store.dialect == "sqlite" and not read_store.replicas and scan_writer is not None

    def answer(request: Request, link: DigitalLink | None) -> Response:
        return resolve(
            request,
            reader,
            settings.base_url,
            witnessing=witnessing,
            cache=verified,
            visitors=visitors,
            scans_to=scan_writer,
            link=link,
        )

    async def digital_link(request: Request) -> Response:
        link = parsed_path(request.url.path)  # parsed once, here
        if (
            inline_items
            and link is not None
            and link.kind == "item"
            and request.query_params.get("linkType") in (None, "gs1:pip", "linkset")
        ):
            return answer(request, link)
        return await anyio.to_thread.run_sync(answer, request, link, limiter=page_threads)

    def gs1resolver(request: Request) -> Response:
        return JSONResponse(resolver_description(settings.base_url))

    def qr(request: Request) -> Response:
        return qr_response(request, settings.base_url)

    routes = [
        Route("/healthz", healthz),
        Route("/checkpoint", checkpoint),
        Route("/log-key", log_key),
        Route("/proof/consistency/{first}/{second}", consistency),
        Route("/proof/inclusion/{seq}/{size}", inclusion),
        *tile_routes(read_store),
        Route("/.well-known/gs1resolver", gs1resolver),
        Route("/01/{rest:path}", digital_link, methods=["GET", "HEAD", "OPTIONS"]),
        Route("/00/{rest:path}", digital_link, methods=["GET", "HEAD", "OPTIONS"]),
        Route("/qr/{rest:path}", qr),
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", graphql),
        # GS1's EPCIS 2.0 REST bindings (api/epcis_rest.py): events from the replicas, named
        # query definitions on the primary (written there, read back at once).
        epcis_mount(ledger, reader),
        *console_routes(reader, settings),
    ]

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if store.is_initialised():
            scans.check_ready(store)
            scans.prune(store)  # retention; each scan also prunes its own code
            pin = ledger.pinned_key()
            if pin.problem:
                # Serve anyway: every page says "not verified", with this reason.
                logging.getLogger("suyuan").warning('%s; every page will say "not verified"', pin.problem)
        mirror = TilesMirror(ledger, settings.tiles_dir) if settings.tiles_dir else None
        if mirror is not None:
            mirror.start()
        yield
        if mirror is not None:
            mirror.stop()
        if scan_writer is not None:
            scan_writer.close()  # the scans still waiting
        store.dispose()

    app = Starlette(
        debug=settings.dev,
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(ReadSnapshot, store=read_store),
            Middleware(SecurityHeaders, dev=settings.dev),
            Middleware(BodyLimit),
            Middleware(BearerAuth, ledger=reader),
        ],
        exception_handlers={
            LedgerError: ledger_error,
            **{cls: database_error for cls in DATABASE_ERRORS},
        },
    )
    app.state.settings = settings
    app.state.store = store
    app.state.ledger = ledger
    app.state.reader = reader
    app.state.primary_breaker = breaker
    app.state.gatherer = gatherer
    app.state.scan_writer = scan_writer
    return app
