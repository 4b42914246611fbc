"""Regulators' lists: a negative-listed party is refused from that entry on (answers to a
recall excepted), only regulators keep lists, and the lists rebuild from entries."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.core.errors import BatchRejected
from ledger.core.keys import PartyKey
from ledger.core.statements import sign_one
from ledger.log.audit import audit
from ledger.log.reindex import reindex
from ledger.store import tracedb
from tests.support import World


def _event(who: str, key: PartyKey, n: int, **extra: Any) -> dict[str, Any]:
    body = {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "bizStep": "shipping",
        "eventTime": "2026-11-27T10:00:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": [f"https://id.gs1.org/01/09506000134352/21/{n}"],
        **extra,
    }
    return sign_one(kind="event", signer=who, key=key, body=body)


def _listing(reg: str, rk: PartyKey, party: str, action: str) -> dict[str, Any]:
    return sign_one(
        kind="list.update",
        signer=reg,
        key=rk,
        body={
            "list": "negative",
            "action": action,
            "party": party,
            "reason": "走私嫌疑 / suspected smuggling",
        },
    )


def test_negative_list_refuses_from_that_entry_on(world: World) -> None:
    regulator, rk = world.register(["regulator"])
    carrier, ck = world.register(["logistics"])
    world.ledger.append(_event(carrier, ck, 1))
    listed_at = world.ledger.append(_listing(regulator, rk, carrier, "add")).seq
    size = world.ledger.size()
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(_event(carrier, ck, 2))
    err = e.value.errors[0][1]
    assert err.code == "negative_listed"
    assert carrier in err.message and f"since seq {listed_at}" in err.message
    assert world.ledger.size() == size
    # Saying "recalled" answers nothing: no recall on the ledger covers item 3 (issue 10).
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(_event(carrier, ck, 3, disposition="recalled"))
    assert e.value.errors[0][1].code == "negative_listed"
    assert "/21/3 is under no recall on the ledger" in e.value.errors[0][1].message
    # Once its producer recalls it, moving it answers the recall and is still accepted.
    producer, pk = world.register(["producer"])
    world.ledger.append(world.event(producer, pk, 3))
    world.ledger.append(
        _event(producer, pk, 3, action="OBSERVE", bizStep="cbec:recalling", disposition="recalled")
    )
    world.ledger.append(_event(carrier, ck, 3, disposition="recalled"))
    world.ledger.append(_listing(regulator, rk, carrier, "remove"))
    world.ledger.append(_event(carrier, ck, 4))
    rep = audit(world.store)
    assert rep.ok, [p.line() for p in rep.problems]


def test_only_regulators_keep_lists(world: World) -> None:
    producer, pk = world.register(["producer"])
    other, _ = world.register(["logistics"])
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(_listing(producer, pk, other, "add"))
    assert e.value.errors[0][1].code == "role_not_allowed"
    bad = sign_one(
        kind="list.update",
        signer=producer,
        key=pk,
        body={"list": "grey", "action": "add", "party": other, "reason": "x"},
    )
    with pytest.raises(BatchRejected, match="negative"):
        world.ledger.append(bad)


def test_lists_rebuild_identically(world: World) -> None:
    regulator, rk = world.register(["regulator"])
    carrier, _ = world.register(["logistics"])
    world.ledger.append(_listing(regulator, rk, carrier, "add"))
    world.ledger.append(
        sign_one(
            kind="list.update",
            signer=regulator,
            key=rk,
            body={
                "list": "positive",
                "action": "add",
                "hsCodes": ["0402210000", "3304990000"],
                "reason": "跨境电商零售进口商品清单",
            },
        )
    )
    world.ledger.append(
        sign_one(
            kind="list.update",
            signer=regulator,
            key=rk,
            body={"list": "positive", "action": "remove", "hsCodes": ["3304990000"], "reason": "调整"},
        )
    )
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    assert [r[0] for r in before["negative_list"]] == [carrier]
    assert [r[0] for r in before["positive_list"]] == ["0402210000"]
    reindex(world.store)
    with world.store.reading() as conn:
        assert tracedb.dump_projections(conn) == before
