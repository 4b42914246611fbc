"""RFC 9162 Merkle tree math: hashes, proofs and their verification, as pure functions.

Nodes are named by ``(level, index)``: the complete subtree of ``2**level`` leaves that
starts at leaf ``index * 2**level``. Those are the only hashes ever persisted; any root or
proof is composed from O(log n) of them, so nothing here rebuilds a tree in memory.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from ledger.core.errors import ProofError

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

NodeId = tuple[int, int]
"""(level, index) of a complete subtree."""

NodeFetcher = Callable[[Collection[NodeId]], Mapping[NodeId, bytes]]
"""Returns the stored hashes of the requested complete subtrees, in one round trip."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def range_nodes(start: int, end: int) -> list[NodeId]:
    """The complete subtrees, left to right, whose leaves are exactly [start, end).

    Valid for ranges that are RFC 9162 subtrees, i.e. ``start`` is a multiple of the
    largest power of two not above ``end - start``; their hash folds from the right.
    """
    nodes: list[NodeId] = []
    while start < end:
        size = end - start
        level = size.bit_length() - 1
        # An aligned start never admits a larger chunk than its own alignment.
        if start:
            level = min(level, (start & -start).bit_length() - 1)
        nodes.append((level, start >> level))
        start += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a range from its complete subtrees, left to right (RFC 9162 shape)."""
    acc = hashes[-1]
    for h in reversed(hashes[:-1]):
        acc = node_hash(h, acc)
    return acc


def _subtree_hash(nodes: list[NodeId], got: Mapping[NodeId, bytes]) -> bytes:
    try:
        return fold([got[n] for n in nodes])
    except KeyError as missing:
        raise ProofError(f"the store has no hash for subtree {missing.args[0]}") from None


def _inclusion_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Sibling ranges on the path of leaf ``index`` in a tree of ``size``, leaf side first."""
    ranges: list[tuple[int, int]] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        mid = start + k
        if index < mid:
            ranges.append((mid, end))
            end = mid
        else:
            ranges.append((start, mid))
            start = mid
    ranges.reverse()
    return ranges


def _consistency_ranges(first: int, second: int) -> list[tuple[int, int]]:
    """Ranges whose hashes form the RFC 9162 §2.1.4 consistency proof, in proof order."""
    ranges: list[tuple[int, int]] = []

    def subproof(m: int, start: int, end: int, whole: bool) -> None:
        n = end - start
        if m == n:
            if not whole:
                ranges.append((start, end))
            return
        k = _split(n)
        if m <= k:
            subproof(m, start, start + k, whole)
            ranges.append((start + k, end))
        else:
            subproof(m - k, start + k, end, False)
            ranges.append((start, start + k))

    subproof(first, 0, second, True)
    return ranges


def needed_for_inclusion(index: int, size: int) -> list[list[NodeId]]:
    return [range_nodes(s, e) for s, e in _inclusion_ranges(index, size)]


class PathBuilder:
    """Inclusion proofs for many leaves of one tree size, from known complete subtrees.

    Seen level by level, an RFC 9162 tree of ``size`` leaves has ``size >> L`` complete
    nodes at level L plus, when ``size`` has bits below L, one partial node on the right
    edge. A leaf's sibling at each level is a complete node, that partial node (the same
    for every leaf, so it is computed once), or absent (the node is carried up).
    """

    def __init__(self, size: int, nodes: Mapping[NodeId, bytes]) -> None:
        self.size = size
        self.nodes = nodes
        self._partial: dict[int, bytes] = {}

    def _edge(self, level: int) -> bytes:
        h = self._partial.get(level)
        if h is None:
            start = (self.size >> level) << level
            h = self._partial[level] = _subtree_hash(range_nodes(start, self.size), self.nodes)
        return h

    @staticmethod
    def needed(index: int, size: int) -> set[NodeId]:
        """The stored nodes ``proof(index)`` reads in a tree of ``size``: the same walk as
        ``proofs``, which keeps the paths it has built instead of naming nodes."""
        out: set[NodeId] = set()
        last = size - 1
        level = 0
        while last >> level:
            sib = (index >> level) ^ 1
            complete = size >> level
            if sib < complete:
                out.add((level, sib))
            elif sib == complete and size & ((1 << level) - 1):
                out.update(range_nodes((size >> level) << level, size))
            level += 1
        return out

    def proof(self, index: int) -> list[bytes]:
        return list(self.proofs((index,))[index])

    def proofs(self, indices: Iterable[int]) -> dict[int, tuple[bytes, ...]]:
        """``proof`` of each index, the part of a path above a node worked out once for
        every leaf under it: a batch's receipts prove neighbouring leaves, whose paths
        differ only near the bottom."""
        size, nodes = self.size, self.nodes
        last = size - 1
        above: dict[NodeId, tuple[bytes, ...]] = {}

        def up(level: int, k: int) -> tuple[bytes, ...]:
            # The path from the node k at this level up to the root.
            got = above.get((level, k))
            if got is not None:
                return got
            if not last >> level:
                path: tuple[bytes, ...] = ()
            else:
                # The sibling first: a path names the lowest node the store lacks.
                sib = k ^ 1
                complete = size >> level
                here: tuple[bytes, ...] = ()
                if sib < complete:
                    try:
                        here = (nodes[(level, sib)],)
                    except KeyError:
                        raise ProofError(f"the store has no hash for subtree {(level, sib)}") from None
                elif sib == complete and size & ((1 << level) - 1):
                    here = (self._edge(level),)
                # else no sibling: the node is carried up as it is
                path = here + up(level + 1, k >> 1)
            above[(level, k)] = path
            return path

        out: dict[int, tuple[bytes, ...]] = {}
        for index in indices:
            if not 0 <= index < size:
                raise ProofError(f"leaf {index} is not in a tree of size {size}")
            out[index] = up(0, index)
        return out


def inclusion_proof(index: int, size: int, fetch: NodeFetcher) -> list[bytes]:
    if not 0 <= index < size:
        raise ProofError(f"leaf {index} is not in a tree of size {size}")
    parts = needed_for_inclusion(index, size)
    got = fetch({n for p in parts for n in p})
    return [_subtree_hash(p, got) for p in parts]


def inclusion_proofs(indices: Collection[int], size: int, fetch: NodeFetcher) -> dict[int, list[bytes]]:
    """Inclusion proofs of many leaves of one tree, from a single fetch of their nodes:
    proving a whole journey costs one round trip, not one per entry."""
    for index in indices:
        if not 0 <= index < size:
            raise ProofError(f"leaf {index} is not in a tree of size {size}")
    # Each sibling is a stored node but for the one on the right edge, the same for every
    # leaf at its level: folded once for all of them (PathBuilder), not once per leaf.
    wanted: set[NodeId] = set()
    for index in indices:
        wanted |= PathBuilder.needed(index, size)
    return {i: list(p) for i, p in PathBuilder(size, fetch(wanted)).proofs(indices).items()}


def consistency_proof(first: int, second: int, fetch: NodeFetcher) -> list[bytes]:
    if not 0 <= first <= second:
        raise ProofError(f"no consistency proof from size {first} to size {second}")
    if first == 0 or first == second:
        return []
    parts = [range_nodes(s, e) for s, e in _consistency_ranges(first, second)]
    got = fetch({n for p in parts for n in p})
    return [_subtree_hash(p, got) for p in parts]


def root(size: int, fetch: NodeFetcher) -> bytes:
    if size == 0:
        return EMPTY_ROOT
    nodes = range_nodes(0, size)
    return _subtree_hash(nodes, fetch(nodes))


def root_from_leaves(leaves: Sequence[bytes]) -> bytes:
    """Reference MTH over leaf hashes held in memory (tests and tiny trees only)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = _split(len(leaves))
    return node_hash(root_from_leaves(leaves[:k]), root_from_leaves(leaves[k:]))


def verify_inclusion(*, leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2; raises ProofError, returns None when the proof holds."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is outside a tree of size {size}")
    fn, sn = index, size - 1
    r = leaf
    for p in proof:
        if len(p) != HASH_SIZE:
            raise ProofError("a proof hash is not 32 bytes")
        if sn == 0:
            raise ProofError("the inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError(f"leaf {index} is not included in the tree of size {size} with that root")


def verify_consistency(
    *, first: int, second: int, first_root: bytes, second_root: bytes, proof: Sequence[bytes]
) -> None:
    """RFC 9162 §2.1.4.2; raises ProofError, returns None when the proof holds."""
    if not 0 <= first <= second:
        raise ProofError(f"size {first} cannot precede size {second}")
    if any(len(p) != HASH_SIZE for p in proof):
        raise ProofError("a proof hash is not 32 bytes")
    if first == second:
        if proof:
            raise ProofError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise ProofError(f"two different roots for the same size {first}")
        return
    if first == 0:
        if proof:
            raise ProofError("a proof from the empty tree must be empty")
        return
    if not proof:
        raise ProofError("the consistency proof is empty")
    path = list(proof)
    if first & (first - 1) == 0:
        # A power-of-two first tree is itself a node of the second: its root starts the path.
        path.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("the consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("the consistency proof is shorter than needed")
    if fr != first_root:
        raise ProofError(f"the proof does not lead to the root of size {first}")
    if sr != second_root:
        raise ProofError(f"the proof does not lead to the root of size {second}")


@dataclass
class Frontier:
    """The compact range [0, size): one complete-subtree hash per set bit of ``size``.

    Appending leaves yields every complete subtree they finish, which is exactly what the
    store persists; the root of any size needs only the frontier. O(log n) memory.
    """

    size: int
    hashes: list[bytes]  # largest subtree first, as range_nodes(0, size) orders them

    @classmethod
    def empty(cls) -> Frontier:
        return cls(0, [])

    @classmethod
    def load(cls, size: int, fetch: NodeFetcher) -> Frontier:
        nodes = range_nodes(0, size)
        got = fetch(nodes)
        return cls(size, [_subtree_hash([n], got) for n in nodes])

    def append(self, leaf: bytes) -> list[tuple[int, int, bytes]]:
        """Add one leaf hash; return the (level, index, hash) of every subtree it completes."""
        index = self.size
        made = [(0, index, leaf)]
        h = leaf
        level = 0
        while index & 1:
            h = node_hash(self.hashes.pop(), h)
            level += 1
            index >>= 1
            made.append((level, index, h))
        self.hashes.append(h)
        self.size += 1
        return made

    def extend(self, leaves: Iterable[bytes]) -> list[tuple[int, int, bytes]]:
        made: list[tuple[int, int, bytes]] = []
        for leaf in leaves:
            made.extend(self.append(leaf))
        return made

    def root(self) -> bytes:
        if not self.hashes:
            return EMPTY_ROOT
        return fold(self.hashes)
