"""The tiles of a 100,000-entry log (partial tiles at every level), read by two readers
written by others than the server's code: the independent Python reader
(tests/tilereader.py) and Go's golang.org/x/mod/sumdb/tlog (tests/go/tlogreader, built
from Debian's golang-go and golang-golang-x-mod-dev, offline). Served tiles and the
static export are byte-identical; a second export after more appends writes only what
changed. Slow: building the log takes most of a minute."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from api.settings import Settings
from ledger.core import tiles
from ledger.core.statements import sign_one
from ledger.log.tiles_export import export
from tests import tilereader
from tests.support import Server, World

pytestmark = pytest.mark.slow

ENTRIES = 100_000
GO_READER = Path(__file__).resolve().parent / "go" / "tlogreader"


class Big:
    def __init__(self, world: World, party: str, key: Any) -> None:
        self.world, self.party, self.key = world, party, key

    def append(self, start: int, count: int) -> None:
        for s in range(start, start + count, 1000):
            self.world.ledger.append_batch(
                [
                    sign_one(
                        kind="event",
                        signer=self.party,
                        key=self.key,
                        body={
                            "type": "ObjectEvent",
                            "eventTime": "2026-11-27T13:05:00+08:00",
                            "eventTimeZoneOffset": "+08:00",
                            "action": "ADD",
                            "bizStep": "commissioning",
                            "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
                        },
                        issued="2026-11-27T13:05:00+08:00",
                    )
                    for n in range(s, min(s + 1000, start + count))
                ]
            )


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Big]:
    d = tmp_path_factory.mktemp("big")
    world = World.create(f"sqlite:///{d}/ledger.db", home=d / "home")
    party, key = world.register()
    b = Big(world, party, key)
    b.append(0, ENTRIES)
    yield b
    world.close()


def _serve_files(app: Any, paths: list[str]) -> dict[str, bytes]:
    async def go() -> dict[str, bytes]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            out = {}
            for p in paths:
                r = await c.get("/" + p)
                assert r.status_code == 200, p
                out[p] = r.content
            return out

    return asyncio.run(go())


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }


@pytest.fixture(scope="module")
def go_reader(tmp_path_factory: pytest.TempPathFactory) -> Path | None:
    gopath = Path("/usr/share/gocode/src/golang.org/x/mod/sumdb/tlog")
    if shutil.which("go") is None or not gopath.is_dir():
        if os.environ.get("CI"):
            pytest.fail(
                "Go or golang.org/x/mod is missing; .ci/run installs golang-go and golang-golang-x-mod-dev"
            )
        return None
    out = tmp_path_factory.mktemp("go") / "tlogreader"
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": "/usr/share/gocode",
        "GOCACHE": str(out.parent / "cache"),
        "GOFLAGS": "",
    }
    subprocess.run(["go", "build", "-o", str(out), "."], cwd=GO_READER, env=env, check=True, timeout=600)
    return out


def _go(
    reader: Path, base: str, vkey: str, seqs: list[int], old: tuple[int, bytes] | None = None
) -> subprocess.CompletedProcess[str]:
    size, root = old or (0, b"")
    return subprocess.run(
        [str(reader), base, vkey, str(size), base64.b64encode(root).decode(), *map(str, seqs)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_100k_log_read_by_independent_readers_served_and_exported(
    big: Big, go_reader: Path | None, tmp_path: Path
) -> None:
    world = big.world
    size = world.ledger.size()
    assert size == ENTRIES + 2
    vkey = world.ledger.log_verifier().vkey()
    app = create_app(Settings(db_url=world.url, home=world.home.path))
    mirror = tmp_path / "mirror"
    try:
        first = export(world.ledger, mirror)
        assert first is not None
        exported = _files(mirror)
        # Every tile of the tree, the partial ones at every level among them, and no other.
        want = {t.path() for t in tiles.tiles_for_size(size)} | {"checkpoint"}
        assert set(exported) == want
        assert {"tile/0/390.p/162", "tile/entries/390.p/162", "tile/1/001.p/134", "tile/2/000.p/1"} <= want
        assert _serve_files(app, sorted(exported)) == exported  # byte-identical

        origin, n, root, _ = tilereader.open_checkpoint(exported["checkpoint"].decode(), vkey)
        assert n == size and root == world.ledger.root()
        reader = tilereader.Reader(lambda p: exported.get(p), size)
        assert reader.root() == root  # every level-0 tile, every higher tile checked
        rng = random.Random(14)
        sample = sorted(rng.sample(range(size), 40) + [0, 255, 256, size - 1])
        for seq in sample:
            entry = reader.bundle(seq // 256)[seq % 256]
            assert tilereader.leaf(entry) == reader.leaves[seq]
            assert json.loads(entry)["seq"] == seq
            assert tilereader.root_from_path(seq, size, reader.leaves[seq], reader.path(seq)) == root
        for b in range(0, size // 256 + 1):  # every entry of every bundle, hashed
            for i, entry in enumerate(reader.bundle(b)):
                assert tilereader.leaf(entry) == reader.leaves[b * 256 + i]

        if go_reader is not None:
            with Server(app) as srv:
                served = _go(go_reader, f"http://127.0.0.1:{srv.port}", vkey, sample)
            assert served.returncode == 0, served.stderr
            doc = json.loads(served.stdout)
            assert doc["size"] == size and doc["verified"] == sample
            assert base64.b64decode(doc["root"]) == root
            static = _go(go_reader, str(mirror), vkey, sample[:5])
            assert static.returncode == 0, static.stderr

        # More appends: the second export writes only the new and widened tiles.
        old_root = root
        big.append(ENTRIES, 1_500)
        size2 = world.ledger.size()
        second = export(world.ledger, mirror)
        assert second is not None and (second.previous, second.size) == (size, size2)
        assert list(second.written) == [t.path() for t in tiles.new_tiles(size, size2)] + ["checkpoint"]
        assert len(second.written) < 30 and "tile/0/000" not in second.written
        assert sorted(second.removed) == ["tile/0/390.p/162", "tile/entries/390.p/162"]
        now = _files(mirror)
        assert _serve_files(app, sorted(now)) == now
        assert {
            p
            for p in exported
            if p not in second.written and p not in second.removed and exported[p] != now[p]
        } == set()
        reader2 = tilereader.Reader(lambda p: now.get(p), size2)
        assert reader2.root() == tilereader.open_checkpoint(now["checkpoint"].decode(), vkey)[2]
        if go_reader is not None:
            grown = _go(go_reader, str(mirror), vkey, [size2 - 1, 100_000], (size, old_root))
            assert grown.returncode == 0, grown.stderr
            forged = _go(go_reader, str(mirror), vkey, [], (size, bytes(32)))
            assert forged.returncode == 1 and "not consistent" in forged.stderr
    finally:
        app.state.store.dispose()
