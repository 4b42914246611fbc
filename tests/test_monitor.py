"""The monitor against real ledgers behind the real HTTP app: honest growth passes, a
forked history signed with the same key and a rollback raise alarms."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log.home import genesis_envelope
from ledger.log.monitor import observe
from ledger.log.sequencer import Ledger
from ledger.store.db import Store
from tests.support import ORIGIN, World, new_uscc


def fetcher(app: Any) -> Any:
    def fetch(path: str) -> str:
        async def go() -> str:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://ledger"
            ) as c:
                r = await c.get(path)
                r.raise_for_status()
                return r.text

        return asyncio.run(go())

    return fetch


_apps: list[Any] = []


def _app(url: str, home: Path) -> Any:
    app = create_app(Settings(db_url=url, home=home))
    _apps.append(app)
    return app


@pytest.fixture(autouse=True)
def _dispose_apps() -> Iterator[None]:
    yield
    while _apps:
        _apps.pop().state.store.dispose()


def test_honest_growth_then_fork_then_rollback(world: World, tmp_path: Path) -> None:
    state = tmp_path / "monitor.json"
    honest = fetcher(_app(world.url, world.home.path))
    first = observe(honest, state)
    assert first.ok and first.previous is None
    party, key = world.register()
    world.append_events(party, key, 4)
    grown = observe(honest, state)
    assert grown.ok and grown.previous == first.size and grown.size == world.ledger.size()

    # The operator keeps a second database and signs its checkpoints with the same key.
    store = Store(f"sqlite:///{tmp_path}/fork.db")
    store.migrate()
    signer = world.ledger.note_signer
    assert signer is not None
    forked = Ledger(store, note_signer=signer)
    forked.append(
        genesis_envelope(
            origin=ORIGIN,
            signer=signer,
            registrar_id=new_uscc(),
            registrar_name="forged",
            registrar_key=PartyKey.generate("r"),
        )
    )
    fork_fetch = fetcher(_app(f"sqlite:///{tmp_path}/fork.db", world.home.path))
    rollback = observe(fork_fetch, state)
    assert not rollback.ok and rollback.alarm and rollback.alarm.startswith("ROLLBACK")
    # Grow the fork past the honest size with its own registrar-free genesis history.
    fork_reg = PartyKey.generate("fr")
    store2 = Store(f"sqlite:///{tmp_path}/fork2.db")
    store2.migrate()
    fork2 = Ledger(store2, note_signer=signer)
    reg_id = new_uscc()
    fork2.append(
        genesis_envelope(
            origin=ORIGIN, signer=signer, registrar_id=reg_id, registrar_name="forged", registrar_key=fork_reg
        )
    )
    for _ in range(world.ledger.size()):
        p, k = new_uscc(), PartyKey.generate("p")
        fork2.append(
            sign_one(
                kind="party.register",
                signer=p,
                key=k,
                body={"id": p, "name": "x", "roles": ["producer"], "publicKey": k.public_key_b64},
                cosigners=[(reg_id, fork_reg)],
            )
        )
    assert fork2.size() > world.ledger.size()
    fork = observe(fetcher(_app(f"sqlite:///{tmp_path}/fork2.db", world.home.path)), state)
    assert not fork.ok and fork.alarm and fork.alarm.startswith("FORK")
    # The state still holds the honest view: the honest log keeps passing.
    assert observe(honest, state).ok
    store.dispose()
    store2.dispose()
