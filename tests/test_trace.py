"""Journeys, lineage and recall on generated supply chains, checked against a brute-force
reference computed from the generator's own graph (never from the ledger)."""

from __future__ import annotations

import itertools
import random
import uuid
from collections import deque
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.core import ids
from ledger.core.errors import BatchRejected
from ledger.core.statements import sign_one
from ledger.log.reindex import reindex
from ledger.queries.trace import MAX_NESTING, downstream, journey, recall_impact, upstream
from ledger.store import tracedb
from tests.support import World

TZ = "+08:00"


def gtin(n: int) -> str:
    body = f"0695000{n:06d}"
    return body + ids.gs1_check_digit(body)


def sscc(n: int) -> str:
    body = f"0695000{n:010d}"
    return body + ids.gs1_check_digit(body)


def lot(g: str, name: str) -> str:
    return f"https://id.gs1.org/01/{g}/10/{name}"


def item(g: str, serial: int) -> str:
    return f"https://id.gs1.org/01/{g}/21/{serial}"


def unit(n: int) -> str:
    return f"https://id.gs1.org/00/{sscc(n)}"


def t(minute: int) -> str:
    return f"2026-11-{1 + minute // 1440:02d}T{(minute // 60) % 24:02d}:{minute % 60:02d}:00{TZ}"


def ev(kind: str, minute: int, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "eventTime": t(minute), "eventTimeZoneOffset": TZ, **fields}


class Chain:
    """A small world of producer, warehouse and platform, with helpers to sign events."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.producer, self.pk = w.register(["producer"])
        self.warehouse, self.wk = w.register(["warehouse", "logistics"])
        self.platform, self.plk = w.register(["platform"])

    def sign(self, who: str, body: dict[str, Any]) -> dict[str, Any]:
        key = {self.producer: self.pk, self.warehouse: self.wk, self.platform: self.plk}[who]
        return sign_one(kind="event", signer=who, key=key, body=body, issued=t(0))

    def append(self, pairs: list[tuple[str, dict[str, Any]]]) -> None:
        self.w.ledger.append_batch([self.sign(who, b) for who, b in pairs])


def build_formula_chain(c: Chain) -> dict[str, Any]:
    """Two farm lots mixed into one product lot, 6 tins, 2 cartons, 1 pallet, shipped."""
    milk, tin = gtin(1), gtin(2)
    farm = [lot(milk, "F1"), lot(milk, "F2")]
    product = lot(tin, "P1")
    tins = [item(tin, s) for s in range(6)]
    cartons = [unit(1), unit(2)]
    pallet = unit(3)
    c.append(
        [
            (
                c.producer,
                ev(
                    "ObjectEvent",
                    10,
                    action="ADD",
                    bizStep="commissioning",
                    quantityList=[
                        {"epcClass": farm[0], "quantity": 500, "uom": "KGM"},
                        {"epcClass": farm[1], "quantity": 300, "uom": "KGM"},
                    ],
                ),
            ),
            (
                c.producer,
                ev(
                    "TransformationEvent",
                    20,
                    bizStep="commissioning",
                    inputQuantityList=[{"epcClass": f, "quantity": 100, "uom": "KGM"} for f in farm],
                    outputQuantityList=[{"epcClass": product, "quantity": 200, "uom": "KGM"}],
                ),
            ),
            (
                c.producer,
                ev(
                    "ObjectEvent",
                    30,
                    action="ADD",
                    bizStep="commissioning",
                    epcList=tins,
                    ilmd={"cbvmda:lotNumber": "P1"},
                ),
            ),
            (
                c.producer,
                ev(
                    "AggregationEvent",
                    40,
                    action="ADD",
                    bizStep="packing",
                    parentID=cartons[0],
                    childEPCs=tins[:3],
                ),
            ),
            (
                c.producer,
                ev(
                    "AggregationEvent",
                    41,
                    action="ADD",
                    bizStep="packing",
                    parentID=cartons[1],
                    childEPCs=tins[3:],
                ),
            ),
            (
                c.producer,
                ev(
                    "AggregationEvent",
                    50,
                    action="ADD",
                    bizStep="packing",
                    parentID=pallet,
                    childEPCs=cartons,
                ),
            ),
        ]
    )
    c.append(
        [
            (
                c.warehouse,
                ev(
                    "ObjectEvent",
                    60,
                    action="OBSERVE",
                    bizStep="shipping",
                    disposition="in_transit",
                    epcList=[pallet],
                ),
            ),
            (
                c.warehouse,
                ev(
                    "ObjectEvent",
                    90,
                    action="OBSERVE",
                    bizStep="receiving",
                    disposition="in_progress",
                    epcList=[pallet],
                    bizLocation={"id": "https://id.gs1.org/414/9520123456788"},
                ),
            ),
            (
                c.warehouse,
                ev(
                    "AggregationEvent",
                    100,
                    action="DELETE",
                    bizStep="unpacking",
                    parentID=pallet,
                    childEPCs=[cartons[0]],
                ),
            ),
            (
                c.warehouse,
                ev(
                    "ObjectEvent",
                    110,
                    action="OBSERVE",
                    bizStep="shipping",
                    disposition="in_transit",
                    epcList=[pallet],
                ),
            ),
            (
                c.platform,
                ev(
                    "ObjectEvent",
                    120,
                    action="OBSERVE",
                    bizStep="retail_selling",
                    disposition="retail_sold",
                    epcList=[tins[0]],
                ),
            ),
        ]
    )
    return {"farm": farm, "product": product, "tins": tins, "cartons": cartons, "pallet": pallet}


def test_journey_follows_containers_while_inside(world: World) -> None:
    c = Chain(world)
    x = build_formula_chain(c)
    first = journey(world.store, x["tins"][0])
    steps = [(s["bizStep"], s["via"]) for s in first["journey"]]
    assert first["code"] == x["tins"][0]
    # Own commissioning, packing into its carton, the carton onto the pallet, the pallet's
    # shipping and receiving, the carton unpacked: after that the pallet's second
    # shipping is not this tin's; then its sale.
    assert ("shipping", x["pallet"]) in steps and ("receiving", x["pallet"]) in steps
    assert steps.count(("shipping", x["pallet"])) == 1
    assert steps[-1] == ("retail_selling", None)
    times = [s["eventTime"] for s in first["journey"]]
    assert times == sorted(times)
    # A tin of the second carton stays on the pallet and sees both shippings.
    last = journey(world.store, x["tins"][5])
    assert [s["bizStep"] for s in last["journey"]].count("shipping") == 2
    # Its lot's story (the transformation that made lot P1) is part of its journey.
    assert any(s["via"] == x["product"] for s in last["journey"])


def test_codes_in_any_form_give_the_same_answer(world: World) -> None:
    c = Chain(world)
    x = build_formula_chain(c)
    tin = x["tins"][2]
    dl = ids.parse_digital_link(tin)
    forms = [
        tin,
        tin.replace("https://id.gs1.org", "https://example.com/some/path"),
        ids.epc_urn(tin, company_prefix_length=7),
        f"https://id.gs1.org/01/{dl.gtin}/10/P1/21/{dl.serial}",
    ]
    answers = [journey(world.store, f) for f in forms]
    assert all(a == answers[0] for a in answers)
    assert answers[0]["journey"]


def test_upstream_downstream_and_recall(world: World) -> None:
    c = Chain(world)
    x = build_formula_chain(c)
    up = upstream(world.store, x["tins"][0])
    codes = {i["code"]: i for i in up["items"]}
    assert codes[x["product"]]["depth"] == 1 and codes[x["product"]]["via"] == "lot"
    assert {f for f in x["farm"]} <= codes.keys()
    assert all(codes[f]["depth"] == 2 for f in x["farm"])
    assert x["cartons"][0] in codes  # packed in
    down = downstream(world.store, x["farm"][1])
    got = {i["code"] for i in down["items"]}
    assert {x["product"], *x["tins"]} <= got
    rec = recall_impact(world.store, x["farm"][0])
    affected = {a["code"]: a for a in rec["affected"]}
    assert set(x["tins"]) <= affected.keys()
    assert affected[x["tins"][0]]["sold"] is True
    assert affected[x["tins"][1]]["sold"] is False
    assert affected[x["tins"][0]]["owner"] == c.platform
    assert rec["counts"]["sold"] == 1
    assert rec["counts"]["affected"] == len(rec["affected"])
    with pytest.raises(Exception, match="depth"):
        upstream(world.store, x["tins"][0], depth=51)


def test_role_refusal_names_party_role_and_stage(world: World) -> None:
    c = Chain(world)
    body = ev("ObjectEvent", 5, action="OBSERVE", bizStep="cbec:releasing", epcList=[item(gtin(9), 1)])
    with pytest.raises(BatchRejected) as e:
        c.append([(c.warehouse, body)])
    err = e.value.errors[0][1]
    assert err.code == "role_not_allowed"
    assert c.warehouse[:14] in err.message and "clearance" in err.message


def test_reindex_rebuilds_identical_projections(world: World) -> None:
    c = Chain(world)
    build_formula_chain(c)
    with world.store.reading() as conn:
        before = tracedb.dump_projections(conn)
    assert before["events"] and before["containment"] and before["lineage"]
    reindex(world.store)
    with world.store.reading() as conn:
        after = tracedb.dump_projections(conn)
    assert after == before


# --- random lineage graphs against a brute-force reference ---------------------------------


def _reach(edges: dict[str, set[str]], start: str, depth: int) -> dict[str, int]:
    seen = {start: 0}
    q = deque([start])
    while q:
        n = q.popleft()
        if seen[n] == depth:
            continue
        for m in edges.get(n, ()):
            if m not in seen:
                seen[m] = seen[n] + 1
                q.append(m)
    seen.pop(start)
    return seen


@settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32), st.integers(3, 14), st.integers(1, 6))
def test_random_transformation_graphs_match_brute_force(
    world: World, seed: int, n_lots: int, depth: int
) -> None:
    rng = random.Random(seed)
    producer, key = world.register(["producer"])
    g = gtin(rng.randrange(10**5))
    # The world outlives one example: names unique to this example keep graphs apart.
    tag = uuid.uuid4().hex[:8]
    lots = [lot(g, f"R{tag}-{i}") for i in range(n_lots)]
    forward: dict[str, set[str]] = {}
    backward: dict[str, set[str]] = {}
    bodies = []
    for k in range(n_lots):
        ins = rng.sample(lots, rng.randint(1, min(3, n_lots)))
        outs = rng.sample(lots, rng.randint(1, 2))  # cycles allowed: they must not loop
        for a in ins:
            for b in outs:
                forward.setdefault(a, set()).add(b)
                backward.setdefault(b, set()).add(a)
        bodies.append(
            ev(
                "TransformationEvent",
                1000 + k,
                bizStep="commissioning",
                inputQuantityList=[{"epcClass": a, "quantity": 1} for a in ins],
                outputQuantityList=[{"epcClass": b, "quantity": 1} for b in outs],
            )
        )
    world.ledger.append_batch(
        [sign_one(kind="event", signer=producer, key=key, body=b, issued=t(0)) for b in bodies]
    )
    for start in lots:
        want_down = _reach(forward, start, depth)
        got_down = {i["code"]: i["depth"] for i in downstream(world.store, start, depth)["items"]}
        assert got_down == want_down
        want_up = _reach(backward, start, depth)
        got_up = {i["code"]: i["depth"] for i in upstream(world.store, start, depth)["items"]}
        assert got_up == want_up


def test_unknown_code_has_an_empty_journey(world: World) -> None:
    got = journey(world.store, item(gtin(77), 1))
    assert got == {"code": item(gtin(77), 1), "journey": []}


def test_producers_recall_only_their_own_products(world: World) -> None:
    c = Chain(world)
    x = build_formula_chain(c)
    rival, rk = world.register(["producer"])
    regulator, gk = world.register(["regulator"])

    def recall(who: str, key: Any, code: str) -> Any:
        body = ev(
            "ObjectEvent", 200, action="OBSERVE", bizStep="cbec:recalling", quantityList=[{"epcClass": code}]
        )
        return world.ledger.append(sign_one(kind="event", signer=who, key=key, body=body, issued=t(0)))

    size = world.ledger.size()
    with pytest.raises(BatchRejected) as e:
        recall(rival, rk, x["product"])
    assert e.value.errors[0][1].code == "not_own_product"
    assert rival in e.value.errors[0][1].message
    assert world.ledger.size() == size
    recall(c.producer, c.pk, x["product"])
    recall(regulator, gk, x["farm"][0])
    steps = [s["stage"] for s in journey(world.store, x["tins"][3])["journey"]]
    assert steps.count("recall") == 1  # the product lot's recall reaches its tins


@pytest.mark.parametrize(
    "code",
    [
        "https://id.gs1.org/01/09506000134352/21/7",
        "https://id.gs1.org/01/09506000134352",
        "https://id.gs1.org/01/09506000134352/22/A%2FB/21/x",
        "https://id.gs1.org/00/106141412345678908",
        "https://id.gs1.org/414/9520123456788",
        "https://example.com/01/09506000134352/21/7",
    ],
)
@pytest.mark.parametrize("lot_name", ["L1", "A/B 7", "批次"])
def test_lot_of_agrees_with_a_full_parse(code: str, lot_name: str) -> None:
    from ledger.epcis.projection import lot_of

    try:
        dl = ids.parse_digital_link(code)
        want = None if dl.gtin is None else ids.DigitalLink("lot", gtin=dl.gtin, lot=lot_name).canonical
    except ids.IdentifierError:
        want = None
    assert lot_of(code, lot_name) == want


_DL_PARTS = [
    "https://id.gs1.org",
    "https://x.example",
    "/01/",
    "/21/",
    "/10/",
    "/00/",
    "/414/",
    "09506000134352",
    "0950600013435",
    "%2F",
    "%",
    "%zz",
    "?17=2601",
    "#",
    "//",
    "[",
    ":",
    "@",
    " ",
    "\u00e9",
    "\u200b",
    "A/B",
    "1" * 30,
]


@settings(max_examples=2000, deadline=None)
@given(
    st.lists(st.sampled_from(_DL_PARTS) | st.text(max_size=4), min_size=1, max_size=9),
    st.sampled_from(["L1", "A/B 7"]),
)
def test_lot_splitting_takes_any_text(parts: list[str], lot_name: str) -> None:
    """split_lot and lot_of read codes the parser refuses as no lot (they catch its
    IdentifierError, and only that): any text, with or without a lot, never raises."""
    from ledger.epcis.projection import lot_of, split_lot

    code = "".join(parts)
    item, lot = split_lot(code)
    assert (item, lot) == (code, None) or (lot is not None and "/10/" in code)
    got = lot_of(code, lot_name)
    assert got is None or got.endswith("/10/" + lot_name.replace("/", "%2F").replace(" ", "%20"))


_CODES = st.one_of(
    st.lists(st.sampled_from(_DL_PARTS) | st.text(max_size=3), min_size=1, max_size=7).map("".join),
    st.sampled_from(
        [
            "https://id.gs1.org/01/09506000134352/10/L1/21/7",
            "https://id.gs1.org/01/09506000134352/21/7",
            "https://id.gs1.org/01/09506000134352/10/L1",
            "https://id.gs1.org/01/09506000134352/21/7/10/L1",
            "https://id.gs1.org/01/09506000134352",
        ]
    ),
)
_CLASSES = st.lists(st.tuples(_CODES, st.none() | st.integers(0, 9), st.none() | st.just("KGM")), max_size=3)


@settings(max_examples=800, deadline=None)
@given(
    st.lists(_CODES, max_size=4),
    st.none() | _CODES,
    st.lists(_CODES, max_size=3),
    _CLASSES,
    st.lists(_CODES, max_size=3),
    st.lists(_CODES, max_size=3),
    _CLASSES,
    _CLASSES,
    st.booleans(),
)
def test_named_codes_is_every_code_split_once_in_event_order(
    epcs: list[str],
    parent: str | None,
    children: list[str],
    classes: list[Any],
    inputs: list[str],
    outputs: list[str],
    input_classes: list[Any],
    output_classes: list[Any],
    io: bool,
) -> None:
    """named_codes against the plain rule: every code through split_lot, first time only."""
    from ledger.epcis.projection import named_codes, split_lot
    from ledger.epcis.stages import EventCodes

    c = EventCodes(
        type="ObjectEvent",
        event_time="2026-11-27T13:05:00+08:00",
        event_time_utc="2026-11-27T05:05:00.000000Z",
        action="OBSERVE",
        biz_step=None,
        disposition=None,
        epcs=tuple(epcs),
        parent=parent,
        children=tuple(children),
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        classes=tuple(classes),
        input_classes=tuple(input_classes),
        output_classes=tuple(output_classes),
        read_point=None,
        biz_location=None,
        biz_transactions=(),
        sources=(),
        destinations=(),
    )
    raw = [*epcs, *([parent] if parent else []), *children, *(x for x, _, _ in classes)]
    if io:
        raw += [*inputs, *outputs, *(x for x, _, _ in input_classes), *(x for x, _, _ in output_classes)]
    want: list[str] = []
    for code in raw:
        key = split_lot(code)[0]
        if key not in want:
            want.append(key)
    assert named_codes(c, io=io) == want


# --- random packing against a brute-force walk ------------------------------------------------

_UNITS = itertools.count(1)


def _walk_reference(
    code: str,
    named: dict[str, set[int]],
    minute: dict[int, int],
    lots: dict[str, set[str]],
    packed: list[list[Any]],
) -> list[tuple[int, str | None]]:
    """The journey by the rule it is defined by, walked in Python over the generator's own
    record of what named what and what was packed where: (seq, via) in time order."""
    via: dict[int, str | None] = {s: None for s in named.get(code, ())}
    for lot_code in sorted(lots.get(code, ())):
        for s in sorted(named.get(lot_code, ())):
            via.setdefault(s, lot_code)

    def inside(child: str, lo: int, hi: int | None, nesting: int, path: set[str]) -> None:
        if nesting >= MAX_NESTING:
            return
        # A container's parents in (parent, packing seq) order.
        for _child, parent, _start_seq, start, end in sorted(
            (r for r in packed if r[0] == child), key=lambda r: (r[1], r[2])
        ):
            if parent in path:
                continue
            lo2 = max(start, lo)
            hi2 = end if hi is None else (hi if end is None else min(end, hi))
            if hi2 is not None and lo2 >= hi2:
                continue
            for s in sorted(named.get(parent, ())):
                if lo2 <= minute[s] and (hi2 is None or minute[s] < hi2):
                    via.setdefault(s, parent)
            inside(parent, lo2, hi2, nesting + 1, path | {parent})

    inside(code, -1, None, 0, {code})
    return [(s, via[s]) for s in sorted(via, key=lambda s: (minute[s], s))]


@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 2**32), st.integers(1, 20), st.integers(1, 5), st.integers(5, 45), st.booleans())
def test_random_packing_journeys_match_brute_force(
    world: World, seed: int, n_units: int, n_items: int, n_events: int, tower: bool
) -> None:
    """Packing, unpacking and repacking at random times (an unpack may be timed before its
    pack), cycles, towers of containers deeper than the nesting bound, events naming
    several containers at once and lots: every code's journey, steps and ``via``, is the
    brute-force walk's."""
    rng = random.Random(seed)
    who, key = world.register(["producer", "warehouse", "logistics"])
    tag = uuid.uuid4().hex[:8]  # the world outlives one example
    g = gtin(rng.randrange(10**5))
    items = [item(g, int(tag, 16) * 10 + i) for i in range(n_items)]
    units = [unit(next(_UNITS)) for _ in range(n_units)]
    lot_names = [f"L{tag}{k}" for k in range(2)]
    named: dict[str, set[int]] = {}
    minute: dict[int, int] = {}
    lots: dict[str, set[str]] = {}
    packed: list[list[Any]] = []  # [child, parent, start seq, start minute, end minute]
    bodies: list[dict[str, Any]] = []
    seq = world.ledger.size()

    def add(body: dict[str, Any], codes: list[str], at: int) -> None:
        nonlocal seq
        bodies.append(body)
        minute[seq] = at
        for c in codes:
            named.setdefault(c, set()).add(seq)
        seq += 1

    def pack(parent: str, children: list[str], at: int) -> None:
        for c in children:
            packed.append([c, parent, seq, at, None])
        add(
            ev("AggregationEvent", at, action="ADD", bizStep="packing", parentID=parent, childEPCs=children),
            [parent, *children],
            at,
        )

    for it in items:  # commissioned, perhaps into a lot
        lot_name = rng.choice([None, *lot_names])
        at = rng.randrange(2000)
        body = ev("ObjectEvent", at, action="ADD", bizStep="commissioning", epcList=[it])
        if lot_name is not None:
            body["ilmd"] = {"cbvmda:lotNumber": lot_name}
            lots.setdefault(it, set()).add(lot(g, lot_name))
        add(body, [it], at)
    for lot_name in lot_names:
        at = rng.randrange(2000)
        add(
            ev(
                "ObjectEvent",
                at,
                action="OBSERVE",
                bizStep="inspecting",
                quantityList=[{"epcClass": lot(g, lot_name), "quantity": 1}],
            ),
            [lot(g, lot_name)],
            at,
        )
    if tower:  # a tower of units, each inside the next, deeper than the nesting bound
        units += [unit(next(_UNITS)) for _ in range(MAX_NESTING + 2)]
        for a, b in itertools.pairwise(units):
            pack(b, [a], rng.randrange(100))
        for k, u in enumerate(units):
            add(ev("ObjectEvent", 100 + k, action="OBSERVE", bizStep="shipping", epcList=[u]), [u], 100 + k)
    for _ in range(n_events):
        at = rng.randrange(2000)
        op = rng.random()
        if op < 0.45:
            parent = rng.choice(units)
            pool = [c for c in items + units if c != parent]
            pack(parent, rng.sample(pool, rng.randint(1, min(3, len(pool)))), at)
        elif op < 0.65 and packed:
            c, parent = rng.choice(packed)[:2]
            for r in packed:
                if r[0] == c and r[1] == parent and r[4] is None:
                    r[4] = at
            add(
                ev(
                    "AggregationEvent",
                    at,
                    action="DELETE",
                    bizStep="unpacking",
                    parentID=parent,
                    childEPCs=[c],
                ),
                [parent, c],
                at,
            )
        else:
            seen = rng.sample(units + items, rng.randint(1, min(3, len(units) + n_items)))
            add(ev("ObjectEvent", at, action="OBSERVE", bizStep="shipping", epcList=seen), seen, at)
    world.ledger.append_batch(
        [sign_one(kind="event", signer=who, key=key, body=b, issued=t(0)) for b in bodies]
    )
    for code in items + units + [lot(g, n) for n in lot_names]:
        got = [(s["seq"], s["via"]) for s in journey(world.store, code)["journey"]]
        assert got == _walk_reference(code, named, minute, lots, packed), code
