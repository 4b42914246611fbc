"""The HTTP face, through the real ASGI stack (no sockets): health, checkpoint, log key,
and the Digital Link resolver's JSON answers and refusals."""

from __future__ import annotations

from typing import Any

import httpx

from ledger.core.note import NoteVerifier
from ledger.queries.trace import journey
from tests.support import Client, World
from tests.test_trace import Chain, build_formula_chain


def test_health_checkpoint_and_log_key(world: World, client: Client) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"ok": True, "size": world.ledger.size()}
    cp = client.get("/checkpoint")
    assert cp.headers["content-type"].startswith("text/plain")
    assert cp.text == world.ledger.latest_checkpoint()
    vkey = client.get("/log-key").text.strip()
    NoteVerifier.from_vkey(vkey).verify(cp.text)


def test_resolver_answers_journey_recall_and_links(world: World, client: Client) -> None:
    x = build_formula_chain(Chain(world))
    tin = x["tins"][0]
    path = tin.removeprefix("https://id.gs1.org")
    j = client.get(path, params={"linkType": "gs1:traceability"})
    assert j.status_code == 200
    assert j.json()["code"] == tin
    assert j.json() == journey(world.store, tin)
    rec = client.get(path, params={"linkType": "gs1:recallStatus"}).json()
    assert rec == {"code": tin, "recalled": False, "recalls": []}
    (links,) = client.get(path, params={"linkType": "linkset"}).json()["linkset"]
    assert links["anchor"] == f"https://trace.example{path}"
    assert links["https://gs1.org/voc/recallStatus"] == [
        {
            "href": f"https://trace.example{path}?linkType=gs1:recallStatus",
            "title": "Recall status",
            "type": "application/json",
        }
    ]


def test_resolver_refusals(client: Client) -> None:
    bad = client.get("/01/09506000134353/21/1")
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "bad_identifier"
    assert "expected 2" in bad.json()["error"]["message"]
    unknown = client.get("/01/09506000134352/21/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "not_found"
    odd = client.get("/01/09506000134352/21/1", params={"linkType": "gs1:nonsense"})
    assert odd.status_code == 400 and odd.json()["error"]["code"] == "bad_link_type"


def test_suyuan_serve_answers_on_loopback(world: World, tmp_path: Any, port: int) -> None:
    import os
    import subprocess
    import sys
    import time

    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/checkpoint", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise AssertionError(proc.stderr.read().decode() if proc.stderr else "") from None
                time.sleep(0.2)
        assert r.status_code == 200 and r.text == world.ledger.latest_checkpoint()
    finally:
        proc.terminate()
        proc.communicate(timeout=20)
