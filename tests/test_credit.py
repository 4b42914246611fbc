"""Credit: hand-computed scores from known inputs, regulator records, the pure scoring
rules (clamp, complaint cap), refusals, the CLI, and findings once the engine is there."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.core.errors import BatchRejected, NotFound
from ledger.core.statements import sign_one
from ledger.queries import credit as cr
from tests.chain import build, credit_record
from tests.support import World

REPO = Path(__file__).resolve().parent.parent


def _summary(doc: dict[str, Any]) -> list[tuple[str, list[int], int]]:
    return [(i["source"], i["seqs"], i["points"]) for i in doc["items"]]


def test_scores_by_hand(world: World) -> None:
    c = build(world)
    s = c.seqs
    p = cr.credit(world.store, c.id("P"))
    # 100 - 15 (record) - 10 (lot L1 recalled by the regulator) - 2 (one star) - 1 (two stars)
    assert _summary(p) == [
        ("credit.record", [s["record_p"]], -15),
        ("recall", [s["recall_p"]], -10),
        ("complaint", [s["eval1"]], -2),
        ("complaint", [s["eval2"]], -1),
    ]
    assert p["score"] == 72
    assert p["party"] == c.id("P") and p["name"].startswith("party ")
    for item in p["items"]:
        assert item["reason"]["zh"] and item["reason"]["en"]
    assert "recalled by " + c.id("regulator") in p["items"][1]["reason"]["en"]
    # 100 + 5 (record) - 5 (its own, voluntary recall): back at 100.
    q = cr.credit(world.store, c.id("Q"))
    assert _summary(q) == [("credit.record", [s["record_q"]], 5), ("recall", [s["recall_q"]], -5)]
    assert q["score"] == 100
    # Both releases lacked payment and waybill: one high finding each, naming the platform,
    # the broker and customs: 100 - 10 - 10.
    for name in ("platform", "broker", "customs"):
        doc = cr.credit(world.store, c.id(name))
        assert _summary(doc) == [
            ("finding", [s["order1"], s["decl1"], s["release1"]], -10),
            ("finding", [s["order2"], s["decl2"], s["release2"]], -10),
        ], name
        assert doc["score"] == 80
        assert all("three_docs.missing" in i["reason"]["en"] for i in doc["items"])
    reg = cr.credit(world.store, c.id("regulator"))
    assert reg["score"] == 100 and reg["items"] == []
    # The five-star evaluation and the other parties' products count for nobody.
    assert all(s["eval3"] not in i["seqs"] for i in p["items"] + q["items"])
    table = cr.credit_table(world.store)
    assert [(r["party"], r["score"]) for r in table] == sorted(
        [
            (c.id("P"), 72),
            (c.id("platform"), 80),
            (c.id("broker"), 80),
            (c.id("customs"), 80),
            (c.id("Q"), 100),
            (c.id("regulator"), 100),
        ],
        key=lambda r: (r[1], r[0]),
    )
    assert next(r for r in table if r["party"] == c.id("P"))["explained"] == p["items"]


def test_credit_records_count_as_signed(world: World) -> None:
    c = build(world)
    before = cr.credit(world.store, c.id("platform"))["score"]
    assert before == 80
    credit_record(c, "r1", "platform", -30, "虚假宣传 false advertising")
    credit_record(c, "r2", "platform", 10, "整改到位 corrected")
    credit_record(c, "r3", "broker", -7, "申报差错 declaration errors")
    after = cr.credit(world.store, c.id("platform"))
    assert [(i["seqs"], i["points"]) for i in after["items"] if i["source"] == "credit.record"] == [
        ([c.seqs["r1"]], -30),
        ([c.seqs["r2"]], 10),
    ]
    assert after["score"] == before - 20
    assert "虚假宣传" in after["items"][0]["reason"]["zh"]
    # Only a regulator records credit; the ledger is unchanged by the refusal.
    size = world.ledger.size()
    who, key = c.parties["platform"]
    with pytest.raises(BatchRejected) as e:
        world.ledger.append(
            sign_one(
                kind="credit.record",
                signer=who,
                key=key,
                body={"party": who, "item": "self-praise", "points": 100, "reason": "x"},
            )
        )
    assert e.value.errors[0][1].code == "role_not_allowed"
    assert world.ledger.size() == size


def test_clamped_to_zero_and_hundred(world: World) -> None:
    c = build(world)
    credit_record(c, "a", "broker", -100, "严重失信 a")
    credit_record(c, "b", "broker", -100, "严重失信 b")
    credit_record(c, "c", "customs", 100, "表彰 c")
    assert cr.credit(world.store, c.id("broker"))["score"] == 0
    assert cr.credit(world.store, c.id("customs"))["score"] == 100


def _item(source: str, points: int, seq: int) -> cr.CreditItem:
    return cr.CreditItem(source, (seq,), points, "理由", "reason")


def test_pure_score_rules() -> None:
    assert cr.score([]) == (100, [])
    total, counted = cr.score([_item("complaint", -2, n) for n in range(7)])
    # Seven one-star complaints would be -14; complaints together cost at most 10 points.
    assert total == 90
    assert [i.points for i in counted] == [-2, -2, -2, -2, -2, 0, 0]
    assert "capped" in counted[-1].reason_en
    total, _ = cr.score(
        [
            _item("credit.record", -40, 1),
            _item("recall", -10, 2),
            _item("finding", cr.finding_points("medium") * 2, 3),
            _item("finding", cr.finding_points("high"), 4),
            _item("finding", cr.finding_points("no-such-severity"), 5),
        ]
    )
    assert total == 100 - 40 - 10 - 10 - 10 - 5 == 25
    assert cr.score([_item("credit.record", -90, 1), _item("recall", -20, 2)])[0] == 0
    assert cr.score([_item("credit.record", 40, 1)])[0] == 100


def test_unknown_party_is_refused(world: World) -> None:
    with pytest.raises(NotFound, match="not registered"):
        cr.credit(world.store, "uscc:91310110666007217T")


def _cli(world: World, *args: str) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ["PATH"], "SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path)}
    return subprocess.run(
        [sys.executable, "-m", "tools.cli", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_cli_credit(world: World) -> None:
    c = build(world)
    one = _cli(world, "credit", c.id("P"))
    assert one.returncode == 0, one.stderr
    assert json.loads(one.stdout) == cr.credit(world.store, c.id("P"))
    table = _cli(world, "credit", "--all")
    assert table.returncode == 0, table.stderr
    assert json.loads(table.stdout) == cr.credit_table(world.store)
    for bad in (
        ("credit",),
        ("credit", c.id("P"), "--all"),
        ("credit", "uscc:91310110666007217T"),
        ("credit", "acme"),
    ):
        r = _cli(world, *bad)
        assert r.returncode == 2 and r.stdout == ""
        assert r.stderr.startswith("error [") and r.stderr.count("\n") == 1, r.stderr


def test_findings_count_as_the_engine_raised_them(world: World) -> None:
    """Cross-check against ledger.compliance.findings for every party, after more findings are raised:
    a release with no documents at all, and an event dated in the future."""
    from ledger.queries import findings as finding_list

    c = build(world)
    c.add(
        "bare_release",
        "customs",
        {
            "type": "ObjectEvent",
            "eventTime": "2025-11-28T10:00:00+08:00",
            "action": "OBSERVE",
            "epcList": ["https://id.gs1.org/01/04901234567894/21/S3"],
            "bizStep": "cbec:releasing",
        },
    )
    c.add(
        "future",
        "P",
        {
            "type": "ObjectEvent",
            "eventTime": "2999-01-01T00:00:00+08:00",
            "action": "ADD",
            "bizStep": "commissioning",
            "epcList": ["https://id.gs1.org/01/04901234567894/21/S9"],
        },
    )
    for name in c.parties:
        party = c.id(name)
        mine = finding_list.list_findings(world.store, party=party)
        got = [i for i in cr.credit(world.store, party)["items"] if i["source"] == "finding"]
        assert [(i["seqs"], i["points"]) for i in got] == [
            (list(f.seqs), cr.finding_points(f.severity)) for f in mine
        ]
        for item, f in zip(got, mine, strict=True):
            assert f.message_en in item["reason"]["en"] and f.message_zh in item["reason"]["zh"]
    future = [i for i in cr.credit(world.store, c.id("P"))["items"] if i["source"] == "finding"]
    assert [(i["seqs"], i["points"]) for i in future] == [([c.seqs["future"]], -5)]  # medium
