"""Tampering through raw SQL, with the append-only triggers dropped: the audit names it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from ledger.core.note import NoteSigner
from ledger.log.audit import audit
from ledger.log.home import Home
from ledger.store.schema import node_key
from tests.support import World


@pytest.fixture
def filled(world: World) -> World:
    party, key = world.register()
    for b in range(4):
        world.append_events(party, key, 10, start=100 * b)
    assert audit(world.store).ok
    world.store.drop_append_only()
    return world


def _lines(w: World) -> list[str]:
    rep = audit(w.store)
    assert not rep.ok
    return [p.line() for p in rep.problems]


def _entry(w: World, seq: int) -> bytes:
    with w.store.engine.connect() as conn:
        got = conn.execute(sa.text("SELECT entry FROM entries WHERE seq = :s"), {"s": seq}).scalar_one()
    return bytes(got)


def test_one_changed_byte_is_named(filled: World) -> None:
    raw = bytearray(_entry(filled, 17))
    i = raw.index(b'"eventTime":"2026') + len('"eventTime":"2026')
    raw[i] = ord("7")  # 2026-… becomes 2027-…: still valid JSON, different bytes
    filled.store.raw("UPDATE entries SET entry = :e WHERE seq = 17", {"e": bytes(raw)})
    lines = _lines(filled)
    assert lines[0].startswith("seq 17: ")
    assert all(line.startswith(("seq 17:", "checkpoint")) for line in lines), lines


def test_changed_entry_with_rehashed_leaf_is_named(filled: World) -> None:
    import hashlib

    raw = bytearray(_entry(filled, 9))
    i = raw.index(b"/21/") + 4
    raw[i] = ord("9") if raw[i] != ord("9") else ord("8")
    leaf = hashlib.sha256(b"\x00" + bytes(raw)).digest()
    filled.store.raw(
        "UPDATE entries SET entry = :e, leaf_hash = :h WHERE seq = 9", {"e": bytes(raw), "h": leaf}
    )
    lines = _lines(filled)
    assert any(line.startswith("seq 9: ") for line in lines), lines
    assert any(line.startswith("seq 10: prev link broken") for line in lines), lines


def test_deleted_last_entry_is_named(filled: World) -> None:
    last = filled.ledger.size() - 1
    filled.store.raw(f"DELETE FROM entries WHERE seq = {last}")
    lines = _lines(filled)
    assert any(f"seq {last} onward is missing" in line for line in lines), lines
    assert any(line.startswith(f"checkpoint {last + 1}:") for line in lines), lines


def test_swapped_entries_are_named(filled: World) -> None:
    a, b = _entry(filled, 20), _entry(filled, 25)
    filled.store.raw("UPDATE entries SET entry = :e WHERE seq = 20", {"e": b})
    filled.store.raw("UPDATE entries SET entry = :e WHERE seq = 25", {"e": a})
    lines = _lines(filled)
    assert lines[0].startswith("seq 20: "), lines
    assert any(line.startswith("seq 25: ") for line in lines), lines


def test_checkpoint_resigned_with_another_key_is_named(filled: World, tmp_path: object) -> None:
    size = 22
    note = filled.ledger.checkpoint_note(size)
    body = note.split("\n\n")[0] + "\n"
    forger: NoteSigner = Home(tmp_path / "forger").create_note_signer("test.suyuan/log")  # type: ignore[operator]
    filled.store.raw("UPDATE checkpoints SET note = :n WHERE size = :s", {"n": forger.sign(body), "s": size})
    lines = _lines(filled)
    assert lines == [
        f"checkpoint {size}: signature does not verify with the log key: "
        "the note carries no signature by "
        f"{filled.ledger.log_verifier().name}+"
        f"{filled.ledger.log_verifier().key_hash.hex()}"
    ], lines


def test_changed_merkle_node_is_named(filled: World) -> None:
    filled.store.raw(
        "UPDATE merkle_nodes SET hash = :h WHERE node = :n", {"h": bytes(32), "n": node_key(2, 3)}
    )
    lines = _lines(filled)
    assert any("Merkle node (2, 3) does not match its children" in line for line in lines), lines
