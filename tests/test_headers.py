"""Security headers on every kind of answer: the consumer page, its error pages, JSON,
QR images, text, GraphQL and the refusals made before routing; a strict
Content-Security-Policy that still lets the page's one stylesheet apply (the browser
side is tests/test_page.py)."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.body import MAX_BODY
from api.settings import Settings
from tests.pagechain import FormulaChain
from tests.support import Client, World

HTML = {"Accept": "text/html", "User-Agent": "Mozilla/5.0 (Linux; Android 14) Chrome/131.0 Mobile"}


@pytest.fixture
def item(world: World) -> str:
    return str(FormulaChain(world).build()["sold"]).removeprefix("https://id.gs1.org")


def post(app: Any, path: str, **kw: Any) -> httpx.Response:
    import asyncio

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await c.post(path, **kw)

    return asyncio.run(go())


def policy(r: httpx.Response) -> dict[str, str]:
    assert r.headers["x-content-type-options"] == "nosniff", (r.url, r.status_code)
    assert r.headers["referrer-policy"] == "no-referrer", (r.url, r.status_code)
    csp = r.headers["content-security-policy"]
    return {d.split()[0]: d.partition(" ")[2] for d in (p.strip() for p in csp.split(";")) if d}


def strict(r: httpx.Response) -> dict[str, str]:
    p = policy(r)
    assert p["default-src"] == "'none'" and p["frame-ancestors"] == "'none'", p
    assert p["base-uri"] == "'none'" and p["form-action"] == "'none'", p
    assert "script-src" not in p and "'unsafe-inline'" not in str(p), p
    return p


def test_every_answer_carries_the_headers(world: World, item: str, client: Client) -> None:
    page = client.get(item, headers=HTML)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    p = strict(page)
    # The policy admits the page's stylesheet by its hash, and nothing inline besides.
    styles = re.findall(r"<style>(.*?)</style>", page.text, re.S)
    assert len(styles) == 1 and "style=" not in page.text and "<script" not in page.text
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert p["style-src"] == f"'sha256-{digest}'"
    for answer in (
        client.get(item, headers=HTML, params={"lang": "en"}),
        client.get("/01/09506000134353", headers=HTML),  # the check-digit page
        client.get("/01/09506000134352/21/none", headers=HTML),  # not found
        client.get(item, headers=HTML, params={"linkType": "nope"}),
    ):
        assert answer.headers["content-type"].startswith("text/html")
        assert strict(answer)["style-src"] == p["style-src"]  # the error page's sheet is the same
    for other in (
        client.get(item, headers={"Accept": "application/json"}),
        client.get(item, params={"linkType": "gs1:epcis"}),
        client.get(item, params={"linkType": "linkset"}),
        client.get("/qr" + item + ".png"),
        client.get("/qr" + item + ".svg"),
        client.get("/qr/01/1.gif"),
        client.get("/checkpoint"),
        client.get("/log-key"),
        client.get("/healthz"),
        client.get("/proof/inclusion/0/1"),
        client.get("/.well-known/gs1resolver"),
        client.get("/no-such-route"),
        client.get(item, headers={"Authorization": "Bearer nope"}),
        client.get("/graphql", params={"query": "{ viewer { kind } }"}),
    ):
        strict(other)
    app = client.app
    strict(post(app, "/graphql", json={"query": "{ viewer { kind } }"}))
    strict(post(app, "/graphql", content=b"x" * (MAX_BODY + 1)))  # 413, before routing
    strict(post(app, "/healthz"))  # 405


@pytest.fixture
def dev_app(world: World) -> Iterator[Any]:
    app = create_app(Settings(db_url=world.url, home=world.home.path, dev=True))
    yield app
    app.state.store.dispose()


def test_graphiql_in_dev_may_run_its_scripts_but_not_be_framed(dev_app: Any, item: str) -> None:
    c = Client(dev_app)
    ide = c.get("/graphql", headers={"Accept": "text/html"})
    assert ide.status_code == 200 and "graphiql" in ide.text.lower()
    assert policy(ide) == {"frame-ancestors": "'none'"}
    strict(c.get(item, headers=HTML))  # the pages keep theirs in dev
