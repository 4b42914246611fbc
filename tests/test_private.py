"""Private data: committed in the statement, kept apart, shown only to the entitled, and
erasable without breaking any hash or proof."""

from __future__ import annotations

import hashlib
import json

import pytest
import rfc8785

from ledger.core import merkle
from ledger.core.errors import BatchRejected, NotAuthorised, NotFound
from ledger.core.private import PUBLIC, Viewer, make_blob
from ledger.core.statements import sign_one
from ledger.log.audit import audit
from ledger.log.bundle import make_bundle, verify_bundle
from tests.support import World


def _order(w: World) -> tuple[int, str, dict[str, object], str, str]:
    platform, key = w.register(["platform"])
    buyer_side, _ = w.register(["payment"])
    commitment, blob = make_blob({"buyer": "张三", "idNumber": "130203199001011234", "price": "298.00"})
    body = {
        "type": "TransactionEvent",
        "action": "ADD",
        "eventTime": "2026-11-27T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "bizStep": "retail_selling",
        "epcList": ["https://id.gs1.org/01/09506000134352/21/900"],
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": "urn:suyuan:order:1"}],
        "destinationList": [{"type": "owning_party", "destination": buyer_side}],
    }
    env = sign_one(kind="event", signer=platform, key=key, body=body, private=commitment)
    seq = w.ledger.append_batch([env], private={commitment: blob})[0].seq
    return seq, commitment, blob, platform, buyer_side


def test_commitment_is_sha256_of_jcs_of_salted_blob(world: World) -> None:
    seq, commitment, blob, _, _ = _order(world)
    assert commitment == "sha256:" + hashlib.sha256(rfc8785.dumps(blob)).hexdigest()
    assert len(str(blob["salt"])) == 24  # base64 of 16 bytes
    st = world.ledger.entry(seq).decoded()["envelope"]["statement"]
    assert st["private"] == commitment


def test_public_view_never_contains_private_data(world: World) -> None:
    seq, _, blob, _, _ = _order(world)
    public = json.dumps(world.ledger.entry(seq).as_dict(), ensure_ascii=False)
    for secret in ("张三", "130203199001011234", "298.00", str(blob["salt"])):
        assert secret not in public
    with pytest.raises(NotAuthorised) as e:
        world.ledger.private_data(seq, PUBLIC)
    assert e.value.code == "not_entitled"


def test_who_may_see_it(world: World) -> None:
    seq, _, blob, platform, named = _order(world)
    stranger, _ = world.register(["logistics"])
    assert world.ledger.private_data(seq, Viewer("party", platform)) == blob
    assert world.ledger.private_data(seq, Viewer("party", named)) == blob
    assert world.ledger.private_data(seq, Viewer("regulator")) == blob
    with pytest.raises(NotAuthorised):
        world.ledger.private_data(seq, Viewer("party", stranger))


def test_mismatched_blob_is_refused_and_nothing_lands(world: World) -> None:
    platform, key = world.register(["platform"])
    commitment, blob = make_blob({"price": "1.00"})
    env = sign_one(
        kind="event",
        signer=platform,
        key=key,
        body={
            "type": "ObjectEvent",
            "action": "OBSERVE",
            "bizStep": "retail_selling",
            "eventTime": "2026-11-27T10:00:00+08:00",
            "eventTimeZoneOffset": "+08:00",
            "epcList": ["https://id.gs1.org/01/09506000134352/21/901"],
        },
        private=commitment,
    )
    size = world.ledger.size()
    forged = {"salt": blob["salt"], "data": {"price": "0.01"}}
    with pytest.raises(BatchRejected, match="does not match its commitment"):
        world.ledger.append_batch([env], private={commitment: forged})
    with pytest.raises(BatchRejected, match="matches no statement"):
        world.ledger.append_batch([env], private={"sha256:" + "0" * 64: blob, commitment: blob})
    assert world.ledger.size() == size


def test_shredding_keeps_every_proof(world: World) -> None:
    seq, commitment, _, platform, _ = _order(world)
    before = world.ledger.entry(seq)
    world.ledger.shred(commitment)
    with pytest.raises(NotFound) as e:
        world.ledger.private_data(seq, Viewer("party", platform))
    assert e.value.code == "shredded"
    assert world.ledger.entry(seq) == before
    rep = audit(world.store)
    assert rep.ok, [p.line() for p in rep.problems]
    proof = world.ledger.inclusion_proof(seq)
    merkle.verify_inclusion(
        leaf=before.leaf_hash, index=seq, size=proof.tree_size, proof=proof.hashes, root=world.ledger.root()
    )
    bundle = make_bundle(world.ledger, [seq])
    assert verify_bundle(bundle, log_key=world.ledger.log_verifier().vkey()).ok
    with pytest.raises(NotFound):
        world.ledger.shred("sha256:" + "1" * 64)
