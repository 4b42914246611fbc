"""The HTTP face of the ledger: health, the latest checkpoint, the log key, proofs, the
Digital Link resolver with its consumer page, QR codes of Digital Links and GraphQL, every
route behind the bearer-token check (api/auth.py)."""

from __future__ import annotations

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
from api.graphql.app import graphql_app
from api.qr import qr_response
from api.resolver import resolve, resolver_description
from api.settings import Settings
from api.tiles import CHECKPOINT_HEADERS, TilesMirror, tile_routes
from ledger import scans
from ledger.errors import LedgerError
from ledger.home import Home
from ledger.log import Ledger
from ledger.page_facts import VerificationCache
from ledger.store.db import Store
from ledger.witnessing import Gatherer, Witnessing, cosigned_note

PAGE_THREADS = 2  # pages answered at once by one worker process


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    store = Store(settings.db_url)
    # The checkpoint key, when this home has it, lets GraphQL `submit` append.
    ledger = Ledger(store, note_signer=Home(settings.home).note_signer_if_any())
    # The witnesses the operator configured (URL, key, quorum): the page counts k of n, and
    # the checkpoint of each GraphQL submit is sent to them for cosigning in the background.
    cfg = Home(settings.home).config() if settings.home else {}
    witnessing = Witnessing.from_config(cfg) if cfg.get("witnesses") else None
    gatherer = (Gatherer(ledger, witnessing)
                if witnessing is not None and ledger.note_signer is not None else None)
    graphql = graphql_app(ledger, settings, gatherer.poke if gatherer is not None else None)
    verified = VerificationCache()

    def healthz(request: Request) -> Response:
        return JSONResponse({"ok": True, "size": ledger.size()})

    def checkpoint(request: Request) -> Response:
        try:
            # With every cosignature gathered so far: clients count the quorum themselves.
            return PlainTextResponse(cosigned_note(ledger), headers=CHECKPOINT_HEADERS)
        except LedgerError as e:
            return JSONResponse({"error": e.as_dict()}, status_code=404)

    def log_key(request: Request) -> Response:
        try:
            return PlainTextResponse(ledger.log_verifier().vkey() + "\n")
        except LedgerError as e:
            return JSONResponse({"error": e.as_dict()}, status_code=404)

    def consistency(request: Request) -> Response:
        try:
            first = int(request.path_params["first"])
            second = int(request.path_params["second"])
            return JSONResponse(ledger.consistency_proof(first, second).as_dict())
        except ValueError:
            return JSONResponse({"error": {"code": "malformed",
                                           "message": "sizes are decimal integers"}}, 400)
        except LedgerError as e:
            return JSONResponse({"error": e.as_dict()}, status_code=404)

    def inclusion(request: Request) -> Response:
        try:
            seq = int(request.path_params["seq"])
            size = int(request.path_params["size"])
            return JSONResponse(ledger.inclusion_proof(seq, size).as_dict())
        except ValueError:
            return JSONResponse({"error": {"code": "malformed",
                                           "message": "seq and size are decimal integers"}}, 400)
        except LedgerError as e:
            return JSONResponse({"error": e.as_dict()}, status_code=404)

    # The page is CPU work in Python around short database reads: a few threads at a time
    # answer more pages than one per connection, which fight over the GIL (and, on SQLite,
    # over the scans table's write lock) and stretch every answer.
    page_threads = anyio.CapacityLimiter(PAGE_THREADS)

    async def digital_link(request: Request) -> Response:
        return await anyio.to_thread.run_sync(
            lambda: resolve(request, ledger, settings.base_url, witnessing=witnessing,
                            cache=verified), limiter=page_threads)

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
        *tile_routes(store),
        Route("/.well-known/gs1resolver", gs1resolver),
        Route("/01/{rest:path}", digital_link, methods=["GET", "HEAD", "OPTIONS"]),
        Route("/00/{rest:path}", digital_link, methods=["GET", "HEAD", "OPTIONS"]),
        Route("/qr/{rest:path}", qr),
        Route("/graphql", graphql),
        WebSocketRoute("/graphql", graphql),
    ]
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if store.is_initialised():
            scans.check_ready(store)
            scans.prune(store)  # retention; each scan also prunes its own code
        mirror = TilesMirror(ledger, settings.tiles_dir) if settings.tiles_dir else None
        if mirror is not None:
            mirror.start()
        yield
        if mirror is not None:
            mirror.stop()
        store.dispose()

    app = Starlette(debug=settings.dev, routes=routes, lifespan=lifespan,
                    middleware=[Middleware(BearerAuth, ledger=ledger)])
    app.state.settings = settings
    app.state.store = store
    app.state.ledger = ledger
    app.state.gatherer = gatherer
    return app
