"""Reads from a real PostgreSQL hot standby (SUYUAN_DB_READ), writes to the primary.

The suite starts its own pair of clusters (tests/pgcluster.py: ``initdb``, then
``pg_basebackup`` and streaming replication on other free ports); the shared server at
5432 is not touched. With the standby's replay paused, the primary moves on while every
answer served from the standby — the consumer page, GraphQL, proofs, the checkpoint —
names the standby's own, older checkpoint and holds nothing newer than it.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from api.app import create_app
from api.replicas import HEADER
from api.settings import Settings
from ledger.core import merkle
from ledger.core.errors import ConfigError
from ledger.core.note import Checkpoint, NoteVerifier
from ledger.log.sequencer import ConsistencyProof, InclusionProof
from ledger.store.db import Store, split_read_urls
from tests.pgcluster import Cluster, Clusters, free_port, pg_bin, replayed
from tests.support import World
from tests.test_auth import Api

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parent.parent
ITEM = "/01/09506000134352/21/{}"
TRACE_Q = """query($c: String!) { trace(code: $c) { journey { seq } checkpoint { size rootHash } } }"""
SUBMIT_Q = """mutation($e: [JSON!]!) { submit(envelopes: $e) { error { code } receipt { seq } } }"""


def _need_clusters() -> None:
    if pg_bin() is None:
        msg = "no PostgreSQL server binaries under /usr/lib/postgresql"
        if os.environ.get("CI"):
            pytest.fail(msg + " — CI must run the replica tests (.ci/run installs them)")
        pytest.skip(msg)


@pytest.fixture(scope="module")
def clusters() -> Iterator[tuple[Cluster, Cluster]]:
    _need_clusters()
    cs = Clusters()
    try:
        primary = cs.primary()
        primary.sql("CREATE DATABASE suyuan")
        standby = cs.standby(primary, "standby1")
        yield primary, standby
    finally:
        cs.close()


@pytest.fixture
def pair(clusters: tuple[Cluster, Cluster], tmp_path: Path) -> Iterator[tuple[Cluster, Cluster, World]]:
    """A fresh ledger (its own schema) on the primary, replayed on the standby."""
    primary, standby = clusters
    schema = f"s_{os.urandom(6).hex()}"
    primary.sql(f'CREATE SCHEMA "{schema}"', "suyuan")
    world = World.create(f"{primary.url('suyuan')}?options=-csearch_path%3D{schema}", home=tmp_path / "home")
    world.schema = schema  # type: ignore[attr-defined]
    replayed(standby, primary)
    yield primary, standby, world
    world.close()
    if standby.sql("SELECT pg_is_wal_replay_paused()")[0][0]:
        standby.sql("SELECT pg_wal_replay_resume()")


def _on(cluster: Cluster, world: World) -> str:
    return f"{cluster.url('suyuan')}?options=-csearch_path%3D{world.schema}"  # type: ignore[attr-defined]


def _app(world: World, read: list[str]) -> Api:
    return Api(
        create_app(
            Settings(
                db_url=world.url, db_read=tuple(read), home=world.home.path, base_url="https://trace.example"
            )
        )
    )


def _named(r: httpx.Response) -> tuple[int, bytes]:
    """The checkpoint an answer says it was verified against (size, root)."""
    size, root = r.headers[HEADER].split(" ")
    return int(size), base64.b64decode(root)


def _page(api: Api, serial: int) -> tuple[httpx.Response, dict[str, Any]]:
    r = api.request("GET", ITEM.format(serial), headers={"Accept": "application/json"})
    assert r.status_code == 200, r.text
    return r, r.json()


def _gql(api: Api, query: str, **variables: Any) -> tuple[httpx.Response, dict[str, Any]]:
    r = api.gql(query, **variables)
    assert r.status_code == 200 and "errors" not in r.json(), r.text
    return r, r.json()["data"]


def _scans(cluster: Cluster, world: World) -> int:
    return int(
        cluster.sql(
            f'SELECT count(*) FROM "{world.schema}".scans',  # type: ignore[attr-defined]
            "suyuan",
        )[0][0]
    )


def _size(cluster: Cluster, world: World) -> int:
    return int(
        cluster.sql(
            f'SELECT coalesce(max(size), 0) FROM "{world.schema}".checkpoints',  # type: ignore[attr-defined]
            "suyuan",
        )[0][0]
    )


def _verify_checkpoint(world: World, note: str) -> Checkpoint:
    """The note's checkpoint, its signature checked with the log's verifier key."""
    NoteVerifier.from_vkey(world.ledger.log_verifier().vkey()).verify(note)
    return Checkpoint.parse(note.split("\n\n", 1)[0] + "\n")


def test_answers_from_the_standby_name_its_checkpoint_while_it_lags(
    pair: tuple[Cluster, Cluster, World],
) -> None:
    primary, standby, world = pair
    producer, key = world.register(["producer", "logistics"])
    world.append_events(producer, key, 3, start=1)
    replayed(standby, primary)
    api = _app(world, [_on(standby, world)])
    try:
        first = world.ledger.size()
        r, facts = _page(api, 1)
        assert _named(r) == (first, world.ledger.root(first))
        assert facts["verification"]["checkpoint"] == first and facts["verification"]["verified"]

        # Replay stops on the standby; the primary goes on (a new event about item 1).
        standby.sql("SELECT pg_wal_replay_pause()")
        world.ledger.append_batch([world.event(producer, key, 1, bizStep="shipping")])
        world.append_events(producer, key, 2, start=10)
        now = world.ledger.size()
        assert now > first and _size(primary, world) == now and _size(standby, world) == first

        # The page: the standby's checkpoint, verified, without the primary's new event.
        r, facts = _page(api, 1)
        assert _named(r) == (first, world.ledger.root(first))
        assert facts["verification"]["checkpoint"] == first and facts["verification"]["verified"]
        assert "shipping" not in r.text
        # An item only the primary holds yet is not known to the standby.
        assert api.request("GET", ITEM.format(10), headers={"Accept": "application/json"}).status_code == 404

        # GraphQL: the journey and the checkpoint of one snapshot, the standby's.
        r, d = _gql(api, TRACE_Q, c="https://id.gs1.org" + ITEM.format(1))
        seqs = [s["seq"] for s in d["trace"]["journey"]]
        assert d["trace"]["checkpoint"]["size"] == first == _named(r)[0]
        assert seqs and max(seqs) < first
        assert bytes.fromhex(d["trace"]["checkpoint"]["rootHash"]) == world.ledger.root(first)

        # EPCIS 2.0 queries: the standby's events, the checkpoint of that snapshot named.
        r = api.request("GET", "/epcis/events?EQ_bizStep=shipping")
        assert r.status_code == 200 and _named(r)[0] == first, r.text
        assert r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"] == []
        r = api.request("GET", "/epcis/events?EQ_bizStep=commissioning")
        listed = r.json()["epcisBody"]["queryResults"]["resultsBody"]["eventList"]
        assert r.status_code == 200 and len(listed) == 3

        # The checkpoint and proofs: the standby's, and they verify against it.
        r = api.request("GET", "/checkpoint")
        cp = _verify_checkpoint(world, r.text)
        assert cp.size == first == _named(r)[0]
        r = api.request("GET", f"/proof/inclusion/1/{first}")
        proof = InclusionProof.from_dict(r.json())
        merkle.verify_inclusion(
            leaf=world.ledger.entry(1).leaf_hash, index=1, size=first, proof=proof.hashes, root=cp.root
        )
        # A tree the standby has not replayed yet: not found there, not made up.
        assert api.request("GET", f"/proof/consistency/{first}/{now}").status_code == 404
        # Tiles: the standby's partial tile of its size; the primary's wider one not yet.
        r = api.request("GET", f"/tile/0/000.p/{first}")
        assert r.status_code == 200 and _named(r)[0] == first
        assert r.content == b"".join(world.ledger.entry(s).leaf_hash for s in range(first))
        assert api.request("GET", f"/tile/entries/000.p/{now}").status_code == 404

        # Writes go to the primary: the scans of the page views, and a GraphQL submit.
        assert _scans(primary, world) >= 2
        env = world.event(producer, key, 20)
        r, d = _gql(api, SUBMIT_Q, e=[env])
        assert d["submit"][0]["error"] is None and d["submit"][0]["receipt"]["seq"] == now
        assert _size(primary, world) == now + 1 and _size(standby, world) == first
        assert _named(api.request("GET", "/healthz"))[0] == first

        # Replay resumes: the standby catches up and answers from the new checkpoint.
        standby.sql("SELECT pg_wal_replay_resume()")
        replayed(standby, primary)
        r, facts = _page(api, 1)
        assert _named(r)[0] == now + 1 == facts["verification"]["checkpoint"]
        assert "shipping" in r.text
        r = api.request("GET", f"/proof/consistency/{first}/{now + 1}")
        merkle.verify_consistency(
            first=first,
            second=now + 1,
            first_root=world.ledger.root(first),
            second_root=world.ledger.root(now + 1),
            proof=ConsistencyProof.from_dict(r.json()).hashes,
        )
    finally:
        api.app.state.store.dispose()


def test_one_request_reads_one_snapshot(pair: tuple[Cluster, Cluster, World]) -> None:
    """Replay resumed between two reads of one pinned request changes nothing it sees."""
    primary, standby, world = pair
    producer, key = world.register(["producer"])
    replayed(standby, primary)
    store = Store(world.url, read_urls=[_on(standby, world)]).reader()
    try:
        standby.sql("SELECT pg_wal_replay_pause()")
        world.append_events(producer, key, 2)
        with store.pinned() as pin:
            with store.reading() as conn:
                before = store.head(conn)
            standby.sql("SELECT pg_wal_replay_resume()")
            replayed(standby, primary)
            with store.reading() as conn:
                after = store.head(conn)
                rows = conn.exec_driver_sql("SELECT count(*) FROM entries").scalar()
            assert before == after == pin.head and before is not None
            assert rows == before.size < world.ledger.size()
            assert pin.url is not None and f":{standby.port}/" in pin.url
        with store.reading() as conn:  # a new read, a new snapshot
            assert store.head(conn).size == world.ledger.size()  # type: ignore[union-attr]
    finally:
        store.dispose()


def test_an_unreachable_replica_is_skipped(pair: tuple[Cluster, Cluster, World]) -> None:
    """A replica that refuses connections is passed over for the next one; with none left,
    the primary answers."""
    primary, standby, world = pair
    first = world.ledger.size()
    standby.sql("SELECT pg_wal_replay_pause()")
    world.register(["producer"])  # the primary moves on: the sizes tell who answered
    now = world.ledger.size()
    dead = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/suyuan"
    api = _app(world, [dead, _on(standby, world)])
    alone = _app(world, [dead])
    try:
        for _ in range(3):  # each replica is tried first in turn
            r = api.request("GET", "/healthz")
            assert r.status_code == 200 and _named(r)[0] == first < now
        r = alone.request("GET", "/healthz")
        assert r.status_code == 200 and _named(r)[0] == now
    finally:
        api.app.state.store.dispose()
        alone.app.state.store.dispose()


def test_the_page_answers_when_the_primary_is_down(clusters: tuple[Cluster, Cluster], tmp_path: Path) -> None:
    """The page's scan cannot be written (the primary is gone): it is dropped, and the page
    still answers from the standby. Runs last in this module: it stops the primary."""
    primary, standby = clusters
    schema = f"s_{os.urandom(6).hex()}"
    primary.sql(f'CREATE SCHEMA "{schema}"', "suyuan")
    world = World.create(f"{primary.url('suyuan')}?options=-csearch_path%3D{schema}", home=tmp_path / "home")
    world.schema = schema  # type: ignore[attr-defined]
    producer, key = world.register(["producer"])
    world.append_events(producer, key, 1, start=5)
    size = world.ledger.size()
    replayed(standby, primary)
    api = _app(world, [_on(standby, world)])
    tries: list[str] = []
    sa.event.listen(
        api.app.state.store.engine, "handle_error", lambda ctx: tries.append(str(ctx.original_exception))
    )
    try:
        primary.stop("fast")
        r, facts = _page(api, 5)
        assert _named(r)[0] == size == facts["verification"]["checkpoint"]
        assert facts["verification"]["verified"]
        assert len(tries) == 1 and "refused" in tries[0]  # the scan tried the primary
        # The next pages do not wait for the primary again: the breaker is open.
        for _ in range(2):
            r, facts = _page(api, 5)
            assert _named(r)[0] == size and facts["verification"]["verified"]
        assert api.app.state.primary_breaker.open
        assert len(tries) == 3 and all("not tried again yet" in t for t in tries[1:])
        api.app.state.primary_breaker.until = 0  # its pause is over: the primary is tried
        r, facts = _page(api, 5)
        assert facts["verification"]["verified"] and "refused" in tries[3]
        assert api.app.state.primary_breaker.open
        r = api.gql(SUBMIT_Q, e=[world.event(producer, key, 6)])  # a write has nowhere to go
        assert r.status_code == 200 and r.json().get("errors"), r.text
        (problem,) = r.json()["errors"]
        assert problem["extensions"]["code"] == "storage", problem
        assert problem["message"].startswith("the database server cannot be reached"), problem
    finally:
        api.app.state.store.dispose()
        world.close()
        primary.start()
        primary.wait_ready()


def test_replica_urls_are_split_and_checked() -> None:
    assert split_read_urls(" postgresql://a/x, postgresql://b/x postgresql://c/x,") == (
        "postgresql://a/x",
        "postgresql://b/x",
        "postgresql://c/x",
    )
    assert split_read_urls(None) == () == split_read_urls("")
    with pytest.raises(ConfigError, match="same engine"):
        Store("sqlite://", read_urls=["postgresql+psycopg://postgres@127.0.0.1:1/x"])


def test_serve_reads_from_the_replica_given(pair: tuple[Cluster, Cluster, World], tmp_path: Path) -> None:
    """`suyuan serve --db-read URL`: the real server, answering from the standby."""
    primary, standby, world = pair
    port = free_port()
    env = {**os.environ, "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    env.pop("SUYUAN_DB_READ", None)
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tools.cli", "serve", "--port", str(port), "--db-read", _on(standby, world)],
        env=env,
        cwd=REPO,
        stdout=log,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/healthz")
                break
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "serve.log"
                ).read_text()
                time.sleep(0.2)
        first = world.ledger.size()
        assert _named(r)[0] == first
        standby.sql("SELECT pg_wal_replay_pause()")
        world.register(["producer"])
        assert world.ledger.size() > first
        r = httpx.get(f"http://127.0.0.1:{port}/checkpoint")
        assert _named(r)[0] == first == _verify_checkpoint(world, r.text).size
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
