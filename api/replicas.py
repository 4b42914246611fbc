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

import anyio.to_thread
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledger.store.db import Store

HEADER = "Suyuan-Checkpoint"


class ReadSnapshot:
    def __init__(self, app: ASGIApp, *, store: Store) -> None:
        self.app, self.store = app, store

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
                if pin.opened:
                    # Ending the transaction is a round trip: off the event loop.
                    await anyio.to_thread.run_sync(pin.close)
