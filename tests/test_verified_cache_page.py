"""The page's caches of verification work, attacked through HTTP after they hold an answer:
the server has shown a page as verified (its entries parsed, their signatures, judgements
and inclusion paths kept, the tree's nodes proven), then an insider with write access to
the database — and, for some attacks, the operator's checkpoint key — changes the log. The
next page must say what the rules and the signed checkpoint say, not what was cached."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.core import merkle
from ledger.core.keys import PartyKey
from ledger.core.statements import entry_bytes, prepare, sign_one
from ledger.queries.trace import journey
from ledger.store.schema import node_key
from tests.forge import forge
from tests.pagechain import FormulaChain, item
from tests.support import Client, World
from tests.test_verified import NOW, page, recall, visible


def commissioning(party: str, key: PartyKey, code: str) -> dict[str, Any]:
    return sign_one(
        kind="event",
        signer=party,
        key=key,
        issued=NOW,
        body={
            "type": "ObjectEvent",
            "eventTime": NOW,
            "eventTimeZoneOffset": "+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": [code],
            "ilmd": {"gs1:productName": "真货 Genuine", "cbvmda:lotNumber": "R1"},
        },
    )


def rewrite_path(world: World, seq: int, leaf: bytes) -> int:
    """UPDATE the stored tree so that every complete node above ``seq`` agrees with
    ``leaf``: all an insider can do short of signing a new checkpoint. Returns the number
    of levels rewritten."""
    store = world.store
    size = world.ledger.size()
    with store.reading() as conn:
        siblings = store.fetch_nodes(
            conn, [(lvl, (seq >> lvl) ^ 1) for lvl in range(64) if (seq >> lvl) ^ 1 < size >> lvl]
        )
    h, level = leaf, 0
    while True:
        store.raw(
            "UPDATE merkle_nodes SET hash = :h WHERE node = :n", {"h": h, "n": node_key(level, seq >> level)}
        )
        sib = (seq >> level) ^ 1
        if (seq >> (level + 1)) >= size >> (level + 1):
            return level + 1  # the node above is on the right edge: not stored
        s = siblings[(level, sib)]
        h = merkle.node_hash(s, h) if (seq >> level) & 1 else merkle.node_hash(h, s)
        level += 1


def test_a_signed_entry_swapped_in_with_its_tree_rows_after_the_page_was_cached(
    world: World, client: Client
) -> None:
    """A recall the producer really signed (its signature and the registry's rules hold),
    put in place of a journey entry, with every stored tree node above it rewritten to
    agree: the nodes this server proved for the checkpoint, and its root, still say no."""
    chain = FormulaChain(world)
    built = chain.build()
    code = built["sold"]
    assert page(client, code)["verification"]["verified"] is True
    assert page(client, built["unsold"])["verification"]["verified"] is True
    steps = journey(world.store, code)["journey"]
    seq = steps[0]["seq"]  # early in the log: several complete levels above it
    old = world.ledger.entry(seq).decoded()
    forged = prepare(recall(chain.producer, chain.keys[chain.producer], code))
    raw = entry_bytes(
        seq=seq, prev=bytes.fromhex(old["prev"]), time=old["time"], envelope_bytes=forged.envelope_bytes
    )
    world.store.drop_append_only()
    world.store.raw("UPDATE entries SET entry = :e WHERE seq = :s", {"e": raw, "s": seq})
    assert rewrite_path(world, seq, merkle.leaf_hash(raw)) >= 4

    facts = page(client, code)
    v = facts["verification"]
    assert v["verified"] is False
    assert [p for p in v["problems"] if p.startswith(f"seq {seq}: ")] == [
        f"seq {seq}: not included in the checkpoint: leaf {seq} is not included in the tree "
        f"of size {v['checkpoint']} with that root"
    ], v["problems"]
    assert facts["recall"]["recalled"] is False
    assert seq not in [s["seq"] for s in facts["timeline"]]
    assert "FORGED" not in visible(client, code)


def test_the_bytes_of_another_verified_entry_copied_over_a_row(world: World, client: Client) -> None:
    """Bytes the server verified and keeps (by their leaf hash) put at another seq: their
    parse and signatures are cache hits, but their leaf is not the one at that seq."""
    built = FormulaChain(world).build()
    code = built["sold"]
    seqs = [s["seq"] for s in journey(world.store, code)["journey"]]
    assert page(client, code)["verification"]["verified"] is True
    target, donor = seqs[-1], seqs[0]
    world.store.drop_append_only()
    world.store.raw(
        "UPDATE entries SET entry = :e WHERE seq = :s", {"e": world.ledger.entry(donor).raw, "s": target}
    )
    v = page(client, code)["verification"]
    assert v["verified"] is False
    assert [p for p in v["problems"] if p.startswith(f"seq {target}: ")] == [
        f"seq {target}: not included in the checkpoint: leaf {target} is not included in the "
        f"tree of size {v['checkpoint']} with that root"
    ], v["problems"]
    assert v["entriesVerified"] == len(set(seqs)) - 1


@pytest.mark.parametrize("end", ["revoked", "rotated"])
def test_a_key_ended_after_its_pages_were_cached(world: World, client: Client, end: str) -> None:
    """The judgements kept for a page were made before the signer's key was revoked (or
    rotated away): the entry it signed while the key was valid stays verified, and one
    signed with it afterwards (inserted by an insider holding the checkpoint key) is
    refused, with the seq at which the key ended."""
    party, key = world.register()
    code = item("REVK0001")
    made = world.ledger.append(commissioning(party, key, code)).seq
    first = page(client, code)
    assert first["verification"]["verified"] is True
    assert [s["seq"] for s in first["timeline"]] == [made]
    if end == "revoked":
        ending = sign_one(
            kind="party.key.revoke", signer=party, key=key, body={"party": party, "key": key.key_id}
        )
    else:
        ending = sign_one(
            kind="party.key.rotate",
            signer=party,
            key=key,
            body={"publicKey": PartyKey.generate(party).public_key_b64},
            cosigners=[(world.registrar, world.registrar_key)],
        )
    revoked_at = world.ledger.append(ending).seq

    # The revocation ends the key from its seq on: what was signed before still holds.
    after = page(client, code)
    assert after["verification"]["verified"] is True, after["verification"]
    assert [s["seq"] for s in after["timeline"]] == [made]

    (late,) = forge(world, [recall(party, key, code)], note_signer=world.ledger.note_signer)  # type: ignore[arg-type]
    facts = page(client, code)
    v = facts["verification"]
    assert v["verified"] is False and v["entriesVerified"] == 1
    assert f"seq {late}: key {key.key_id} of {party} was {end} at seq {revoked_at}" in v["problems"], v[
        "problems"
    ]
    assert [s["seq"] for s in facts["timeline"]] == [made]
    assert facts["recall"]["recalled"] is False
    # The product still shows what the entry signed before the revocation says.
    assert facts["product"]["names"] == first["product"]["names"]


def test_a_stored_node_edited_before_a_cold_entry_is_first_checked(world: World, client: Client) -> None:
    """The served page reads the stored nodes of its unchecked entries' paths with the rest
    of its request, chosen by the tree this server proved for the checkpoint: a sibling
    edited after other pages were cached, on the path of an entry no page has checked yet,
    fails that entry's path as it would had the node been read on its own."""
    chain = FormulaChain(world)
    built = chain.build()
    lot_b = chain.build_recalled()
    assert page(client, built["sold"])["verification"]["verified"] is True  # the tree proven
    code = lot_b["tins"][0]
    seqs = [s["seq"] for s in journey(world.store, code)["journey"]]
    sold_seqs = {s["seq"] for s in journey(world.store, built["sold"])["journey"]}
    size = world.ledger.size()
    seq = next(q for q in reversed(seqs) if q not in sold_seqs and (q ^ 1) < size and (q ^ 1) not in seqs)
    world.store.drop_append_only()
    world.store.raw(
        "UPDATE merkle_nodes SET hash = :h WHERE node = :n", {"h": b"\x07" * 32, "n": node_key(0, seq ^ 1)}
    )
    v = page(client, code)["verification"]
    assert v["verified"] is False
    assert [p for p in v["problems"] if p.startswith(f"seq {seq}: ")] == [
        f"seq {seq}: not included in the checkpoint: leaf {seq} is not included in the tree "
        f"of size {v['checkpoint']} with that root"
    ], v["problems"]
    assert page(client, built["sold"])["verification"]["verified"] is True  # its paths hold
