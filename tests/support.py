"""A small ledger world for tests: a registrar, parties with keys, helpers to sign."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledger.core import ids
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log.home import Home, genesis_envelope
from ledger.log.sequencer import Ledger, Receipt
from ledger.store.db import Store

ORIGIN = "test.suyuan/log"
_counter = itertools.count(1)


def new_uscc() -> str:
    """A fresh valid USCC: both check characters computed (GB 11714 and GB 32100)."""
    body = f"9113020{next(_counter):09d}"
    return "uscc:" + ids.make_uscc(body)


class World:
    def __init__(
        self, store: Store, home: Home, ledger: Ledger, registrar: str, registrar_key: PartyKey
    ) -> None:
        self.store, self.home, self.ledger = store, home, ledger
        self.registrar, self.registrar_key = registrar, registrar_key
        self.url = str(store.engine.url.render_as_string(hide_password=False))

    @classmethod
    def create(cls, url: str, *, home: str | Path) -> World:
        store = Store(url)
        store.migrate()
        h = Home(Path(home))
        signer = h.create_note_signer(ORIGIN)
        reg_key = h.keys.create("registrar")
        registrar = new_uscc()
        h.save_config({"origin": ORIGIN, "registrar": {"id": registrar, "key": "registrar"}})
        led = Ledger(store, note_signer=signer)
        led.append(
            genesis_envelope(
                origin=ORIGIN,
                signer=signer,
                registrar_id=registrar,
                registrar_name="测试登记中心",
                registrar_key=reg_key,
            )
        )
        return cls(store, h, led, registrar, reg_key)

    def close(self) -> None:
        self.store.dispose()

    def registration(
        self,
        party: str,
        key: PartyKey,
        roles: Sequence[str] = ("producer",),
        name: str | None = None,
        gs1_prefixes: Sequence[str] = (),
        customs_codes: Sequence[str] = (),
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": party,
            "name": name or f"party {party[-6:]}",
            "roles": list(roles),
            "publicKey": key.public_key_b64,
        }
        if gs1_prefixes:
            body["gs1Prefixes"] = list(gs1_prefixes)
        if customs_codes:
            body["customsCodes"] = list(customs_codes)
        return sign_one(
            kind="party.register",
            signer=party,
            key=key,
            body=body,
            cosigners=[(self.registrar, self.registrar_key)],
        )

    def register(
        self,
        roles: Sequence[str] = ("producer",),
        *,
        gs1_prefixes: Sequence[str] = (),
        customs_codes: Sequence[str] = (),
    ) -> tuple[str, PartyKey]:
        party = new_uscc()
        key = PartyKey.generate(party)
        self.ledger.append(
            self.registration(party, key, roles, gs1_prefixes=gs1_prefixes, customs_codes=customs_codes)
        )
        return party, key

    def event(self, party: str, key: PartyKey, n: int = 0, **extra: Any) -> dict[str, Any]:
        body = {
            "type": "ObjectEvent",
            "eventTime": "2026-11-27T13:05:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
            **extra,
        }
        return sign_one(kind="event", signer=party, key=key, body=body, issued="2026-11-27T13:05:00+08:00")

    def append_events(self, party: str, key: PartyKey, count: int, start: int = 0) -> list[Receipt]:
        return self.ledger.append_batch([self.event(party, key, start + i) for i in range(count)])


@contextmanager
def loopback_port() -> Iterator[int]:
    """A loopback TCP port for a server a test starts as its own process (`suyuan serve`,
    `witness serve`, the agent, the demo), held for the block so that nothing else takes it
    between the test choosing it and the server binding it.

    A port found free and released (bind to 0, close) can be handed to anyone before the
    server binds it: to another test's bind(0), or as the local port of a connection. Here
    it stays bound, with SO_REUSEADDR and never listening: on Linux no bind(0) and no
    connect() is given a bound port, while a server that binds with SO_REUSEADDR too (uvicorn
    and the demo's own listener do) may take it, and from then on holds it alone. Until it
    listens, connecting is refused as for a port nobody holds. Where the system does not let
    two such sockets share a port (BSD and macOS), the port is released at once, as before.
    """
    import errno
    import socket

    held = socket.socket()
    try:
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        held.bind(("127.0.0.1", 0))
        port: int = held.getsockname()[1]
        with socket.socket() as server_like:
            server_like.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server_like.bind(("127.0.0.1", port))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise
                held.close()  # not shareable here: the server must find it free
        yield port
    finally:
        held.close()


class Server:
    """uvicorn in a thread on a loopback port (real HTTP and WebSocket). The listening socket
    is made here and handed to uvicorn, so the port is never free between choosing and
    serving it."""

    def __init__(self, app: Any, *, lifespan: str = "off") -> None:
        import socket

        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        # proxy_headers off, as `suyuan serve` runs it: the app alone decides whose
        # X-Forwarded-For to believe (api/visitors.py).
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                ws="websockets-sansio",
                lifespan=lifespan,
                proxy_headers=False,
            )
        )
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.sock.close()
                raise AssertionError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def asgi_post(apps: dict[str, Any]) -> Any:
    """A witnessing ``Post`` that answers from in-process witness apps by URL prefix, and
    refuses the connection for any other URL (a witness that is down)."""
    import asyncio

    import httpx

    def post(url: str, body: str, timeout: float) -> tuple[int, str]:
        base = url.partition("/add-checkpoint")[0]
        app = apps.get(base)
        if app is None:
            raise OSError(f"connection refused: {base}")

        async def go() -> tuple[int, str]:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://w"
            ) as client:
                r = await client.post("/add-checkpoint", content=body.encode())
                return r.status_code, r.text

        return asyncio.run(go())

    return post


class Client:
    """Requests through httpx's ASGI transport: the whole app, no socket; ``peer`` is the
    address the app sees the requests come from."""

    def __init__(self, app: Any, *, peer: str = "127.0.0.1") -> None:
        self.app, self.peer = app, peer

    def get(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> Any:
        return self.request("POST", path, **kw)

    def request(self, method: str, path: str, **kw: Any) -> Any:
        import asyncio

        import httpx

        async def go() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.peer, 123))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
                return await c.request(method, path, **kw)

        return asyncio.run(go())
