"""The ledger gathers cosignatures from witnesses (in-process, through their real HTTP
apps): a quorum, a witness that is down, a witness that restarted behind, and /checkpoint
serving the cosigned note."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import pytest

from api.app import create_app
from api.settings import Settings
from api.witness_app import create_witness_app
from ledger.core.errors import ConfigError
from ledger.log.cosigner import CosignatureVerifier, Cosigner, Witness
from ledger.log.witnesses import WitnessConfig, Witnessing, cosigned_note, gather
from tests.support import ORIGIN, Server, World, asgi_post


def _witness(world: World, tmp_path: Path, n: int) -> tuple[str, Cosigner, Any]:
    c = Cosigner(f"w{n}.example/witness", nacl.signing.SigningKey(bytes([n]) * 32))
    app = create_witness_app(Witness(c, {ORIGIN: world.ledger.log_verifier()}, tmp_path / f"w{n}.json"))
    return f"http://w{n}.example", c, app


def test_quorum_gathered_stored_and_served(world: World, tmp_path: Path) -> None:
    ws = [_witness(world, tmp_path, n) for n in (1, 2, 3)]
    cfg = Witnessing(tuple(WitnessConfig(url, c.vkey()) for url, c, _ in ws), quorum=2)
    apps = {url: app for url, _, app in ws[:2]}  # the third witness is down
    party, key = world.register()
    world.append_events(party, key, 3)
    res = gather(world.ledger, cfg, asgi_post(apps))
    assert res.witnessed and res.cosigned == ["w1.example/witness", "w2.example/witness"]
    assert "w3.example/witness" in res.errors
    note = cosigned_note(world.ledger)
    for _, c, _ in ws[:2]:
        CosignatureVerifier.from_vkey(c.vkey()).verify(note)
    world.ledger.log_verifier().verify(note)
    served = create_app(Settings(db_url=world.url))

    async def get() -> str:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=served), base_url="http://l") as c:
            return (await c.get("/checkpoint")).text

    assert asyncio.run(get()) == note
    served.state.store.dispose()

    # Next checkpoint: the witnesses are asked with proofs from what each saw last.
    world.append_events(party, key, 2, start=50)
    again = gather(world.ledger, cfg, asgi_post(apps))
    assert again.witnessed and again.size == world.ledger.size()


def test_a_witness_that_lost_track_is_caught_up(world: World, tmp_path: Path) -> None:
    url, c, app = _witness(world, tmp_path, 7)
    cfg = Witnessing((WitnessConfig(url, c.vkey()),), quorum=1)
    party, key = world.register()
    world.append_events(party, key, 2)
    assert gather(world.ledger, cfg, asgi_post({url: app})).witnessed
    # The ledger forgets nothing, but the witness's state moved on through another route:
    size = world.ledger.size()
    world.append_events(party, key, 2, start=10)
    middle_note = world.ledger.latest_checkpoint()
    wit = Witness(c, {ORIGIN: world.ledger.log_verifier()}, tmp_path / "w7.json")
    from ledger.log.cosigner import request_body

    proof = list(world.ledger.consistency_proof(size).hashes)
    assert wit.add_checkpoint(request_body(size, proof, middle_note)).status == 200
    world.append_events(party, key, 2, start=20)
    res = gather(world.ledger, cfg, asgi_post({url: app}))  # 409 -> retried from its size
    assert res.witnessed, res.errors


def test_quorum_bigger_than_witnesses_is_refused() -> None:
    with pytest.raises(ConfigError, match="quorum"):
        Witnessing((), quorum=1)


def test_bundles_carry_cosignatures_and_verify_counts_them(world: World, tmp_path: Path) -> None:
    from ledger.log.bundle import make_bundle, verify_bundle

    ws = [_witness(world, tmp_path, n) for n in (4, 5)]
    cfg = Witnessing(tuple(WitnessConfig(url, c.vkey()) for url, c, _ in ws), quorum=2)
    party, key = world.register()
    seqs = [r.seq for r in world.append_events(party, key, 2)]
    assert gather(world.ledger, cfg, asgi_post({u: a for u, _, a in ws})).witnessed
    doc = make_bundle(world.ledger, seqs)
    keys = [c.vkey() for _, c, _ in ws]
    log_key = world.ledger.log_verifier().vkey()
    good = verify_bundle(doc, log_key=log_key, witness_keys=keys, quorum=2)
    assert good.ok and good.cosigned_by == ["w4.example/witness", "w5.example/witness"]
    stranger = Cosigner("w9.example/witness", nacl.signing.SigningKey(bytes([9]) * 32)).vkey()
    short = verify_bundle(doc, log_key=log_key, witness_keys=[keys[0], stranger], quorum=2)
    assert not short.ok and "cosigned by 1 of the 2" in short.problems[0]


def test_graphql_submit_has_its_checkpoint_cosigned_in_the_background(world: World, tmp_path: Path) -> None:
    """Witnesses configured in the operator's home, served over real HTTP on loopback: a
    GraphQL submit answers at once, and its checkpoint gets cosigned by every witness
    shortly after; the next submit's checkpoint too."""
    from tests.test_auth import Api

    ws = [_witness(world, tmp_path, n) for n in (4, 5)]
    party, key = world.register()
    with Server(ws[0][2]) as s4, Server(ws[1][2]) as s5:
        world.home.save_config(
            {
                "witnesses": [
                    {"url": f"http://127.0.0.1:{srv.port}", "key": c.vkey()}
                    for srv, (_, c, _) in zip((s4, s5), ws, strict=True)
                ],
                "quorum": 2,
            }
        )
        app = create_app(Settings(db_url=world.url, home=world.home.path))
        api = Api(app)
        try:
            for start in (0, 100):
                envs = [world.event(party, key, start + i) for i in range(3)]
                r = api.gql(
                    "mutation($e: [JSON!]!) { submit(envelopes: $e) { receipt { seq } } }", e=envs
                ).json()
                assert all(x["receipt"] for x in r["data"]["submit"]), r
                assert app.state.gatherer.wait(30)
                note = cosigned_note(world.ledger)
                assert note.startswith(world.ledger.latest_checkpoint())
                for _, c, _ in ws:
                    CosignatureVerifier.from_vkey(c.vkey()).verify(note)
                assert app.state.gatherer.last.witnessed
                assert app.state.gatherer.last.size == world.ledger.size()
        finally:
            app.state.store.dispose()
