"""RFC 9162 Merkle math against published vectors, an independent library, and itself."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymerkle import InmemoryTree

from ledger.core import merkle
from ledger.core.errors import ProofError

VECTORS = json.loads((Path(__file__).resolve().parent / "vectors" / "rfc6962.json").read_text())


class MemoryNodes:
    """Every complete subtree of a tree held in memory, built through Frontier."""

    def __init__(self, leaves: list[bytes]) -> None:
        self.nodes: dict[tuple[int, int], bytes] = {}
        self.frontier = merkle.Frontier.empty()
        for level, index, h in self.frontier.extend(leaves):
            self.nodes[(level, index)] = h
        self.fetches = 0

    def fetch(self, ids: Collection[tuple[int, int]]) -> Mapping[tuple[int, int], bytes]:
        self.fetches += 1
        return {i: self.nodes[i] for i in ids if i in self.nodes}


def vector_leaves() -> list[bytes]:
    return [merkle.leaf_hash(bytes.fromhex(x)) for x in VECTORS["leafInputsHex"]]


def test_leaf_hashes_match_vectors() -> None:
    assert [h.hex() for h in vector_leaves()] == VECTORS["leafHashes"]


@pytest.mark.parametrize("size", range(0, 9))
def test_roots_match_vectors(size: int) -> None:
    leaves = vector_leaves()[:size]
    expected = VECTORS["roots"][str(size)]
    assert merkle.root_from_leaves(leaves).hex() == expected
    store = MemoryNodes(leaves)
    assert merkle.root(size, store.fetch).hex() == expected
    assert store.frontier.root().hex() == expected


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['leafIndex']}@{c['treeSize']}")
def test_inclusion_vectors(case: dict[str, object]) -> None:
    index, size = int(case["leafIndex"]), int(case["treeSize"])  # type: ignore[call-overload]
    store = MemoryNodes(vector_leaves()[:size])
    proof = merkle.inclusion_proof(index, size, store.fetch)
    assert [p.hex() for p in proof] == case["hashes"]
    assert store.fetches == 1
    merkle.verify_inclusion(
        leaf=vector_leaves()[index],
        index=index,
        size=size,
        proof=proof,
        root=bytes.fromhex(VECTORS["roots"][str(size)]),
    )


@pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['first']}-{c['second']}")
def test_consistency_vectors(case: dict[str, object]) -> None:
    first, second = int(case["first"]), int(case["second"])  # type: ignore[call-overload]
    store = MemoryNodes(vector_leaves()[:second])
    proof = merkle.consistency_proof(first, second, store.fetch)
    assert [p.hex() for p in proof] == case["hashes"]
    merkle.verify_consistency(
        first=first,
        second=second,
        first_root=bytes.fromhex(VECTORS["roots"][str(first)]),
        second_root=bytes.fromhex(VECTORS["roots"][str(second)]),
        proof=proof,
    )


def test_single_hash_vectors() -> None:
    singles = VECTORS["singleHashes"]
    assert singles, "the vector file names single hashes"
    for expr, expected in singles.items():
        kind, _, arg = expr.partition("(")
        literal = arg.rstrip(")").strip("'\"").encode()
        got = merkle.leaf_hash(literal) if kind == "leaf" else None
        if got is not None:
            assert got.hex() == expected


def _tree(n: int, salt: int = 0) -> MemoryNodes:
    return MemoryNodes([merkle.leaf_hash(f"{salt}:{i}".encode()) for i in range(n)])


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 600), st.data())
def test_inclusion_proofs_verify_and_every_bit_flip_fails(size: int, data: st.DataObject) -> None:
    index = data.draw(st.integers(0, size - 1))
    store = _tree(size)
    root = store.frontier.root()
    leaf = store.nodes[(0, index)]
    proof = merkle.inclusion_proof(index, size, store.fetch)
    assert len(proof) <= max(1, (size - 1).bit_length())
    merkle.verify_inclusion(leaf=leaf, index=index, size=size, proof=proof, root=root)

    bit = data.draw(st.integers(0, 255))
    flipped_root = bytearray(root)
    flipped_root[bit // 8] ^= 1 << (bit % 8)
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf=leaf, index=index, size=size, proof=proof, root=bytes(flipped_root))
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = [bytearray(p) for p in proof]
        bad[which][bit // 8] ^= 1 << (bit % 8)
        with pytest.raises(ProofError):
            merkle.verify_inclusion(
                leaf=leaf, index=index, size=size, proof=[bytes(b) for b in bad], root=root
            )
    # Every other index or size must fail for the same proof (a flipped bit of either).
    ibit = data.draw(st.integers(0, max(0, size.bit_length())))
    with pytest.raises(ProofError):
        merkle.verify_inclusion(leaf=leaf, index=index ^ (1 << ibit), size=size, proof=proof, root=root)
    # A size flip is refused against the checkpoint of that other size: the signed
    # (size, root) pair travels together, so the proof must not fit any other pair.
    sbit = data.draw(st.integers(0, size.bit_length()))
    other = size ^ (1 << sbit)
    if other > index:
        longer = _tree(max(size, other))
        with pytest.raises(ProofError):
            merkle.verify_inclusion(
                leaf=leaf,
                index=index,
                size=other,
                proof=proof,
                root=merkle.root(other, longer.fetch),
            )


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 600), st.data())
def test_consistency_proofs_verify_and_every_bit_flip_fails(second: int, data: st.DataObject) -> None:
    first = data.draw(st.integers(1, second))
    store = _tree(second)
    first_root = merkle.root(first, store.fetch)
    second_root = store.frontier.root()
    proof = merkle.consistency_proof(first, second, store.fetch)
    merkle.verify_consistency(
        first=first, second=second, first_root=first_root, second_root=second_root, proof=proof
    )
    bit = data.draw(st.integers(0, 255))

    def flip(h: bytes) -> bytes:
        b = bytearray(h)
        b[bit // 8] ^= 1 << (bit % 8)
        return bytes(b)

    with pytest.raises(ProofError):
        merkle.verify_consistency(
            first=first,
            second=second,
            first_root=flip(first_root),
            second_root=second_root,
            proof=proof,
        )
    with pytest.raises(ProofError):
        merkle.verify_consistency(
            first=first,
            second=second,
            first_root=first_root,
            second_root=flip(second_root),
            proof=proof,
        )
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1))
        bad = list(proof)
        bad[which] = flip(bad[which])
        with pytest.raises(ProofError):
            merkle.verify_consistency(
                first=first,
                second=second,
                first_root=first_root,
                second_root=second_root,
                proof=bad,
            )
    if first != second:
        fbit = data.draw(st.integers(0, first.bit_length()))
        other_first = first ^ (1 << fbit)
        if 0 < other_first <= second:
            with pytest.raises(ProofError):
                merkle.verify_consistency(
                    first=other_first,
                    second=second,
                    first_root=first_root,
                    second_root=second_root,
                    proof=proof,
                )


def test_a_fork_is_not_consistent() -> None:
    honest = _tree(10)
    forked = MemoryNodes(
        [honest.nodes[(0, i)] for i in range(6)]
        + [merkle.leaf_hash(b"rewritten")]
        + [honest.nodes[(0, i)] for i in range(7, 10)]
    )
    proof = merkle.consistency_proof(7, 10, forked.fetch)
    with pytest.raises(ProofError):
        merkle.verify_consistency(
            first=7,
            second=10,
            first_root=merkle.root(7, honest.fetch),
            second_root=forked.frontier.root(),
            proof=proof,
        )


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2000), st.integers(0, 2**32))
def test_pymerkle_agrees_on_roots(size: int, salt: int) -> None:
    entries = [f"{salt}/{i}".encode() for i in range(size)]
    reference = InmemoryTree(algorithm="sha256")
    for e in entries:
        reference.append_entry(e)
    expected = reference.get_root() if size else merkle.EMPTY_ROOT
    ours = merkle.Frontier.empty()
    ours.extend(merkle.leaf_hash(e) for e in entries)
    assert ours.root() == expected
    if size == 0:
        assert reference.get_size() == 0


def test_proof_for_missing_leaf_is_refused() -> None:
    store = _tree(4)
    with pytest.raises(ProofError, match="not in a tree of size 4"):
        merkle.inclusion_proof(4, 4, store.fetch)
    with pytest.raises(ProofError):
        merkle.consistency_proof(5, 4, store.fetch)


def test_frontier_reload_matches_stream() -> None:
    store = _tree(37)
    reloaded = merkle.Frontier.load(23, store.fetch)
    streamed = merkle.Frontier.empty()
    streamed.extend(store.nodes[(0, i)] for i in range(23))
    assert reloaded == streamed
    assert reloaded.extend(store.nodes[(0, i)] for i in range(23, 37))
    assert reloaded.root() == store.frontier.root()


def test_path_builder_agrees_with_range_proofs() -> None:
    for size in range(1, 70):
        store = _tree(size)
        paths = merkle.PathBuilder(size, store.nodes)
        for index in range(size):
            assert paths.proof(index) == merkle.inclusion_proof(index, size, store.fetch)


def test_path_builder_proofs_share_paths_and_agree_with_one_proof_each() -> None:
    """``proofs`` (the receipts of a batch: neighbouring leaves) gives each leaf the path
    ``proof`` gives it, for every range of leaves of trees of every size up to 70; a node
    missing from the store, or an index outside the tree, is refused as by ``proof``."""
    for size in range(1, 70):
        store = _tree(size)
        paths = merkle.PathBuilder(size, store.nodes)
        for start in range(0, size, 7):
            for end in (start + 1, size):
                got = paths.proofs(range(start, end))
                assert got == {i: tuple(paths.proof(i)) for i in range(start, end)}
    with pytest.raises(ProofError):
        merkle.PathBuilder(10, _tree(10).nodes).proofs([10])
    store = _tree(37)
    del store.nodes[(1, 3)]
    with pytest.raises(ProofError, match=r"subtree \(1, 3\)"):
        merkle.PathBuilder(37, store.nodes).proofs(range(4, 6))


def test_batched_proofs_agree_and_fetch_only_what_they_use() -> None:
    asked: list[set[tuple[int, int]]] = []
    for size in range(1, 70):
        store = _tree(size)
        asked.clear()

        def fetch(
            ids: Collection[tuple[int, int]], store: MemoryNodes = store
        ) -> Mapping[tuple[int, int], bytes]:
            asked.append(set(ids))
            return store.fetch(ids)

        got = merkle.inclusion_proofs(range(size), size, fetch)
        assert got == {i: merkle.inclusion_proof(i, size, store.fetch) for i in range(size)}
        assert len(asked) == 1 and asked[0] <= set(store.nodes)
        for index in range(size):
            asked.clear()
            merkle.inclusion_proofs([index], size, fetch)
            needed = {n for p in merkle.needed_for_inclusion(index, size) for n in p}
            assert asked == [needed]  # the same nodes as the proof by ranges
    with pytest.raises(ProofError):
        merkle.inclusion_proofs([3], 10, lambda ids: {})


@pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: f"{c['leafIndex']}@{c['treeSize']}")
def test_path_builder_vectors(case: dict[str, object]) -> None:
    index, size = int(case["leafIndex"]), int(case["treeSize"])  # type: ignore[call-overload]
    store = MemoryNodes(vector_leaves()[:size])
    assert [p.hex() for p in merkle.PathBuilder(size, store.nodes).proof(index)] == case["hashes"]
