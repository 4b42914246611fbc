"""An independent reader of a C2SP tlog-tiles log, written from the spec texts alone
(c2sp.org/tlog-tiles, tlog-checkpoint, signed-note; RFC 9162 §2.1) for the tests: it
imports nothing from ``ledger`` or ``api``, so a mistake shared by the server's tile code
and its own reader (``ledger.core.tiles``) cannot hide here.

It reads every level-0 tile, rebuilds the tree from the leaf hashes, checks each tile of
every higher level against the tiles below it, and proves entries with paths of its own.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import nacl.signing

Get = Callable[[str], bytes | None]  # path without a leading slash -> bytes, None if absent


def tile_path(level: int | str, n: int, width: int = 256) -> str:
    """``tile/<L>/<N>[.p/<W>]``: N in zero-padded 3-digit elements, all but the last with
    an ``x`` (1234067 -> x001/x234/067)."""
    digits = str(n)
    digits = "0" * (-len(digits) % 3) + digits
    groups = [digits[i : i + 3] for i in range(0, len(digits), 3)]
    encoded = "/".join(["x" + g for g in groups[:-1]] + [groups[-1]])
    return f"tile/{level}/{encoded}" + ("" if width == 256 else f".p/{width}")


def leaf(entry: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + entry).digest()


def node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def open_checkpoint(text: str, vkey: str) -> tuple[str, int, bytes, list[str]]:
    """(origin, size, root, other signers' names) of a signed checkpoint note, checked
    against the verifier key ``name+hash+base64(0x01 || key)``."""
    name, key_hash_hex, key_b64 = vkey.split("+", 2)
    key = base64.b64decode(key_b64)
    assert key[0] == 1 and hashlib.sha256(name.encode() + b"\n" + key).digest()[:4].hex() == key_hash_hex
    body, _, sigs = text.partition("\n\n")
    body += "\n"
    found, others = False, []
    for line in sigs.splitlines():
        dash, signer, blob_b64 = line.split(" ")
        assert dash == "\u2014"
        blob = base64.b64decode(blob_b64)
        if signer == name and blob[:4].hex() == key_hash_hex:
            nacl.signing.VerifyKey(key[1:]).verify(body.encode(), blob[4:])
            found = True
        else:
            others.append(signer)
    assert found, "no signature by the log's key"
    origin, size, root_b64, *_ = body.split("\n")
    return origin, int(size), base64.b64decode(root_b64), others


def mth(hashes: list[bytes]) -> bytes:
    """RFC 9162 MTH over leaf hashes, by its recursive definition."""
    if len(hashes) == 1:
        return hashes[0]
    k = 1 << ((len(hashes) - 1).bit_length() - 1)
    return node(mth(hashes[:k]), mth(hashes[k:]))


@dataclass
class Reader:
    get: Get
    size: int
    leaves: list[bytes] = field(default_factory=list)
    fetched: list[str] = field(default_factory=list)
    cache: dict[tuple[int, int], bytes] = field(default_factory=dict)

    def fetch(self, path: str) -> bytes:
        data = self.get(path)
        assert data is not None, f"{path} is not served"
        self.fetched.append(path)
        return data

    def widths(self, level: int) -> list[int]:
        """Widths of the tiles of a level: full ones, then floor(s / 256**l) mod 256."""
        n = self.size // 256**level
        return [256] * (n // 256) + ([n % 256] if n % 256 else [])

    def read_level(self, level: int) -> list[bytes]:
        out: list[bytes] = []
        for i, w in enumerate(self.widths(level)):
            data = self.fetch(tile_path(level, i, w))
            assert len(data) == 32 * w, f"{tile_path(level, i, w)} is {len(data)} bytes"
            out += [data[j : j + 32] for j in range(0, len(data), 32)]
        return out

    def root(self) -> bytes:
        """The root from every level-0 tile; each higher tile checked against the one below:
        hash i of level l+1 is the MTH of the full level-l tile i."""
        self.leaves = self.read_level(0)
        assert len(self.leaves) == self.size
        below = self.leaves
        level = 1
        while self.size // 256**level:
            above = self.read_level(level)
            for i, h in enumerate(above):
                assert h == mth(below[256 * i : 256 * (i + 1)]), f"tile level {level} hash {i}"
            below, level = above, level + 1
        return self._mth(0, self.size)

    def _mth(self, lo: int, hi: int) -> bytes:
        h = self.cache.get((lo, hi))
        if h is None:
            if hi - lo == 1:
                h = self.leaves[lo]
            else:
                k = 1 << ((hi - lo - 1).bit_length() - 1)
                h = node(self._mth(lo, lo + k), self._mth(lo + k, hi))
            self.cache[(lo, hi)] = h
        return h

    def path(self, m: int, lo: int = 0, hi: int | None = None) -> list[bytes]:
        """RFC 9162 §2.1.3.1 PATH(m, D[lo:hi]), leaf side first."""
        hi = self.size if hi is None else hi
        if hi - lo == 1:
            return []
        k = 1 << ((hi - lo - 1).bit_length() - 1)
        if m < k:
            return self.path(m, lo, lo + k) + [self._mth(lo + k, hi)]
        return self.path(m - k, lo + k, hi) + [self._mth(lo, lo + k)]

    def bundle(self, n: int) -> list[bytes]:
        """Entry bundle n: big-endian uint16 length, then the entry, until the end."""
        w = self.widths(0)[n]
        data = self.fetch(tile_path("entries", n, w))
        out, at = [], 0
        while at < len(data):
            length = int.from_bytes(data[at : at + 2], "big")
            out.append(data[at + 2 : at + 2 + length])
            at += 2 + length
        assert at == len(data) and len(out) == w
        return out


def root_from_path(index: int, size: int, leaf_hash: bytes, proof: list[bytes]) -> bytes:
    """The root an inclusion path leads to, by RFC 9162 §2.1.3.2."""
    fn, sn, r = index, size - 1, leaf_hash
    for p in proof:
        assert sn != 0
        if fn & 1 or fn == sn:
            r = node(p, r)
            while not fn & 1 and fn:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node(r, p)
        fn, sn = fn >> 1, sn >> 1
    assert sn == 0
    return r
