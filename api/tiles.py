"""The C2SP tlog-tiles read API: hash tiles ``/tile/<L>/<N>[.p/<W>]`` and entry bundles
``/tile/entries/<N>[.p/<W>]`` from the stored nodes and entries (the checkpoint is
``/checkpoint`` in api/app.py), and the thread that keeps a static copy current
(``suyuan serve --tiles-dir``)."""

from __future__ import annotations

import gzip
import logging
import threading
from pathlib import Path

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from ledger.core import tiles
from ledger.core.errors import LedgerError, MalformedInput
from ledger.log.sequencer import Ledger
from ledger.log.tiles_export import export
from ledger.store import tiledb
from ledger.store.db import Store

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_LIVED = "public, max-age=5"
"""Partial tiles and the checkpoint: a CDN may keep them five seconds, so a reader lags the
log by at most that much (the spec asks the checkpoint not be cached beyond a few seconds)."""
CHECKPOINT_HEADERS = {"Cache-Control": SHORT_LIVED}
GZIP_LEVEL = 6

log = logging.getLogger("suyuan.tiles")


def tile_routes(store: Store) -> list[Route]:
    def tile(request: Request) -> Response:
        try:
            t = tiles.parse_path("tile/" + request.path_params["rest"])
            with store.reading(single=True) as conn:
                data = tiledb.read_tile(conn, t)
        except MalformedInput as e:
            status = 500 if e.code == "entry_too_large" else 400
            return JSONResponse(
                {"error": e.as_dict()}, status_code=status, headers={"Cache-Control": "no-store"}
            )
        except LedgerError as e:  # a damaged row: the server's fault, not the request's
            return JSONResponse(
                {"error": e.as_dict()}, status_code=500, headers={"Cache-Control": "no-store"}
            )
        if data is None:
            # Not yet: the same path answers once the log has grown, so nothing may keep
            # this answer.
            return JSONResponse(
                {"error": {"code": "not_found", "message": f"the log does not hold {t.path()} (yet)"}},
                status_code=404,
                headers={"Cache-Control": "no-store"},
            )
        headers = {"Cache-Control": IMMUTABLE if t.full else SHORT_LIVED}
        if t.is_bundle:
            # The spec asks bundles be compressed at the HTTP layer; entries are JSON.
            headers["Vary"] = "Accept-Encoding"
            if "gzip" in request.headers.get("accept-encoding", ""):
                headers["Content-Encoding"] = "gzip"
                data = gzip.compress(data, GZIP_LEVEL, mtime=0)
        return Response(data, media_type="application/octet-stream", headers=headers)

    return [Route("/tile/{rest:path}", tile)]


class TilesMirror:
    """Keeps a directory of static tiles current: every ``every`` seconds, when the log's
    checkpoint (its size or its cosignatures) changed, an incremental export runs. Several
    server processes may run one each over the same directory: the export's lock lets one
    write at a time, and whichever comes next finds nothing left to do."""

    def __init__(self, ledger: Ledger, directory: Path, *, every: float = 1.0) -> None:
        self.ledger, self.directory, self.every = ledger, directory, every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="suyuan-tiles-export", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        last = ""
        while not self._stop.is_set():
            try:
                export(self.ledger, self.directory, wait=False)
                last = ""
            except Exception as e:  # noqa: BLE001 - a failed round is logged and retried
                # Once per distinct failure, not every second while it lasts.
                if repr(e) != last:
                    log.exception("tiles export into %s failed; retrying", self.directory)
                last = repr(e)
            self._stop.wait(self.every)
