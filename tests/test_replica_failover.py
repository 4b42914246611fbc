"""Failover on real PostgreSQL clusters of the suite's own (tests/pgcluster.py).

1. No printed receipt is lost: with a synchronous standby (``remote_apply``), `suyuan
   submit` streams appends and prints receipts; the primary's postmaster is SIGKILLed
   mid-stream, the standby promoted, and the ledger pointed at it. Every printed receipt is
   there, the new checkpoints are consistent with the last one printed before the failure
   (checked with a consistency proof), `suyuan audit` is sound, and the same stream,
   submitted again in full, lands the rest without a duplicate.
2. Fencing: the old primary comes back, behind the checkpoint the promoted standby got
   cosigned; a ledger writing to it (configured, as before the failover, with the standby
   as its read replica) refuses to append with ``fenced``, whether its tree would be
   smaller than the cosigned one or as large but forked, and its database is unchanged.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nacl.signing
import pytest

from api.witness_app import create_witness_app
from ledger.core import merkle
from ledger.core.note import Checkpoint, NoteVerifier, open_checkpoint
from ledger.log.cosigner import Cosigner, Witness
from ledger.log.fencing import Fenced
from ledger.log.home import Home
from ledger.log.sequencer import InclusionProof, Ledger
from ledger.log.witnesses import WitnessConfig, Witnessing, gather
from ledger.store.db import Store
from tests.pgcluster import Clusters, replayed
from tests.support import ORIGIN, World, asgi_post
from tests.test_replica import _need_clusters

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parent.parent
STREAM = 3000  # envelopes in the stream
BATCH = 10  # envelopes a batch, one checkpoint each
KILL_AFTER = 150  # receipts printed before the primary is killed


@pytest.fixture
def clusters() -> Iterator[Clusters]:
    _need_clusters()
    cs = Clusters()
    yield cs
    cs.close()


def _cli(
    *args: str, db: str, home: Path, extra: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SUYUAN_DB": db, "SUYUAN_HOME": str(home), **(extra or {})}
    env.pop("SUYUAN_DB_READ", None) if not extra or "SUYUAN_DB_READ" not in extra else None
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def _checkpoint(note: str, verifier: NoteVerifier) -> Checkpoint:
    return open_checkpoint(note, verifier, origin=ORIGIN)


def _check_receipt(led: Ledger, r: dict[str, Any], verifier: NoteVerifier) -> None:
    """A printed receipt holds on ``led``: its entry, its checkpoint, its proof."""
    cp = _checkpoint(r["checkpoint"], verifier)
    entry = led.entry(r["seq"])
    assert entry.leaf_hash.hex() == r["leafHash"]
    assert led.receipt_of(r["seq"]).statement_hash.hex() == r["statementHash"]
    assert led.checkpoint_note(cp.size) == r["checkpoint"]  # the same signed checkpoint
    proof = InclusionProof.from_dict(r["inclusionProof"])
    merkle.verify_inclusion(
        leaf=entry.leaf_hash, index=r["seq"], size=cp.size, proof=proof.hashes, root=cp.root
    )


def _consistent(led: Ledger, old: Checkpoint, verifier: NoteVerifier) -> Checkpoint:
    """The ledger's latest checkpoint, proven an extension of ``old``."""
    new = _checkpoint(led.latest_checkpoint(), verifier)
    assert new.size >= old.size
    merkle.verify_consistency(
        first=old.size,
        second=new.size,
        first_root=old.root,
        second_root=new.root,
        proof=led.consistency_proof(old.size, new.size).hashes,
    )
    return new


def test_failover_loses_no_printed_receipt(clusters: Clusters, tmp_path: Path) -> None:
    a = clusters.primary("a")
    a.sql("CREATE DATABASE suyuan")
    b = clusters.standby(a, "b")
    # A commit returns only once standby b has applied it: a receipt is printed after that.
    a.set(synchronous_standby_names="b", synchronous_commit="remote_apply")
    a.wait_sync("b")
    world = World.create(a.url("suyuan"), home=tmp_path / "home")
    producer, key = world.register(["producer"])
    verifier = world.ledger.log_verifier()
    start = world.ledger.size()
    stream = tmp_path / "stream.jsonl"
    stream.write_text("".join(json.dumps(world.event(producer, key, n)) + "\n" for n in range(STREAM)))
    world.close()
    home = world.home.path

    env = {**os.environ, "SUYUAN_DB": a.url("suyuan"), "SUYUAN_HOME": str(home)}
    env.pop("SUYUAN_DB_READ", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "submit", "--batch", str(BATCH), str(stream)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    printed: list[dict[str, Any]] = []
    for line in proc.stdout:
        printed.append(json.loads(line))
        if len(printed) == KILL_AFTER:
            a.kill_postmaster()  # mid-stream: the next batches are in flight
            break
    rest, err = proc.communicate(timeout=300)
    printed += [json.loads(line) for line in rest.splitlines()]
    assert proc.returncode != 0, "the stream should have failed with its primary"
    assert KILL_AFTER <= len(printed) < STREAM, err
    a.wait_gone()

    b.promote()
    led = Ledger(Store(b.url("suyuan"), read_urls=()), note_signer=Home(home).note_signer_if_any())
    try:
        for r in printed:
            _check_receipt(led, r, verifier)
        last = _checkpoint(printed[-1]["checkpoint"], verifier)
        _consistent(led, last, verifier)
    finally:
        led.store.dispose()

    # The client submits the whole stream again to the new primary: what landed before
    # the failure gets its first receipt back, the rest is appended.
    again = _cli("submit", "--batch", "100", str(stream), db=b.url("suyuan"), home=home)
    assert again.returncode == 0, again.stderr
    receipts = [json.loads(line) for line in again.stdout.splitlines()]
    assert len(receipts) == STREAM
    by_statement = {r["statementHash"]: r for r in receipts}
    for r in printed:
        assert by_statement[r["statementHash"]]["seq"] == r["seq"]
    led = Ledger(Store(b.url("suyuan"), read_urls=()))
    try:
        assert led.size() == start + STREAM  # nothing twice
        _consistent(led, last, verifier)
    finally:
        led.store.dispose()

    audit = _cli("audit", db=b.url("suyuan"), home=home)
    assert audit.returncode == 0 and "sound" in audit.stderr, audit.stderr
    assert json.loads(audit.stdout)["ok"] is True


def _witnessing(tmp_path: Path, log_vkey: str) -> tuple[Witnessing, Any]:
    c = Cosigner("w1.example/witness", nacl.signing.SigningKey(bytes([1]) * 32))
    app = create_witness_app(Witness(c, {ORIGIN: NoteVerifier.from_vkey(log_vkey)}, tmp_path / "w1.json"))
    url = "http://w1.example"
    return Witnessing((WitnessConfig(url, c.vkey()),), quorum=1), asgi_post({url: app})


def test_an_old_primary_that_comes_back_is_fenced(clusters: Clusters, tmp_path: Path) -> None:
    a = clusters.primary("a")
    a.sql("CREATE DATABASE suyuan")
    b = clusters.standby(a, "b")
    world = World.create(a.url("suyuan"), home=tmp_path / "home")
    signer = world.home.note_signer_if_any()
    producer, key = world.register(["producer"])
    world.append_events(producer, key, 5)
    cfg, post = _witnessing(tmp_path, world.ledger.log_verifier().vkey())
    assert gather(world.ledger, cfg, post).witnessed
    replayed(b, a)
    cut = world.ledger.size()
    world.close()

    # Failover: a stops, b is promoted, appends, and its checkpoint is cosigned.
    a.stop("fast")
    b.promote()
    new = Ledger(Store(b.url("suyuan"), read_urls=()), note_signer=signer)
    new.append_batch([world.event(producer, key, 100 + n) for n in range(4)])
    assert gather(new, cfg, post).witnessed
    cosigned = new.size()
    assert cosigned == cut + 4

    # a comes back as it was; a ledger process still set up as before the failover
    # (SUYUAN_DB=a, its replica b) tries to append there.
    a.start()
    old = Ledger(Store(a.url("suyuan"), read_urls=[b.url("suyuan")]), note_signer=signer)
    try:
        with pytest.raises(
            Fenced, match=f"size {cosigned} on read replica 1 of SUYUAN_DB_READ is cosigned"
        ) as behind:
            old.append(world.event(producer, key, 200))
        assert behind.value.code == "fenced"
        # As large as the cosigned tree, or larger, but another history: refused too.
        with pytest.raises(Fenced, match=f"another root at size {cosigned}"):
            old.append_batch([world.event(producer, key, 300 + n) for n in range(6)])
        assert old.size() == cut  # nothing was appended
        # Without seeing b, nothing tells a that it was replaced: the fence is what the
        # ledger can see (README: configure every ledger with every member of the cluster).
        blind = Ledger(Store(a.url("suyuan"), read_urls=()), note_signer=signer)
        try:
            assert blind.append(world.event(producer, key, 400)).seq == cut
        finally:
            blind.store.dispose()
    finally:
        old.store.dispose()

    # The new primary, seeing a (behind, but never cosigned past the fork), appends.
    both = Ledger(Store(b.url("suyuan"), read_urls=[a.url("suyuan")]), note_signer=signer)
    try:
        assert both.append(world.event(producer, key, 500)).seq == cosigned
    finally:
        both.store.dispose()
        new.store.dispose()


def test_the_cli_is_fenced_with_its_code(clusters: Clusters, tmp_path: Path) -> None:
    """`suyuan submit` with SUYUAN_DB_READ naming the promoted standby: exit 2, the code."""
    a = clusters.primary("a")
    a.sql("CREATE DATABASE suyuan")
    b = clusters.standby(a, "b")
    world = World.create(a.url("suyuan"), home=tmp_path / "home")
    producer, key = world.register(["producer"])
    cfg, post = _witnessing(tmp_path, world.ledger.log_verifier().vkey())
    replayed(b, a)
    world.close()
    a.stop("fast")
    b.promote()
    new = Ledger(Store(b.url("suyuan"), read_urls=()), note_signer=world.home.note_signer_if_any())
    new.append(world.event(producer, key, 1))
    assert gather(new, cfg, post).witnessed
    new.store.dispose()
    a.start()
    env_file = tmp_path / "one.json"
    env_file.write_text(json.dumps(world.event(producer, key, 2)))
    done = _cli(
        "submit",
        str(env_file),
        db=a.url("suyuan"),
        home=world.home.path,
        extra={"SUYUAN_DB_READ": b.url("suyuan")},
    )
    assert done.returncode == 2 and "[fenced]" in done.stderr, done.stderr
    assert done.stdout == ""
