"""C2SP tlog-tiles on both stores: paths as the spec writes them, tiles served with their
cache headers and read back by an independent reader (tests/tilereader.py), a static
export that is byte-identical, incremental and atomic, entries too large for a bundle
refused at append, and monitor and verify working from tiles alone.

The 100,000-entry log, Go's reader and served-versus-exported identity at that size are in
tests/test_tiles_big.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nacl.signing
import pytest

from api.app import create_app
from api.settings import Settings
from api.witness_app import create_witness_app
from ledger.core import tiles
from ledger.core.errors import BatchRejected, MalformedInput
from ledger.core.keys import PartyKey
from ledger.core.note import NoteSigner
from ledger.core.statements import sign_one
from ledger.log import admission
from ledger.log.cosigner import Cosigner, Witness
from ledger.log.home import genesis_envelope
from ledger.log.monitor import observe_tiles
from ledger.log.sequencer import Ledger
from ledger.log.tiles_export import STATE, export
from ledger.log.witnesses import WitnessConfig, Witnessing, gather
from ledger.store.db import Store
from ledger.store.schema import node_key
from tests import tilereader
from tests.support import ORIGIN, Client, Server, World, asgi_post, new_uscc

REPO = Path(__file__).resolve().parent.parent


def grow(world: World, party: str, key: PartyKey, count: int, start: int) -> None:
    for s in range(start, start + count, 200):
        world.append_events(party, key, min(200, start + count - s), start=s)


def fetch_of(client: Client) -> Any:
    def get(path: str) -> bytes | None:
        r = client.get("/" + path)
        return r.content if r.status_code == 200 else None

    return get


def fetch_dir(root: Path) -> Any:
    def get(path: str) -> bytes | None:
        try:
            return (root / path).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return None

    return get


def cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ["PATH"]}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


# --- paths ---------------------------------------------------------------------------------


def test_paths_and_tile_sets_are_the_specs() -> None:
    assert tiles.encode_index(1234067) == "x001/x234/067"
    assert tiles.Tile(0, 1234067).path() == "tile/0/x001/x234/067"
    assert tiles.Tile(tiles.ENTRIES, 5, 17).path() == "tile/entries/005.p/17"
    # "a tree of size 70,000 will be represented by 273 full level 0 tiles, one partial level
    # 0 tile of width 112, one full level 1 tile, one partial level 1 tile of width 17, and
    # one partial level 2 tile of width 1" (and as many entry bundles as level-0 tiles).
    hashes = [t for t in tiles.tiles_for_size(70_000) if not t.is_bundle]
    assert [t for t in hashes if t.level == 0] == [tiles.Tile(0, i) for i in range(273)] + [
        tiles.Tile(0, 273, 112)
    ]
    assert [t for t in hashes if t.level > 0] == [tiles.Tile(1, 0), tiles.Tile(1, 1, 17), tiles.Tile(2, 0, 1)]
    # "a tree of size 256 will be represented by a full level 0 tile and a partial level 1
    # tile of width 1"
    assert [t.path() for t in tiles.tiles_for_size(256)] == [
        "tile/entries/000",
        "tile/0/000",
        "tile/1/000.p/1",
    ]
    assert tiles.tiles_for_size(0) == []
    for n in (0, 7, 999, 1000, 1001, 255_999, 10**9, 123_456_789_012):
        for w in (1, 255, 256):
            p = tilereader.tile_path(3, n, w)
            assert tiles.Tile(3, n, w).path() == p and tiles.parse_path(p) == tiles.Tile(3, n, w)
    for bad in (
        "tile/0/0",
        "tile/00/000",
        "tile/0/x000/001",
        "tile/0/001.p/256",
        "tile/0/001.p/0",
        "tile/0/001.p/017",
        "tile/64/000",
        "tile/-1/000",
        "tile/data/000",
        "tile/0/000/",
        "tile/0/x1/000",
        "tile/entries/000.p/",
    ):
        with pytest.raises(MalformedInput):
            tiles.parse_path(bad)


# --- served --------------------------------------------------------------------------------


def test_served_tiles_read_back_by_an_independent_reader(world: World, client: Client) -> None:
    party, key = world.register()
    grow(world, party, key, 700, 0)
    size = world.ledger.size()
    assert size == 702  # two full level-0 tiles, a partial of 190, a level-1 tile of 2
    get = fetch_of(client)
    vkey = world.ledger.log_verifier().vkey()
    cp = client.get("/checkpoint")
    assert cp.headers["content-type"] == "text/plain; charset=utf-8"
    assert cp.headers["cache-control"] == "public, max-age=5"
    origin, n, root, _ = tilereader.open_checkpoint(cp.text, vkey)
    assert (origin, n, root) == (ORIGIN, size, world.ledger.root())
    reader = tilereader.Reader(get, size)
    assert reader.root() == root
    for b in range(3):
        for i, entry in enumerate(reader.bundle(b)):
            seq = b * 256 + i
            assert tilereader.leaf(entry) == reader.leaves[seq]
            assert json.loads(entry)["seq"] == seq
    for seq in (0, 1, 255, 256, 511, 512, 701):
        assert tilereader.root_from_path(seq, size, reader.leaves[seq], reader.path(seq)) == root
    assert sorted(set(reader.fetched)) == sorted(
        [
            "tile/0/000",
            "tile/0/001",
            "tile/0/002.p/190",
            "tile/1/000.p/2",
            "tile/entries/000",
            "tile/entries/001",
            "tile/entries/002.p/190",
        ]
    )

    full, partial = client.get("/tile/0/001"), client.get("/tile/0/002.p/190")
    for r in (full, partial):
        assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    assert full.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert partial.headers["cache-control"] == "public, max-age=5"
    # A partial tile of a width the log has passed is still served: its bytes never change.
    passed = client.get("/tile/0/001.p/10")
    assert passed.status_code == 200 and passed.content == full.content[: 10 * 32]
    assert client.get("/tile/entries/000.p/3").content == b"".join(
        len(e).to_bytes(2, "big") + e for e in reader.bundle(0)[:3]
    )
    # Beyond the log: 404 that nothing keeps, since the path will answer later.
    for path in (
        "/tile/0/002",
        "/tile/0/002.p/191",
        "/tile/0/003.p/1",
        "/tile/1/000",
        "/tile/2/000.p/1",
        "/tile/entries/002",
    ):
        r = client.get(path)
        assert r.status_code == 404 and r.headers["cache-control"] == "no-store", path
        assert r.json()["error"]["code"] == "not_found"
    for path in ("/tile/0/2", "/tile/0/x000/002", "/tile/0/000.p/256", "/tile/99/000"):
        r = client.get(path)
        assert r.status_code == 400 and r.json()["error"]["code"] == "malformed", path
    # Bundles are compressed at the HTTP layer when the client takes gzip.
    gz = client.get("/tile/entries/000", headers={"Accept-Encoding": "gzip"})
    assert gz.headers["content-encoding"] == "gzip" and gz.headers["vary"] == "Accept-Encoding"
    assert gz.content == client.get("/tile/entries/000", headers={"Accept-Encoding": "identity"}).content
    assert (
        "content-encoding"
        not in client.get("/tile/entries/000", headers={"Accept-Encoding": "identity"}).headers
    )


def _witness(world: World, tmp_path: Path, n: int) -> tuple[str, Cosigner, Any]:
    c = Cosigner(f"w{n}.example/witness", nacl.signing.SigningKey(bytes([n]) * 32))
    app = create_witness_app(Witness(c, {ORIGIN: world.ledger.log_verifier()}, tmp_path / f"w{n}.json"))
    return f"http://w{n}.example", c, app


# --- export --------------------------------------------------------------------------------


def test_export_is_byte_identical_incremental_and_atomic(
    world: World, client: Client, tmp_path: Path
) -> None:
    out = tmp_path / "mirror"
    party, key = world.register()
    grow(world, party, key, 300, 0)
    first = export(world.ledger, out)
    assert first is not None and first.written[-1] == "checkpoint"  # the checkpoint last
    size1 = world.ledger.size()
    got = files_of(out)
    assert set(got) == {
        tilereader.tile_path("entries" if lv < 0 else lv, i, w) for lv, i, w in _expected(size1)
    } | {"checkpoint"}
    for path, data in got.items():  # byte-identical to what the server serves
        assert fetch_of(client)(path) == data, path
    before = {p: (out / p).stat() for p in got}

    grow(world, party, key, 250, 300)
    size2 = world.ledger.size()
    second = export(world.ledger, out)
    assert second is not None and (second.previous, second.size) == (size1, size2)
    # Only the tiles the larger tree added or widened, then the checkpoint.
    new = _expected(size2) - _expected(size1)
    assert list(second.written[:-1]) == [
        tilereader.tile_path("entries" if lv < 0 else lv, i, w) for lv, i, w in sorted(new)
    ]
    assert second.written[-1] == "checkpoint"
    for path, st in before.items():
        if path in second.written or not (out / path).exists():
            continue
        now = (out / path).stat()
        assert (now.st_ino, now.st_mtime_ns) == (st.st_ino, st.st_mtime_ns), path
    # Partial tiles whose full tile is now written are gone; the others stay.
    assert not (out / "tile/0/001.p").exists() and not (out / "tile/entries/001.p").exists()
    assert sorted(second.removed) == ["tile/0/001.p/46", "tile/entries/001.p/46"]
    assert (out / "tile/1/000.p/1").exists() and (out / "tile/1/000.p/2").exists()
    got = files_of(out)
    for path, data in got.items():
        assert fetch_of(client)(path) == data, path
    assert not [p for p in out.rglob("*.tmp")]
    reader = tilereader.Reader(fetch_dir(out), size2)
    vkey = world.ledger.log_verifier().vkey()
    assert reader.root() == tilereader.open_checkpoint((out / "checkpoint").read_text(), vkey)[2]

    # Nothing new: nothing written. A new cosignature: the checkpoint alone.
    again = export(world.ledger, out)
    assert again is not None and again.written == () and again.removed == ()
    url, c, app = _witness(world, tmp_path, 1)
    assert gather(
        world.ledger, Witnessing((WitnessConfig(url, c.vkey()),), 1), asgi_post({url: app})
    ).witnessed
    cosigned = export(world.ledger, out)
    assert cosigned is not None and cosigned.written == ("checkpoint",)
    assert (out / "checkpoint").read_bytes() == fetch_of(client)("checkpoint")
    assert "\u2014 w1.example/witness " in (out / "checkpoint").read_text()


def _expected(size: int) -> set[tuple[int, int, int]]:
    """(level, index, width) of every tile of a tree of ``size``, level -1 the bundles,
    counted from the spec's words: floor(s / 256**l) hashes at level l."""
    out = set()
    for level in range(-1, 8):
        n = size // 256 ** max(level, 0)
        out |= {(level, i, 256) for i in range(n // 256)}
        if n % 256:
            out.add((level, n // 256, n % 256))
    return out


def test_export_into_a_directory_of_another_log_is_refused(world: World, tmp_path: Path) -> None:
    out = tmp_path / "mirror"
    party, key = world.register()
    world.append_events(party, key, 5)
    assert export(world.ledger, out) is not None
    other = World.create(f"sqlite:///{tmp_path}/other.db", home=tmp_path / "other-home")
    try:
        p2, k2 = other.register()
        other.append_events(p2, k2, 20)
        before = files_of(out)
        with pytest.raises(Exception, match="another tree of 7 entries"):
            export(other.ledger, out)
        assert files_of(out) == before
    finally:
        other.close()


def test_export_publishes_no_checkpoint_when_a_tile_cannot_be_read(world: World, tmp_path: Path) -> None:
    """Someone with database access deletes the newest leaf's node: the export refuses
    before the checkpoint, so the mirror keeps naming only tiles it holds."""
    out = tmp_path / "mirror"
    party, key = world.register()
    world.append_events(party, key, 10)
    assert export(world.ledger, out) is not None
    published = (out / "checkpoint").read_bytes()
    state = (out / STATE).read_bytes()
    world.append_events(party, key, 10, start=10)
    last = world.ledger.size() - 1
    world.store.drop_append_only()
    world.store.raw(f"DELETE FROM merkle_nodes WHERE node = {node_key(0, last)}")
    with pytest.raises(Exception, match=r"no tile/0/000\.p/"):
        export(world.ledger, out)
    assert (out / "checkpoint").read_bytes() == published
    assert (out / STATE).read_bytes() == state


# --- entries too large for a bundle ---------------------------------------------------------


def _event_of_size(world: World, party: str, key: PartyKey, count: int) -> dict[str, Any]:
    return world.event(
        party, key, 0, epcList=[f"https://id.gs1.org/01/09506000134352/21/{n:020d}" for n in range(count)]
    )


def test_an_entry_too_large_for_a_bundle_is_refused_at_append(world: World, client: Client) -> None:
    from ledger.core.statements import prepare

    party, key = world.register()
    # The most EPCs an event can list and still fit a bundle, found by its own bytes.
    lo, hi = 1, 2000
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if (
            len(prepare(_event_of_size(world, party, key, mid)).envelope_bytes)
            <= admission.MAX_ENVELOPE_BYTES
        ):
            lo = mid
        else:
            hi = mid - 1
    size = world.ledger.size()
    with pytest.raises(BatchRejected) as refused:
        world.ledger.append(_event_of_size(world, party, key, lo + 1))
    ((_, err),) = refused.value.errors
    assert err.code == "entry_too_large" and "at most 65381" in err.message
    assert world.ledger.size() == size
    receipt = world.ledger.append(_event_of_size(world, party, key, lo))
    entry = world.ledger.entry(receipt.seq).raw
    assert 65_381 - 300 < len(entry) <= tiles.MAX_ENTRY_BYTES
    bundle = client.get(f"/tile/entries/000.p/{receipt.seq + 1}").content
    reader = tilereader.Reader(fetch_of(client), receipt.seq + 1)
    assert reader.bundle(0)[receipt.seq] == entry and bundle.endswith(entry)


def test_an_older_ledgers_oversized_entry_is_named_not_served(
    world: World, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A ledger written before the bound (the bound lifted here to write one): its bundle
    cannot be encoded, and both the server and the export say which seq, instead of a
    bundle with a wrapped length."""
    party, key = world.register()
    monkeypatch.setattr(admission, "MAX_ENVELOPE_BYTES", 10**6)
    seq = world.ledger.append(_event_of_size(world, party, key, 1500)).seq
    r = client.get(f"/tile/entries/000.p/{seq + 1}")
    assert r.status_code == 500 and r.json()["error"]["code"] == "entry_too_large"
    assert f"entry {seq} is" in r.json()["error"]["message"]
    assert client.get(f"/tile/0/000.p/{seq + 1}").status_code == 200
    done = cli(world, "tiles", "export", str(tmp_path / "mirror"))
    assert done.returncode == 2 and done.stderr.startswith("error [entry_too_large]: entry ")
    assert not (tmp_path / "mirror" / "checkpoint").exists()


# --- monitor and verify from tiles ----------------------------------------------------------


def test_monitor_from_tiles_follows_waits_for_witnesses_and_alarms(world: World, tmp_path: Path) -> None:
    served = create_app(Settings(db_url=world.url, home=world.home.path))
    try:
        _monitor_rounds(world, Client(served), tmp_path)
    finally:
        served.state.store.dispose()


def _monitor_rounds(world: World, client: Client, tmp_path: Path) -> None:
    get = fetch_of(client)
    state = tmp_path / "monitor.json"
    vkey = world.ledger.log_verifier().vkey()
    url, c, app = _witness(world, tmp_path, 1)
    cfg = Witnessing((WitnessConfig(url, c.vkey()),), 1)
    party, key = world.register()
    world.append_events(party, key, 3)
    # Not cosigned yet: checked, not followed.
    waiting = observe_tiles(get, state, log_key=vkey, witness_keys=[c.vkey()], quorum=1)
    assert waiting.ok and waiting.waiting and "cosigned by 0 of the 1" in waiting.waiting
    assert not state.exists()
    assert gather(world.ledger, cfg, asgi_post({url: app})).witnessed
    first = observe_tiles(get, state, log_key=vkey, witness_keys=[c.vkey()], quorum=1)
    assert first.ok and first.cosigned_by == ("w1.example/witness",) and first.waiting is None
    grow(world, party, key, 600, 10)
    assert gather(world.ledger, cfg, asgi_post({url: app})).witnessed
    grown = observe_tiles(get, state, log_key=vkey, witness_keys=[c.vkey()], quorum=1)
    assert grown.ok and (grown.previous, grown.size) == (first.size, world.ledger.size())
    assert grown.as_dict()["cosignedBy"] == ["w1.example/witness"]

    # The operator signs another history with the same key: a fork, then a rollback.
    signer = world.ledger.note_signer
    assert signer is not None
    fork_store = Store(f"sqlite:///{tmp_path}/fork.db")
    fork_store.migrate()
    fork = Ledger(fork_store, note_signer=signer)
    reg_key = PartyKey.generate("r")
    registrar = new_uscc()
    fork.append(
        genesis_envelope(
            origin=ORIGIN,
            signer=signer,
            registrar_id=registrar,
            registrar_name="forged",
            registrar_key=reg_key,
        )
    )
    fork_app = create_app(Settings(db_url=f"sqlite:///{tmp_path}/fork.db"))
    try:
        fork_get = fetch_of(Client(fork_app))
        rollback = observe_tiles(fork_get, state, log_key=vkey)
        assert not rollback.ok and rollback.alarm and rollback.alarm.startswith("ROLLBACK")
        p2 = new_uscc()
        k2 = PartyKey.generate(p2)
        fork.append(
            sign_one(
                kind="party.register",
                signer=p2,
                key=k2,
                body={"id": p2, "name": "forger", "roles": ["producer"], "publicKey": k2.public_key_b64},
                cosigners=[(registrar, reg_key)],
            )
        )
        for s in range(0, world.ledger.size(), 500):
            fork.append_batch([world.event(p2, k2, n) for n in range(s, s + 500)])
        forked = observe_tiles(fork_get, state, log_key=vkey)
        assert not forked.ok and forked.alarm and forked.alarm.startswith("FORK")
    finally:
        fork_app.state.store.dispose()
        fork_store.dispose()
    # Another log's key, and a mirror whose tiles do not match its checkpoint.
    stranger = NoteSigner(ORIGIN, nacl.signing.SigningKey(bytes(32))).verifier_key()
    alien = observe_tiles(get, tmp_path / "s.json", log_key=stranger)
    assert not alien.ok and alien.alarm and alien.alarm.startswith("checkpoint does not verify")
    mirror = tmp_path / "mirror"
    assert export(world.ledger, mirror) is not None
    # The right edge, which every root is read from (a monitor reads no more than it needs).
    tile = mirror / f"tile/0/002.p/{world.ledger.size() - 512}"
    data = bytearray(tile.read_bytes())
    data[40] ^= 1
    tile.write_bytes(bytes(data))
    bad = observe_tiles(fetch_dir(mirror), tmp_path / "m.json", log_key=vkey)
    assert not bad.ok and bad.alarm and "do not hash to the root" in bad.alarm


def test_monitor_and_verify_from_an_exported_directory_by_the_command(world: World, tmp_path: Path) -> None:
    party, key = world.register()
    grow(world, party, key, 300, 0)
    mirror = tmp_path / "mirror"
    done = cli(world, "tiles", "export", str(mirror))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["size"] == world.ledger.size()
    assert json.loads(cli(world, "tiles", "export", str(mirror)).stdout)["written"] == 0
    vkey = world.ledger.log_verifier().vkey()
    mon = cli(
        world, "monitor", "--tiles", str(mirror), "--state", str(tmp_path / "m.json"), "--log-key", vkey
    )
    assert mon.returncode == 0 and json.loads(mon.stdout)["ok"], mon.stderr
    no_key = cli(world, "monitor", "--tiles", str(mirror), "--state", str(tmp_path / "n.json"))
    assert no_key.returncode == 2 and "--log-key" in no_key.stderr
    seqs = ["2", "150", str(world.ledger.size() - 1)]
    ok = cli(world, "verify", "--tiles", str(mirror), "--log-key", vkey, "--seq", *seqs)
    assert ok.returncode == 0, ok.stderr
    doc = json.loads(ok.stdout)
    assert doc["ok"] and set(map(int, seqs)) <= set(doc["verified"])
    assert 0 in doc["verified"] and 1 in doc["verified"]  # genesis and the registration
    assert cli(world, "verify", "--tiles", str(mirror), "--seq", "2").returncode == 2
    # One byte of an entry changed in the mirror: that entry is named, not verified.
    bundle = mirror / "tile/entries/000"
    data = bundle.read_bytes()
    at = data.index(b'"seq":150')
    bundle.write_bytes(data[:at] + b'"seq":151' + data[at + 9 :])
    bad = cli(world, "verify", "--tiles", str(mirror), "--log-key", vkey, "--seq", *seqs)
    assert bad.returncode == 1 and "seq 150: leaf 150 is not included" in bad.stderr
    assert 150 not in json.loads(bad.stdout)["verified"]


def test_verify_from_served_tiles_counts_witnesses(world: World, tmp_path: Path) -> None:
    party, key = world.register()
    world.append_events(party, key, 20)
    url, c, app = _witness(world, tmp_path, 2)
    assert gather(
        world.ledger, Witnessing((WitnessConfig(url, c.vkey()),), 1), asgi_post({url: app})
    ).witnessed
    served = create_app(Settings(db_url=world.url, home=world.home.path))
    vkey = world.ledger.log_verifier().vkey()
    try:
        with Server(served) as srv:
            base = f"http://127.0.0.1:{srv.port}"
            ok = cli(
                world,
                "verify",
                "--tiles",
                base,
                "--log-key",
                vkey,
                "--seq",
                "5",
                "--witness-key",
                c.vkey(),
                "--quorum",
                "1",
            )
            assert ok.returncode == 0, ok.stderr
            assert json.loads(ok.stdout)["cosignedBy"] == ["w2.example/witness"]
            other = Cosigner("w3.example/witness", nacl.signing.SigningKey(bytes([3]) * 32))
            short = cli(
                world,
                "verify",
                "--tiles",
                base,
                "--log-key",
                vkey,
                "--seq",
                "5",
                "--witness-key",
                other.vkey(),
                "--quorum",
                "1",
            )
            assert short.returncode == 1 and "cosigned by 0 of the 1" in short.stderr
            gone = cli(world, "verify", "--tiles", base, "--log-key", vkey, "--seq", "99")
            assert gone.returncode == 2 and "no entry at seq 99" in gone.stderr
    finally:
        served.state.store.dispose()


# --- serve --tiles-dir ----------------------------------------------------------------------


@pytest.fixture
def mirrored(world: World, tmp_path: Path) -> Iterator[tuple[Path, Any]]:
    out = tmp_path / "served-mirror"
    app = create_app(Settings(db_url=world.url, home=world.home.path, tiles_dir=out))
    with Server(app, lifespan="on"):
        yield out, app


def test_serve_keeps_a_tiles_directory_current(world: World, mirrored: tuple[Path, Any]) -> None:
    out, app = mirrored
    party, key = world.register()
    for round_ in range(2):
        world.append_events(party, key, 30, start=30 * round_)
        want = world.ledger.latest_checkpoint()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            cp = out / "checkpoint"
            if cp.exists() and cp.read_text() == want:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the served tiles directory did not catch up")
    assert files_of(out)["tile/entries/000.p/" + str(world.ledger.size())]

    async def served() -> dict[str, bytes]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            return {p: (await c.get("/" + p)).content for p in files_of(out)}

    assert asyncio.run(served()) == files_of(out)


def test_tiles_dir_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SUYUAN_TILES_DIR", str(tmp_path))
    assert Settings.from_env().tiles_dir == tmp_path
    monkeypatch.delenv("SUYUAN_TILES_DIR")
    assert Settings.from_env().tiles_dir is None


def test_a_damaged_node_is_named_not_served(tmp_path: Path) -> None:
    """Someone with write access to the SQLite file stores a node's hash as TEXT: the tile
    holding it is refused naming the node, never served with other bytes."""
    world = World.create(f"sqlite:///{tmp_path}/l.db", home=tmp_path / "home")
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    try:
        party, key = world.register()
        world.append_events(party, key, 300)
        client = Client(app)
        assert client.get("/tile/0/000").status_code == 200
        world.store.drop_append_only()
        world.store.raw(f"UPDATE merkle_nodes SET hash = 'x' WHERE node = {node_key(0, 7)}")
        r = client.get("/tile/0/000")
        assert r.status_code == 500 and r.json()["error"]["code"] == "damaged"
        assert "seq 7: merkle_nodes.hash of node (0, 7) holds TEXT" in r.json()["error"]["message"]
        assert r.headers["cache-control"] == "no-store"
        assert client.get("/tile/0/001.p/46").status_code == 200
        world.store.raw("UPDATE entries SET entry = 'x' WHERE seq = 9")
        r = client.get("/tile/entries/000")
        assert r.status_code == 500 and "seq 9: entries.entry holds TEXT" in r.text
    finally:
        app.state.store.dispose()
        world.close()
