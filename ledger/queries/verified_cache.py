"""Inclusion checks that remember what they proved: the nodes of one signed checkpoint's
tree that verified inclusion paths went through, so that the next page's paths read fewer
stored nodes.

Every leaf is checked from its own hash (of the bytes read in this request) up the RFC
9162 path, hashed with its siblings, until it reaches the root of the checkpoint verified
in this request, or a node this tree has proven, and must equal it. A node is proven when
a path through it reached the root (or a proven node) with the same hash, so it is that
tree's node at that place: stopping there is the same check as going on to the root,
whose hashes from there up were computed before. Siblings come from proven nodes, else
from the store; a stored node that is not the tree's fails the path it is used in, as it
would without what is kept here, and a stored node edited after it was proven is not read
again for that tree. Nodes are kept per (size, root) and never carried to another
checkpoint's tree: a new checkpoint starts with none. ``tests/test_verified_cache.py``
holds this to the truth on random trees with random stored nodes edited.

The upper levels of a tree are few (a 100,000-leaf tree has 390 nodes at level 8 and
above) and each is on the path of every leaf below it, so after a few pages a cold leaf's
path reads only its lowest siblings from the store, and the right edge's partial nodes
(the same for every leaf) are folded once per checkpoint, not once per page.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Collection, Mapping

from ledger.core import merkle
from ledger.core.errors import ProofError
from ledger.core.merkle import NodeFetcher, NodeId

MIN_LEVEL = 3  # nodes below are not kept: each is shared by at most 8 leaves
MAX_NODES = 1 << 16  # per tree; past this, no more are kept (about 10 MB)
TREES = 2  # trees kept: the latest checkpoint's and the one before it


class ProvenTree:
    """Nodes proven to belong to the tree of ``size`` leaves with ``root``."""

    def __init__(self, size: int, root: bytes) -> None:
        self.size = size
        self.root = root
        self.nodes: dict[NodeId, bytes] = {}
        self.edges: dict[int, bytes] = {}  # level -> the right edge's partial node
        self.leaves: set[int] = set()  # indexes whose inclusion a check has proven
        self._lock = threading.Lock()

    def wanted(self, indexes: Collection[int]) -> set[NodeId]:
        """The stored nodes a check of these leaves would read, leaving out the leaves
        proven before (a caller that keeps its checks seldom checks them again, and reads
        what such a check misses): what a caller may read ahead with the rest of its
        request. Which nodes are read decides nothing: each is believed only where its
        path reaches the root."""
        out: set[NodeId] = set()
        for index in indexes:
            if 0 <= index < self.size and index not in self.leaves:
                out.update(self._unknown(index))
        return out

    def _edge_start(self, level: int) -> int:
        return (self.size >> level) << level

    def check(self, leaves: Mapping[int, bytes], fetch: NodeFetcher) -> dict[int, str | None]:
        """For each index, None if ``leaves[index]`` is included in this tree, else why
        not; stored nodes this tree has not proven are read in one ``fetch``."""
        out: dict[int, str | None] = {}
        # Read without the lock: nodes are only ever added, each with the tree's own hash,
        # and a lookup in a dict another thread adds to is safe under the GIL.
        nodes, edges = self.nodes, self.edges
        wanted: set[NodeId] = set()
        for index in leaves:
            if 0 <= index < self.size:
                wanted.update(self._unknown(index))
            else:
                out[index] = f"leaf {index} is outside a tree of size {self.size}"
        got: Mapping[NodeId, bytes] = fetch(wanted) if wanted else {}
        learned: dict[NodeId, bytes] = {}
        learned_edges: dict[int, bytes] = {}
        for index, leaf in leaves.items():
            if index in out:
                continue
            try:
                out[index] = self._walk(index, leaf, nodes, edges, got, learned, learned_edges)
            except ProofError as e:
                out[index] = e.message
        proven = [index for index, why in out.items() if why is None]
        if learned or learned_edges or proven:
            with self._lock:
                if len(self.leaves) < MAX_NODES:
                    self.leaves.update(proven)
                room = MAX_NODES - len(self.nodes)
                if room > 0:
                    self.nodes.update(learned if len(learned) <= room else dict(list(learned.items())[:room]))
                self.edges.update(learned_edges)
        return out

    def _unknown(self, index: int) -> list[NodeId]:
        """The stored nodes the path of leaf ``index`` needs that this tree has not proven:
        its siblings up to its first proven ancestor, and the right edge's parts."""
        size, nodes, edges = self.size, self.nodes, self.edges
        out: list[NodeId] = []
        k, level = index, 0
        while (size - 1) >> level:
            if level and (level, k) in nodes:
                break
            sib = k ^ 1
            complete = size >> level
            if sib < complete:
                if (level, sib) not in nodes:
                    out.append((level, sib))
            elif sib == complete and size & ((1 << level) - 1) and level not in edges:
                out.extend(merkle.range_nodes(self._edge_start(level), size))
            k >>= 1
            level += 1
        return out

    def _walk(
        self,
        index: int,
        leaf: bytes,
        nodes: Mapping[NodeId, bytes],
        edges: Mapping[int, bytes],
        got: Mapping[NodeId, bytes],
        learned: dict[NodeId, bytes],
        learned_edges: dict[int, bytes],
    ) -> str | None:
        """RFC 9162's path from ``leaf`` up: at each level the node is hashed with its
        sibling (a complete node, or the right edge's partial node), or carried up when it
        has none; the leaf is included when the path reaches the root, or a node this
        tree has proven, with the same hash. What the path used and computed is then
        added to ``learned``."""
        size = self.size
        h, k, level = leaf, index, 0
        seen: list[tuple[NodeId, bytes]] = []
        seen_edges: list[tuple[int, bytes]] = []
        complete_path = True  # the node at this level is a complete subtree
        while (size - 1) >> level:
            if level:
                known = nodes.get((level, k))
                if known is not None:
                    if known != h:
                        return f"leaf {index} is not included in the tree of size {size} with that root"
                    break
            sib = k ^ 1
            complete = size >> level
            if sib < complete:
                s = nodes.get((level, sib)) or got.get((level, sib))
                if s is None:
                    raise ProofError(f"the store has no hash for subtree {(level, sib)}")
                if level >= MIN_LEVEL:
                    seen.append(((level, sib), s))
            elif sib == complete and size & ((1 << level) - 1):
                s = edges.get(level) or self._fold(level, got)
                seen_edges.append((level, s))
                complete_path = False
            else:
                k >>= 1  # no sibling: the node is carried up as it is
                level += 1
                complete_path = False
                continue
            h = merkle.node_hash(s, h) if k & 1 else merkle.node_hash(h, s)
            k >>= 1
            level += 1
            if complete_path and level >= MIN_LEVEL:
                seen.append(((level, k), h))
        else:
            if h != self.root:
                return f"leaf {index} is not included in the tree of size {size} with that root"
        learned.update(seen)
        learned_edges.update(seen_edges)
        return None

    def _fold(self, level: int, got: Mapping[NodeId, bytes]) -> bytes:
        parts = merkle.range_nodes(self._edge_start(level), self.size)
        try:
            return merkle.fold([got[n] for n in parts])
        except KeyError as missing:
            raise ProofError(f"the store has no hash for subtree {missing.args[0]}") from None


class ProvenTrees:
    """The ``ProvenTree`` of each of the last few checkpoints, by (size, root)."""

    def __init__(self, keep: int = TREES) -> None:
        self.keep = keep
        self._trees: OrderedDict[tuple[int, bytes], ProvenTree] = OrderedDict()
        self._lock = threading.Lock()

    def peek(self, size: int, root: bytes) -> ProvenTree | None:
        """The tree kept for (size, root), if any; nothing is added or reordered."""
        with self._lock:
            return self._trees.get((size, root))

    def tree(self, size: int, root: bytes) -> ProvenTree:
        with self._lock:
            t = self._trees.get((size, root))
            if t is None:
                t = self._trees[(size, root)] = ProvenTree(size, root)
                while len(self._trees) > self.keep:
                    self._trees.popitem(last=False)
            else:
                self._trees.move_to_end((size, root))
            return t


def check_inclusion(
    leaves: Mapping[int, bytes],
    *,
    size: int,
    root: bytes,
    fetch: NodeFetcher,
    trees: ProvenTrees | None = None,
) -> dict[int, str | None]:
    """None for each index whose leaf hash is included in the tree of ``size`` with
    ``root`` (a checkpoint the caller verified), else why not."""
    tree = trees.tree(size, root) if trees is not None else ProvenTree(size, root)
    return tree.check(leaves, fetch)


def nodes_fetched(leaves: Collection[int], tree: ProvenTree) -> int:
    """How many stored nodes ``tree.check`` of these leaves would read (tests, bench)."""
    return len({n for index in leaves for n in tree._unknown(index)})
