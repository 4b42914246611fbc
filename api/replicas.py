"""One snapshot per request: every read an HTTP request makes (the page, the resolver,
GraphQL queries, proofs, tiles, the console) goes to one read-only transaction on one
database — a replica of SUYUAN_DB_READ, or the primary without them — opened at its first
read, so an answer never mixes two replicas, or a replica before and after it replayed
more of the log. Writes are not pinned: appends, scans and cosignatures go to the primary.

Each answer that read the log names the checkpoint of its snapshot, the one it was verified
against: ``Suyuan-Checkpoint: <size> <base64 root>`` (the checkpoint body's second and
third lines). A replica behind the primary answers from its own latest checkpoint.
"""

from __future__ import annotations

import base64
import logging
import time
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, event
from sqlalchemy.engine import ExceptionContext
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.store.db import Store

HEADER = "Suyuan-Checkpoint"
log = logging.getLogger("suyuan")


class ReadSnapshot:
    def __init__(self, app: ASGIApp, *, store: Store) -> None:
        self.app, self.store = app, store
        self.local = store.dialect == "sqlite"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # WebSocket subscriptions live for hours: they read fresh, call by call.
            await self.app(scope, receive, send)
            return
        with self.store.pinned() as pin:

            async def send_naming_checkpoint(message: Message) -> None:
                if message["type"] == "http.response.start" and pin.head is not None:
                    headers = MutableHeaders(scope=message)
                    headers[HEADER] = f"{pin.head.size} {base64.b64encode(pin.head.root).decode()}"
                await send(message)

            try:
                await self.app(scope, receive, send_naming_checkpoint)
            finally:
                if pin.opened and self.local:
                    pin.close()  # SQLite: ending a read transaction is a call, not a wait
                elif pin.opened:
                    # Ending the transaction is a round trip: off the event loop.
                    await anyio.to_thread.run_sync(pin.close)


class PrimaryBreaker:
    """While the primary is unreachable, pages do not wait for it on every scan.

    With replicas the page is read from a standby, but its scan is written to the primary.
    Once a connection to the primary has failed, further connections fail at once for
    ``pause`` seconds (then one is tried again): a page whose scan cannot be recorded
    still answers from its replica, with the counterfeit signal of the scans stored
    before, instead of waiting out a connect timeout each time. Appends in that window
    are refused the same way, as they would be by the unreachable server.
    """

    def __init__(self, engine: Engine, *, pause: float = 10.0) -> None:
        self.pause = pause
        self.until = 0.0
        self.where = engine.url.render_as_string(hide_password=True)
        event.listen(engine, "handle_error", self._failed)
        event.listen(engine, "do_connect", self._connecting)

    @property
    def open(self) -> bool:
        return time.monotonic() < self.until

    def _failed(self, ctx: ExceptionContext) -> None:
        # While open, the failures are the breaker's own refusals: they do not extend it.
        if (ctx.connection is None or ctx.is_disconnect) and not self.open:
            log.warning(
                "the primary %s is unreachable; its writes (scans, appends) are "
                "refused for %.0f s before it is tried again",
                self.where,
                self.pause,
            )
            self.until = time.monotonic() + self.pause

    def _connecting(self, dialect: Any, conn_rec: Any, cargs: Any, cparams: Any) -> None:
        if self.open:
            raise dialect.loaded_dbapi.OperationalError(
                f"the primary {self.where} was unreachable moments ago; not tried again yet"
            )
