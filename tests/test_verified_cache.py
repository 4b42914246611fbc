"""The inclusion check that remembers the nodes it proved (``ledger.queries.verified_cache``), held
to the RFC 9162 verifier on every tree shape, and attacked: a wrong leaf, a node edited in
the store before or after it was proven, another checkpoint's root."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Collection, Mapping

import pytest

from ledger.core import merkle
from ledger.core.merkle import NodeId
from ledger.queries.verified_cache import (
    MIN_LEVEL,
    ProvenTree,
    ProvenTrees,
    check_inclusion,
    nodes_fetched,
)


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(f"entry {i}".encode()) for i in range(n)]


def stored(ls: list[bytes]) -> dict[NodeId, bytes]:
    """Every complete subtree of the tree of ``ls``, as the store keeps them."""
    out: dict[NodeId, bytes] = {}
    level = 0
    while (1 << level) <= len(ls):
        for i in range(len(ls) >> level):
            out[(level, i)] = merkle.root_from_leaves(ls[i << level : (i + 1) << level])
        level += 1
    return out


class Store:
    def __init__(self, nodes: dict[NodeId, bytes]) -> None:
        self.nodes = nodes
        self.reads: list[int] = []

    def fetch(self, ids: Collection[NodeId]) -> Mapping[NodeId, bytes]:
        self.reads.append(len(ids))
        return {n: self.nodes[n] for n in ids if n in self.nodes}


@pytest.mark.parametrize("size", [1, 2, 3, 5, 8, 13, 64, 100, 257, 1000])
def test_every_leaf_of_every_shape_as_the_rfc_verifier_says(size: int) -> None:
    ls = leaves(size)
    root = merkle.root_from_leaves(ls)
    store = Store(stored(ls))
    tree = ProvenTree(size, root)
    rng = random.Random(size)
    order = list(range(size))
    rng.shuffle(order)
    for start in range(0, size, 7):  # pages of a few leaves, in random order
        batch = {i: ls[i] for i in order[start : start + 7]}
        assert tree.check(batch, store.fetch) == dict.fromkeys(batch)
    # Everything kept is the tree's own node, at the level kept.
    assert all(store.nodes[n] == h for n, h in tree.nodes.items())
    assert all(level >= MIN_LEVEL for level, _ in tree.nodes)
    # A wrong leaf fails wherever it is put, cached siblings or not.
    for i in range(size):
        got = tree.check({i: ls[(i + 1) % size] if size > 1 else b"\0" * 32}, store.fetch)
        assert got[i] is not None and "not included" in got[i]


def test_a_warm_tree_reads_only_the_lowest_siblings() -> None:
    size = 100_003  # three leaves past a multiple of 2^k: a right edge at levels 0 and 1
    ls = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    nodes = _stored_fast(ls)
    root = merkle.fold([nodes[n] for n in merkle.range_nodes(0, size)])
    store = Store(nodes)
    tree = ProvenTree(size, root)
    rng = random.Random(1)
    first = [rng.randrange(size) for _ in range(5)]
    cold = nodes_fetched(first, tree)
    assert tree.check({i: ls[i] for i in first}, store.fetch) == dict.fromkeys(first)
    assert store.reads == [cold] and cold >= 5 * 14
    for _ in range(2000):  # about as many entries as 400 pages
        i = rng.randrange(size)
        assert tree.check({i: ls[i]}, store.fetch) == {i: None}
    # Now a new leaf's path reads its siblings below MIN_LEVEL and few more.
    later = [nodes_fetched([rng.randrange(size)], tree) for _ in range(50)]
    assert max(later) <= MIN_LEVEL + 7 and sorted(later)[25] <= MIN_LEVEL + 3, later


def _stored_fast(ls: list[bytes]) -> dict[NodeId, bytes]:
    out: dict[NodeId, bytes] = {(0, i): h for i, h in enumerate(ls)}
    level, row = 0, ls
    while len(row) > 1:
        row = [merkle.node_hash(row[2 * i], row[2 * i + 1]) for i in range(len(row) // 2)]
        level += 1
        out.update({(level, i): h for i, h in enumerate(row)})
    return out


def test_a_node_edited_in_the_store_fails_the_paths_through_it_until_proven() -> None:
    size = 300
    ls = leaves(size)
    root = merkle.root_from_leaves(ls)
    good = stored(ls)
    store = Store(dict(good))
    store.nodes[(4, 3)] = b"\x07" * 32  # an insider's edit, before any page
    tree = ProvenTree(size, root)
    below = range(3 << 4, 4 << 4)  # the leaves under (4, 3): their paths do not use it
    beside = range(2 << 4, 3 << 4)  # the leaves under (4, 2): their sibling is (4, 3)
    got = tree.check({i: ls[i] for i in [*below, *beside]}, store.fetch)
    assert all(got[i] is None for i in below)
    assert all(got[i] is not None for i in beside)
    # The leaves below it proved the real (4, 3) on the way up: kept, it now wins over
    # the edited row, and the leaves beside it are proven with the real hash.
    assert tree.nodes[(4, 3)] == good[(4, 3)]
    assert tree.check({i: ls[i] for i in beside}, store.fetch) == dict.fromkeys(beside)
    # An edit after a node was proven is never read for this tree again.
    store.nodes[(5, 0)] = b"\x09" * 32
    assert tree.check({0: ls[0]}, store.fetch) == {0: None}
    # The forged node cannot make a leaf that is not there pass.
    assert tree.check({40: ls[41]}, store.fetch)[40] is not None


def test_nodes_are_kept_per_checkpoint_and_a_root_that_is_not_the_tree_fails() -> None:
    ls = leaves(50)
    store = Store(stored(ls))
    trees = ProvenTrees(keep=2)
    root = merkle.root_from_leaves(ls)
    assert check_inclusion({7: ls[7]}, size=50, root=root, fetch=store.fetch, trees=trees) == {7: None}
    # The same nodes, another root (a checkpoint of another tree): nothing carries over.
    other = merkle.root_from_leaves(ls[:49] + [merkle.leaf_hash(b"x")])
    got = check_inclusion({7: ls[7]}, size=50, root=other, fetch=store.fetch, trees=trees)
    assert got[7] is not None and "not included" in got[7]
    assert trees.tree(50, other).nodes == {}
    # A smaller checkpoint of the same log is its own tree; beyond its size, refused.
    small = merkle.root_from_leaves(ls[:20])
    assert check_inclusion({7: ls[7]}, size=20, root=small, fetch=store.fetch, trees=trees) == {7: None}
    assert "outside a tree of size 20" in (
        check_inclusion({30: ls[30]}, size=20, root=small, fetch=store.fetch, trees=trees)[30] or ""
    )
    # Only the last two trees are kept: the first one's nodes are gone.
    assert trees.tree(20, small).nodes and trees.tree(50, root).nodes == {}


def test_a_missing_node_is_named() -> None:
    ls = leaves(40)
    nodes = stored(ls)
    del nodes[(0, 9)]
    got = ProvenTree(40, merkle.root_from_leaves(ls)).check({8: ls[8]}, Store(nodes).fetch)
    assert got == {8: "the store has no hash for subtree (0, 9)"}


def test_never_says_included_for_a_leaf_that_is_not_the_trees() -> None:
    """Random trees, random edits of stored nodes, random true and false leaves: a leaf
    said included is always the tree's leaf at that index (the truth, from all leaves),
    and with an untouched store every true leaf is said included."""
    rng = random.Random(9)
    for _ in range(40):
        size = rng.randrange(1, 600)
        ls = leaves(size)
        root = merkle.root_from_leaves(ls)
        good = stored(ls)
        tree = ProvenTree(size, root)
        clean = Store(good)
        dirty = Store(dict(good))
        for n in rng.sample(sorted(good), min(len(good), rng.randrange(0, 6))):
            dirty.nodes[n] = hashlib.sha256(repr(n).encode()).digest()
        for _ in range(30):
            batch = {}
            for i in rng.sample(range(size), min(size, rng.randrange(1, 6))):
                batch[i] = ls[i] if rng.random() < 0.7 else ls[rng.randrange(size)]
            store = dirty if rng.random() < 0.5 else clean
            got = tree.check(batch, store.fetch)
            for i, leaf in batch.items():
                if got[i] is None:
                    assert leaf == ls[i]
                elif store is clean:
                    assert leaf != ls[i], got[i]


def test_a_full_tree_keeps_no_more_and_still_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledger.queries import verified_cache

    monkeypatch.setattr(verified_cache, "MAX_NODES", 10)
    ls = leaves(500)
    store = Store(stored(ls))
    tree = ProvenTree(500, merkle.root_from_leaves(ls))
    for i in range(0, 500, 3):
        assert tree.check({i: ls[i]}, store.fetch) == {i: None}
        assert tree.check({i: ls[i - 1]}, store.fetch)[i] is not None
    assert len(tree.nodes) == 10
