"""C2SP tlog-tiles: the tile math, paths and encodings of a log served as static files.

A hash tile at level L holds up to 256 consecutive hashes of tree level 8·L (the complete
subtrees of 256**L leaves); an entry bundle holds the entries under one level-0 tile, each
as a big-endian uint16 length and the exact entry bytes. Pure: no I/O. ``TileReader`` reads
a tree back from its tiles with the fetch passed in, as a monitor or verifier does.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass

from ledger.core import merkle
from ledger.core.errors import MalformedInput, NotFound, ProofError

TILE_HEIGHT = 8
TILE_WIDTH = 1 << TILE_HEIGHT
HASH_SIZE = merkle.HASH_SIZE
ENTRIES = -1
"""The level of an entry bundle (Go's tlog calls bundles data tiles, at level -1)."""
MAX_LEVEL = 63
MAX_INDEX = (1 << 56) - 1  # a node key holds the index in 56 bits (ledger.store.schema)
MAX_ENTRY_BYTES = 0xFFFF
"""The largest entry a bundle can carry: its length is a big-endian uint16."""

CHECKPOINT_PATH = "checkpoint"


@dataclass(frozen=True, order=True)
class Tile:
    """One tile: ``level`` (``ENTRIES`` for an entry bundle), ``index`` within the level and
    ``width``, the number of hashes or entries it holds (``TILE_WIDTH`` when full)."""

    level: int
    index: int
    width: int = TILE_WIDTH

    @property
    def full(self) -> bool:
        return self.width == TILE_WIDTH

    @property
    def is_bundle(self) -> bool:
        return self.level == ENTRIES

    @property
    def tree_level(self) -> int:
        """The Merkle tree level of the hashes it holds (entries: the leaves, level 0)."""
        return 0 if self.level == ENTRIES else TILE_HEIGHT * self.level

    @property
    def start(self) -> int:
        """Index, at its tree level, of its first hash (for a bundle: its first seq)."""
        return self.index * TILE_WIDTH

    def path(self) -> str:
        """``tile/<L>/<N>[.p/<W>]`` or ``tile/entries/<N>[.p/<W>]``, without a leading slash."""
        level = "entries" if self.level == ENTRIES else str(self.level)
        tail = "" if self.full else f".p/{self.width}"
        return f"tile/{level}/{encode_index(self.index)}{tail}"

    def as_full(self) -> Tile:
        return Tile(self.level, self.index)


def encode_index(n: int) -> str:
    """A tile index as zero-padded 3-digit path elements, all but the last prefixed with
    ``x``: 1234067 is ``x001/x234/067``."""
    if n < 0:
        raise ValueError(f"a tile index is not negative, not {n}")
    groups = [f"{n % 1000:03d}"]
    n //= 1000
    while n:
        groups.append(f"x{n % 1000:03d}")
        n //= 1000
    return "/".join(reversed(groups))


_PATH = re.compile(
    r"^tile/(0|[1-9][0-9]?|entries)/((?:x[0-9]{3}/){0,6}[0-9]{3})"
    r"(?:\.p/([1-9][0-9]{0,2}))?$"
)


def parse_path(path: str) -> Tile:
    """The tile a path names (no leading slash); refuses (MalformedInput) any path that is
    not the canonical form, as a static server holding the files would not find it."""
    m = _PATH.match(path)
    if m is None:
        raise MalformedInput(
            f"{path!r} is not a tile path: tile/<L>/<N>[.p/<W>] or "
            "tile/entries/<N>[.p/<W>], N in 3-digit groups such as x001/x234/067"
        )
    level = ENTRIES if m.group(1) == "entries" else int(m.group(1))
    index = int(m.group(2).replace("x", "").replace("/", ""))
    width = int(m.group(3)) if m.group(3) else TILE_WIDTH
    if level > MAX_LEVEL or width > TILE_WIDTH or (m.group(3) and width == TILE_WIDTH) or index > MAX_INDEX:
        raise MalformedInput(
            f"{path!r} names no tile: levels go to {MAX_LEVEL} and a partial "
            f"tile is 1 to {TILE_WIDTH - 1} wide"
        )
    tile = Tile(level, index, width)
    if tile.path() != path:
        raise MalformedInput(f"{path!r} is not the canonical path of its tile, {tile.path()!r}")
    return tile


def level_size(size: int, level: int) -> int:
    """How many hashes a tree of ``size`` leaves has at tile level ``level`` (bundles: the
    entries)."""
    return size >> (TILE_HEIGHT * max(level, 0))


def tile_in_tree(size: int, level: int, index: int) -> Tile | None:
    """The tile at (level, index) in a tree of ``size``, full or as wide as the tree makes
    it; None where the tree has nothing there yet."""
    have = level_size(size, level) - index * TILE_WIDTH
    if have <= 0:
        return None
    return Tile(level, index, min(have, TILE_WIDTH))


def tiles_for_size(size: int) -> list[Tile]:
    """Every tile of a tree of ``size``: the full ones and the partial one at the right edge of
    each level, and the entry bundles. Level by level until a level is empty (a tree of 256
    has a full level-0 tile and a level-1 tile of width 1)."""
    out: list[Tile] = []
    for level in range(ENTRIES, MAX_LEVEL + 1):
        n = level_size(size, level)
        if n == 0:
            break
        out += [Tile(level, i) for i in range(n // TILE_WIDTH)]
        if n % TILE_WIDTH:
            out.append(Tile(level, n // TILE_WIDTH, n % TILE_WIDTH))
    return out


def new_tiles(old_size: int, new_size: int) -> list[Tile]:
    """The tiles of ``new_size`` that a tree of ``old_size`` did not have (new full tiles and
    the partials whose width changed): what an incremental export writes."""
    if new_size < old_size:
        raise ProofError(f"a tree of size {new_size} does not extend one of size {old_size}")
    had = set(tiles_for_size(old_size))
    return [t for t in tiles_for_size(new_size) if t not in had]


def encode_hash_tile(hashes: Sequence[bytes]) -> bytes:
    if not 1 <= len(hashes) <= TILE_WIDTH or any(len(h) != HASH_SIZE for h in hashes):
        raise ValueError("a hash tile is 1 to 256 hashes of 32 bytes")
    return b"".join(hashes)


def decode_hash_tile(data: bytes, tile: Tile) -> list[bytes]:
    if len(data) != tile.width * HASH_SIZE:
        raise ProofError(
            f"{tile.path()} is {len(data)} bytes, not the {tile.width * HASH_SIZE} of {tile.width} hashes"
        )
    return [data[i : i + HASH_SIZE] for i in range(0, len(data), HASH_SIZE)]


def encode_bundle(entries: Sequence[bytes], *, first_seq: int) -> bytes:
    """Entries as a bundle: each a big-endian uint16 length and its exact bytes. An entry
    over 65,535 bytes has no encoding (the append refuses such statements, see
    ``ledger.log.admission``); one found in the log is refused naming its seq."""
    parts: list[bytes] = []
    for i, e in enumerate(entries):
        if len(e) > MAX_ENTRY_BYTES:
            raise MalformedInput(
                f"entry {first_seq + i} is {len(e)} bytes, more than the "
                f"{MAX_ENTRY_BYTES} an entry bundle can carry",
                code="entry_too_large",
            )
        parts.append(len(e).to_bytes(2, "big"))
        parts.append(e)
    return b"".join(parts)


def decode_bundle(data: bytes, tile: Tile) -> list[bytes]:
    out: list[bytes] = []
    at = 0
    while at < len(data):
        if at + 2 > len(data):
            raise ProofError(f"{tile.path()} ends inside an entry's length")
        n = int.from_bytes(data[at : at + 2], "big")
        if at + 2 + n > len(data):
            raise ProofError(f"{tile.path()} ends inside entry {tile.start + len(out)}")
        out.append(data[at + 2 : at + 2 + n])
        at += 2 + n
    if len(out) != tile.width:
        raise ProofError(f"{tile.path()} holds {len(out)} entries, not {tile.width}")
    return out


def _subtree(hashes: Sequence[bytes]) -> bytes:
    """The hash of a complete subtree (a power of two of hashes) from its lowest hashes."""
    level = list(hashes)
    while len(level) > 1:
        level = [merkle.node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


TileFetch = Callable[[str], bytes | None]
"""GET one tile path (``tile/0/x001/234``) of a log: its bytes, or None when not served."""


class TileReader:
    """A tree of ``size`` leaves read from its tiles, for proofs, roots and entries.

    ``nodes`` is a ``merkle.NodeFetcher``: proofs and roots come from ``ledger.core.merkle``
    exactly as the server computes them from its stored nodes, so nothing here is trusted
    until a proof verifies against a signed root. A partial tile a log no longer serves
    (it may delete one once the full tile exists) is read from the full tile instead.
    """

    def __init__(self, size: int, fetch: TileFetch) -> None:
        self.size = size
        self.fetch = fetch
        self._tiles: dict[tuple[int, int], bytes] = {}
        self._bundles: dict[int, list[bytes]] = {}
        self.fetched = 0  # tiles fetched, for figures

    def _get(self, level: int, index: int) -> tuple[Tile, bytes]:
        tile = tile_in_tree(self.size, level, index)
        if tile is None:
            raise ProofError(f"a tree of size {self.size} has no tile at level {level} index {index}")
        data = self._tiles.get((level, index))
        if data is None:
            self.fetched += 1
            data = self.fetch(tile.path())
            if data is None and not tile.full:
                self.fetched += 1
                whole = self.fetch(tile.as_full().path())
                unit = 1 if level == ENTRIES else HASH_SIZE
                if whole is not None and level != ENTRIES:
                    data = whole[: tile.width * unit]
                elif whole is not None:
                    data = encode_bundle(
                        decode_bundle(whole, tile.as_full())[: tile.width], first_seq=tile.start
                    )
            if data is None:
                raise NotFound(f"the log serves no {tile.path()}")
            self._tiles[(level, index)] = data
        return tile, data

    def hashes(self, level: int, index: int) -> list[bytes]:
        tile, data = self._get(level, index)
        return decode_hash_tile(data, tile)

    def nodes(self, ids: Collection[merkle.NodeId]) -> dict[merkle.NodeId, bytes]:
        """The hashes of complete subtrees ``(tree level, index)`` of the tree."""
        out: dict[merkle.NodeId, bytes] = {}
        for tree_level, idx in ids:
            level, rest = divmod(tree_level, TILE_HEIGHT)
            first = idx << rest  # its lowest hashes, at tree level 8·level
            if first + (1 << rest) > level_size(self.size, level):
                continue  # not a complete subtree of this tree: merkle says which is missing
            row = self.hashes(level, first // TILE_WIDTH)
            at = first % TILE_WIDTH
            out[(tree_level, idx)] = _subtree(row[at : at + (1 << rest)])
        return out

    def entries(self, seqs: Iterable[int]) -> dict[int, bytes]:
        out: dict[int, bytes] = {}
        for seq in sorted(set(seqs)):
            if not 0 <= seq < self.size:
                raise NotFound(f"seq {seq} is not in a tree of size {self.size}")
            n = seq // TILE_WIDTH
            bundle = self._bundles.get(n)
            if bundle is None:
                tile, data = self._get(ENTRIES, n)
                bundle = self._bundles[n] = decode_bundle(data, tile)
            out[seq] = bundle[seq % TILE_WIDTH]
        return out

    def inclusion_proof(self, seq: int) -> list[bytes]:
        return merkle.inclusion_proof(seq, self.size, self.nodes)

    def consistency_proof(self, first: int) -> list[bytes]:
        return merkle.consistency_proof(first, self.size, self.nodes)

    def root(self) -> bytes:
        return merkle.root(self.size, self.nodes)
