"""The log's contract, run on SQLite and PostgreSQL: append, receipts, proofs, registry."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any

import pytest
import rfc8785
import sqlalchemy as sa

from ledger.core import merkle
from ledger.core.errors import BatchRejected, NotFound
from ledger.core.keys import PartyKey
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.core.statements import SIGNING_DOMAIN, sign_one
from ledger.log.audit import audit
from ledger.log.sequencer import Ledger
from tests.support import World, new_uscc


def _verify_receipt(w: World, r: dict[str, object]) -> Checkpoint:
    """Check a receipt the way an outsider would: from its own fields and the log key."""
    verifier = w.ledger.log_verifier()
    cp = Checkpoint.parse(verifier.verify(str(r["checkpoint"])))
    proof = r["inclusionProof"]
    assert isinstance(proof, dict)
    assert proof["treeSize"] == cp.size and proof["leafIndex"] == r["seq"]
    entry = w.ledger.entry(int(r["seq"]))  # type: ignore[call-overload]
    assert merkle.leaf_hash(entry.raw).hex() == r["leafHash"]
    merkle.verify_inclusion(
        leaf=bytes.fromhex(str(r["leafHash"])),
        index=int(r["seq"]),  # type: ignore[call-overload]
        size=cp.size,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        root=cp.root,
    )
    return cp


def test_genesis_then_batch_receipts_verify(world: World) -> None:
    party, key = world.register(["producer"])
    receipts = world.append_events(party, key, 50)
    assert [r.seq for r in receipts] == list(range(2, 52))
    for r in receipts:
        cp = _verify_receipt(world, r.as_dict())
        assert cp.size == 52 and cp.origin == "test.suyuan/log"
    assert len({r.checkpoint for r in receipts}) == 1


def test_entry_bytes_are_jcs_and_chain_links_prev(world: World) -> None:
    party, key = world.register()
    world.append_events(party, key, 5)
    prev = bytes(32)
    for seq in range(world.ledger.size()):
        e = world.ledger.entry(seq)
        doc = e.decoded()
        # Independent cross-check: the reference JCS of the decoded entry is the stored bytes.
        assert rfc8785.dumps(doc) == e.raw
        assert doc["seq"] == seq and doc["v"] == 1
        assert doc["prev"] == prev.hex()
        assert e.leaf_hash == hashlib.sha256(b"\x00" + e.raw).digest()
        prev = e.leaf_hash


def test_signature_covers_domain_and_jcs(world: World) -> None:
    party, key = world.register()
    env = world.event(party, key, 7)
    message = SIGNING_DOMAIN + rfc8785.dumps(env["statement"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    key.signing_key.verify_key.verify(message, sig)  # raises if the contract is not met


def test_resubmission_returns_first_receipt_and_appends_nothing(world: World) -> None:
    party, key = world.register()
    env = world.event(party, key, 1)
    first = world.ledger.append(env)
    world.append_events(party, key, 3, start=100)
    size = world.ledger.size()
    again = world.ledger.append(env)
    assert again == first
    assert world.ledger.size() == size
    twice = world.ledger.append_batch([world.event(party, key, 500), world.event(party, key, 500)])
    assert twice[0] == twice[1]
    assert world.ledger.size() == size + 1


def test_batch_is_all_or_nothing(world: World) -> None:
    party, key = world.register()
    good = [world.event(party, key, i) for i in range(10)]
    bad = world.event(party, key, 99)
    bad["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    size, cp = world.ledger.size(), world.ledger.latest_checkpoint()
    with pytest.raises(BatchRejected) as e:
        world.ledger.append_batch([*good, bad])
    assert e.value.errors[0][0] == 10
    assert e.value.errors[0][1].code == "bad_signature"
    assert world.ledger.size() == size and world.ledger.latest_checkpoint() == cp
    assert world.ledger.append_batch(good)[0].seq == size


def test_big_batch_is_sequenced_while_signatures_are_checked_and_a_bad_one_refuses_it(
    world: World,
) -> None:
    """A batch of several verify chunks is sequenced while its signatures are checked in
    the verify threads: a bad signature late in it still refuses the whole batch, before
    the sequencer's own refusals, and leaves the log as it was."""
    from ledger.core.signatures import PARALLEL_VERIFY_MIN, VERIFY_CHUNK

    party, key = world.register()
    other, other_key = world.register()
    n = max(PARALLEL_VERIFY_MIN, 3 * VERIFY_CHUNK) + 5
    good = [world.event(party, key, 1000 + i) for i in range(n)]
    bad = world.event(party, key, 99)
    bad["signatures"][0]["sig"] = base64.b64encode(bytes(64)).decode()
    # A statement the sequencer itself refuses (only a party or the registrar revokes a
    # key), placed before the bad signature: the signature's refusal still comes alone.
    not_theirs = sign_one(
        kind="party.key.revoke", signer=other, key=other_key, body={"party": party, "key": key.key_id}
    )
    size, cp = world.ledger.size(), world.ledger.latest_checkpoint()
    for batch, at in (([*good, bad], n), ([*good[:7], not_theirs, *good[7:], bad], n + 1)):
        with pytest.raises(BatchRejected) as e:
            world.ledger.append_batch(batch)
        assert [(i, err.code) for i, err in e.value.errors] == [(at, "bad_signature")]
        assert world.ledger.size() == size and world.ledger.latest_checkpoint() == cp
    with pytest.raises(BatchRejected) as e:  # without the bad signature, the sequencer's reason
        world.ledger.append_batch([*good[:7], not_theirs, *good[7:]])
    assert [i for i, _ in e.value.errors] == [7] and "only" in str(e.value.errors[0][1])
    receipts = world.ledger.append_batch(good)
    assert [r.seq for r in receipts] == list(range(size, size + n))
    assert audit(world.store).ok


def test_checkpoints_are_kept_and_consistent(world: World) -> None:
    party, key = world.register()
    sizes = [world.ledger.size()]
    for b in range(5):
        world.append_events(party, key, 7 + b, start=100 * b)
        sizes.append(world.ledger.size())
    verifier = world.ledger.log_verifier()
    roots = {}
    for s in sizes:
        cp = Checkpoint.parse(verifier.verify(world.ledger.checkpoint_note(s)))
        assert cp.size == s
        roots[s] = cp.root
    for a in sizes:
        for b in sizes:
            if a <= b:
                p = world.ledger.consistency_proof(a, b)
                merkle.verify_consistency(
                    first=a, second=b, first_root=roots[a], second_root=roots[b], proof=p.hashes
                )


def test_proofs_for_every_seq_and_size(world: World) -> None:
    party, key = world.register()
    world.append_events(party, key, 21)
    n = world.ledger.size()
    leaves = [world.ledger.entry(s).leaf_hash for s in range(n)]
    for size in range(1, n + 1):
        root = merkle.root_from_leaves(leaves[:size])
        assert world.ledger.root(size) == root
        for seq in range(size):
            p = world.ledger.inclusion_proof(seq, size)
            merkle.verify_inclusion(leaf=leaves[seq], index=seq, size=size, proof=p.hashes, root=root)
    with pytest.raises(NotFound):
        world.ledger.inclusion_proof(n, n)
    with pytest.raises(NotFound):
        world.ledger.inclusion_proof(0, n + 1)


def test_key_rotation_and_revocation(world: World) -> None:
    party, old = world.register(["producer"])
    new = PartyKey.generate("new")
    rot = sign_one(
        kind="party.key.rotate",
        signer=party,
        key=old,
        body={"publicKey": new.public_key_b64},
        cosigners=[(world.registrar, world.registrar_key)],
    )
    rot_seq = world.ledger.append(rot).seq
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(world.event(party, old, 1))
    assert e.value.errors[0][1].code == "key_revoked"
    assert f"rotated at seq {rot_seq}" in e.value.errors[0][1].message
    world.ledger.append(world.event(party, new, 2))
    rev = sign_one(kind="party.key.revoke", signer=party, key=new, body={"party": party, "key": new.key_id})
    rev_seq = world.ledger.append(rev).seq
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(world.event(party, new, 3))
    msg = e.value.errors[0][1].message
    assert new.key_id in msg and f"revoked at seq {rev_seq}" in msg and party in msg
    assert audit(world.store).ok


def test_rotation_without_registrar_is_refused(world: World) -> None:
    party, old = world.register()
    new = PartyKey.generate("new")
    rot = sign_one(kind="party.key.rotate", signer=party, key=old, body={"publicKey": new.public_key_b64})
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(rot)
    assert e.value.errors[0][1].code == "registrar_cosignature_missing"


def test_only_party_or_registrar_revokes(world: World) -> None:
    a, ka = world.register()
    b, kb = world.register()
    rev = sign_one(kind="party.key.revoke", signer=b, key=kb, body={"party": a, "key": ka.key_id})
    with pytest.raises(BatchRejected, match="only"):
        world.ledger.append(rev)
    by_registrar = sign_one(
        kind="party.key.revoke",
        signer=world.registrar,
        key=world.registrar_key,
        body={"party": a, "key": ka.key_id},
    )
    world.ledger.append(by_registrar)
    with pytest.raises(BatchRejected, match="revoked"):
        world.ledger.append(world.event(a, ka, 1))


def test_registration_and_use_in_one_batch(world: World) -> None:
    party = new_uscc()
    key = PartyKey.generate("p")
    receipts = world.ledger.append_batch(
        [world.registration(party, key), world.event(party, key, 1), world.event(party, key, 2)]
    )
    assert [r.seq for r in receipts] == [1, 2, 3]
    assert audit(world.store).ok


def test_append_only_triggers(world: World) -> None:
    party, key = world.register()
    world.append_events(party, key, 3)
    for sql in (
        "UPDATE entries SET kind = 'x' WHERE seq = 1",
        "DELETE FROM entries WHERE seq = 2",
        "UPDATE merkle_nodes SET hash = hash WHERE node = 0",
        "DELETE FROM merkle_nodes",
        "UPDATE checkpoints SET note = 'x'",
        "DELETE FROM checkpoints",
    ):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"):
            world.store.raw(sql)
    if world.store.dialect == "postgresql":
        for t in ("entries", "merkle_nodes", "checkpoints"):
            with pytest.raises(sa.exc.DBAPIError, match="append-only"):
                world.store.raw(f"TRUNCATE {t}")
    assert world.ledger.size() == 5
    assert audit(world.store).ok


def test_migration_and_create_all_give_the_same_schema(world: World, tmp_path: object) -> None:
    from ledger.store.schema import metadata

    other = sa.create_engine(f"sqlite:///{tmp_path}/create_all.db")
    metadata.create_all(other)

    def triggers(engine: sa.Engine) -> set[str]:
        with engine.connect() as c:
            if engine.dialect.name == "sqlite":
                return {
                    r[0] for r in c.exec_driver_sql("SELECT name FROM sqlite_master WHERE type='trigger'")
                }
            return {
                r[0]
                for r in c.exec_driver_sql(
                    "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE NOT tgisinternal AND n.nspname = current_schema()"
                )
            }

    def tables(engine: sa.Engine) -> dict[str, list[str]]:
        insp = sa.inspect(engine)
        return {
            t: sorted(c["name"] for c in insp.get_columns(t))
            for t in insp.get_table_names()
            if t != "alembic_version"
        }

    assert tables(world.store.engine) == tables(other)
    expected = {
        "sqlite": {
            f"{t}_no_{op}"
            for t in ("entries", "merkle_nodes", "checkpoints")
            for op in ("update", "delete", "replace")
        },
        "postgresql": {
            f"{t}_no_{op}"
            for t in ("entries", "merkle_nodes", "checkpoints")
            for op in ("change", "truncate")
        },
    }
    assert triggers(world.store.engine) == expected[world.store.dialect]
    assert triggers(other) == expected["sqlite"]


def test_a_second_operator_key_cannot_sign(world: World) -> None:
    from ledger.log.home import Home

    party, key = world.register()
    stranger = Home(world.home.path.parent / "other").create_note_signer("test.suyuan/log")
    led = Ledger(world.store, note_signer=stranger)
    with pytest.raises(Exception, match="not the one this ledger's genesis names"):
        led.append(world.event(party, key, 1))


def test_log_key_is_the_genesis_key(world: World) -> None:
    signer = world.ledger.note_signer
    assert signer is not None
    assert world.ledger.log_verifier().vkey() == signer.verifier_key()
    NoteVerifier.from_vkey(signer.verifier_key()).verify(world.ledger.latest_checkpoint())


def test_sqlite_log_reaches_the_database_file_without_the_appender(tmp_path: Path, monkeypatch: Any) -> None:
    """The write-ahead log is copied into the database file by the checkpoint thread, not by
    the appender's commit: after a small append (far below wal_autocheckpoint) the main
    file alone, read without its log, already holds the new entries; and an idle thread
    ends, giving back its connection."""
    import shutil
    import sqlite3
    import threading
    import time

    from ledger.store import db as dbmod

    monkeypatch.setattr(dbmod, "IDLE_SECONDS", 0.3)
    w = World.create(f"sqlite:///{tmp_path}/l.db", home=tmp_path / "home")
    try:
        party, key = w.register()
        w.append_events(party, key, 30)
        size = w.ledger.size()

        def on_disk() -> int:
            shutil.copy(tmp_path / "l.db", tmp_path / "alone.db")
            con = sqlite3.connect(tmp_path / "alone.db")
            try:
                return int(con.execute("SELECT count(*) FROM entries").fetchone()[0])
            except sqlite3.DatabaseError:
                return -1
            finally:
                con.close()

        deadline = time.monotonic() + 10
        while on_disk() != size and time.monotonic() < deadline:
            time.sleep(0.05)
        assert on_disk() == size

        def checkpointers() -> int:
            return sum(t.name == "suyuan-wal-checkpoint" and t.is_alive() for t in threading.enumerate())

        while checkpointers() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert checkpointers() == 0
        w.append_events(party, key, 3, start=100)  # a new write starts a new one
        assert w.ledger.size() == size + 3
    finally:
        w.close()


def test_ledger_time_never_goes_back_when_the_clock_does(world: World, monkeypatch: Any) -> None:
    import json

    from ledger.log import sequencer as log

    party, key = world.register()
    first = world.append_events(party, key, 2)[-1]
    t1 = json.loads(world.ledger.entry(first.seq).raw)["time"]
    monkeypatch.setattr(log, "ledger_time", lambda: "2001-01-01T00:00:00.000000Z")
    second = world.append_events(party, key, 2, start=10)
    times = [json.loads(world.ledger.entry(r.seq).raw)["time"] for r in second]
    assert times == [t1, t1]
    assert audit(world.store).ok


def test_sqlite_writers_queue_on_the_lock_file(tmp_path: Path) -> None:
    """An append waits while another process holds the writers' file lock, and goes on the
    moment it is released (SQLite's busy handler would poll and sleep instead)."""
    import fcntl
    import os
    import threading

    w = World.create(f"sqlite:///{tmp_path}/l.db", home=tmp_path / "home")
    try:
        party, key = w.register()
        size = w.ledger.size()
        lock = tmp_path / "l.db-writer.lock"
        assert lock.exists()  # the appends above queued on it
        fd = os.open(lock, os.O_RDWR)
        fcntl.flock(fd, fcntl.LOCK_EX)  # another open file: excludes like another process
        done = threading.Event()
        t = threading.Thread(target=lambda: (w.append_events(party, key, 2), done.set()))
        t.start()
        try:
            assert not done.wait(0.5)
            assert w.ledger.size() == size
        finally:
            os.close(fd)
        t.join(30)
        assert done.is_set() and w.ledger.size() == size + 2
    finally:
        w.close()
