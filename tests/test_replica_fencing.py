"""The fencing rule (ledger/log/fencing.py) on SQLite files, no cluster needed: a copy of the
ledger's database that went on and got a checkpoint cosigned stands for a promoted
standby; the ledger writing the original, seeing the copy as its replica, is fenced.
(tests/test_replica_failover.py does the same with a real PostgreSQL failover.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ledger.core import merkle
from ledger.core.keys import PartyKey
from ledger.log.fencing import Cosigned, Fenced, check_extends
from ledger.log.sequencer import Ledger
from ledger.log.witnesses import gather
from ledger.store.db import Store
from tests.support import World, new_uscc
from tests.test_replica_failover import _witnessing


def _copy(world: World, tmp_path: Path, name: str) -> str:
    src = Path(world.store.engine.url.database or "")
    dst = tmp_path / name
    world.store.dispose()  # the WAL is in the file once every connection is closed
    shutil.copy(src, dst)
    return f"sqlite:///{dst}"


def test_the_rule() -> None:
    roots = {3: b"a" * 32, 5: b"b" * 32}
    seen = [Cosigned(3, roots[3], "r1"), Cosigned(5, roots[5], "r2")]
    check_extends(seen, size=5, root_at=roots.__getitem__)  # extends both
    check_extends([], size=1, root_at=roots.__getitem__)  # nothing seen, nothing fenced
    with pytest.raises(Fenced, match="size 5 on r2 is cosigned .* only reach size 4"):
        check_extends(seen, size=4, root_at=roots.__getitem__)
    with pytest.raises(Fenced, match="another root at size 3 than the checkpoint cosigned on r1"):
        check_extends(seen, size=6, root_at={**roots, 3: b"c" * 32}.__getitem__)


def test_a_forked_copy_with_a_cosigned_checkpoint_fences(tmp_path: Path) -> None:
    world = World.create(f"sqlite:///{tmp_path}/a.db", home=tmp_path / "home")
    signer = world.home.note_signer_if_any()
    producer, key = world.register(["producer"])
    world.append_events(producer, key, 3)
    cfg, post = _witnessing(tmp_path, world.ledger.log_verifier().vkey())
    assert gather(world.ledger, cfg, post).witnessed
    cut = world.ledger.size()
    b_url = _copy(world, tmp_path, "b.db")

    # b (the "promoted standby") goes on and gets its checkpoint cosigned.
    b = Ledger(Store(b_url, read_urls=()), note_signer=signer)
    b.append_batch([world.event(producer, key, 10 + n) for n in range(3)])
    assert gather(b, cfg, post).witnessed
    cosigned = b.size()
    b.store.dispose()

    a = Ledger(Store(world.url, read_urls=[b_url]), note_signer=signer)
    try:
        with pytest.raises(Fenced) as behind:
            a.append(world.event(producer, key, 20))
        assert behind.value.code == "fenced"
        assert f"size {cosigned} on read replica 1 of SUYUAN_DB_READ" in behind.value.message
        with pytest.raises(Fenced, match="forked"):
            a.append_batch([world.event(producer, key, 30 + n) for n in range(5)])
        assert a.size() == cut
        assert b_url.endswith("b.db")
    finally:
        a.store.dispose()
    # Rebuilt from b (what the README's procedure does to an old primary), a appends again.
    shutil.copy(tmp_path / "b.db", tmp_path / "a2.db")
    a2 = Ledger(Store(f"sqlite:///{tmp_path}/a2.db", read_urls=[b_url]), note_signer=signer)
    try:
        a2.append(world.event(producer, key, 40))
        proof = a2.consistency_proof(cosigned, a2.size())
        merkle.verify_consistency(
            first=cosigned,
            second=a2.size(),
            first_root=a2.root(cosigned),
            second_root=a2.root(),
            proof=proof.hashes,
        )
    finally:
        a.store.dispose()


def test_checkpoints_of_another_log_fence_nothing(tmp_path: Path) -> None:
    """A "replica" that is another log (another key) is not this log's: it is ignored."""
    world = World.create(f"sqlite:///{tmp_path}/a.db", home=tmp_path / "home")
    other = World.create(f"sqlite:///{tmp_path}/o.db", home=tmp_path / "other")
    producer, key = other.register(["producer"])
    other.append_events(producer, key, 5)
    cfg, post = _witnessing(tmp_path, other.ledger.log_verifier().vkey())
    assert gather(other.ledger, cfg, post).witnessed
    other.close()
    world.store.dispose()
    a = Ledger(Store(world.url, read_urls=[other.url]), note_signer=world.home.note_signer_if_any())
    try:
        party = new_uscc()
        a.append(world.registration(party, PartyKey.generate(party)))
        assert a.size() == 2
    finally:
        a.store.dispose()
