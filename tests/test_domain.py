"""Event meaning: stage classification, who may sign each stage, and the codes an event names."""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from ledger.core import ids
from ledger.core.errors import IdentifierError, MalformedInput, NotAuthorised
from ledger.core.registry import ROLES
from ledger.epcis import stages as domain
from ledger.epcis.stages import (
    ROLE_PERMISSIONS,
    ROLE_STAGES,
    STAGE_ACTIVITIES,
    STAGES,
    Classified,
    authorise_event,
    classify,
    event_codes,
    normalise_term,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "epcis"
PARTY = "uscc:91310110666007217T"
TIME = "2026-11-27T13:05:00+08:00"


def fixture_events(name: str) -> list[dict[str, Any]]:
    doc = json.loads((FIXTURES / name).read_text())
    body = doc["epcisBody"]
    if "eventList" in body:
        events: list[dict[str, Any]] = body["eventList"]
    else:
        events = body["queryResults"]["resultsBody"]["eventList"]
    return events


def all_fixture_events() -> Iterator[tuple[str, int, dict[str, Any]]]:
    for path in sorted(FIXTURES.glob("*.jsonld")):
        for i, event in enumerate(fixture_events(path.name)):
            yield path.name, i, event


def ev(event_type: str = "ObjectEvent", **fields: Any) -> dict[str, Any]:
    """A minimal event body; ``bts`` is a shorthand for bizTransactionList types."""
    body: dict[str, Any] = {"type": event_type, "eventTime": TIME, "eventTimeZoneOffset": "+08:00"}
    if event_type in ("ObjectEvent", "AggregationEvent", "TransactionEvent", "AssociationEvent"):
        body["action"] = fields.pop("action", "OBSERVE")
    bts = fields.pop("bts", ())
    if bts:
        body["bizTransactionList"] = [
            {"type": t, "bizTransaction": f"urn:example:{t.split(':')[-1]}:{i}"} for i, t in enumerate(bts)
        ]
    body.update(fields)
    return body


# --- normalise_term ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("shipping", "shipping"),
        ("https://ref.gs1.org/cbv/BizStep-shipping", "shipping"),
        ("urn:epcglobal:cbv:bizstep:shipping", "shipping"),
        ("https://ref.gs1.org/cbv/Disp-in_transit", "in_transit"),
        ("urn:epcglobal:cbv:disp:in_transit", "in_transit"),
        ("https://ref.gs1.org/cbv/BTT-po", "po"),
        ("urn:epcglobal:cbv:btt:po", "po"),
        ("https://ref.gs1.org/cbv/SDT-owning_party", "owning_party"),
        ("urn:epcglobal:cbv:sdt:owning_party", "owning_party"),
        ("https://ref.gs1.org/cbv/ER-incorrect_data", "incorrect_data"),
        ("cbec:releasing", "cbec:releasing"),
        ("https://suyuan.example/cbec#releasing", "cbec:releasing"),
        ("https://suyuan.example/cbec#payment", "cbec:payment"),
        # Identifiers and other vocabularies are not words to strip.
        ("urn:epcglobal:cbv:bt:0614141073467:1152", "urn:epcglobal:cbv:bt:0614141073467:1152"),
        ("urn:gs1:epcisapp:rail:btt:passage", "urn:gs1:epcisapp:rail:btt:passage"),
        ("http://epcis.example.org/hc/bizstep/x", "http://epcis.example.org/hc/bizstep/x"),
        ("https://ref.gs1.org/cbv/BizStep-", "https://ref.gs1.org/cbv/BizStep-"),
        ("https://suyuan.example/cbec#", "https://suyuan.example/cbec#"),
        ("", ""),
    ],
)
def test_normalise_term(given: str, expected: str) -> None:
    assert normalise_term(given) == expected


# --- classify: the GS1 examples ----------------------------------------------------------

FIXTURE_STAGES = {
    # assembling a returnable asset from its parts is a production step
    ("AssociationEvent-a.jsonld", 0): ("production", "assembling"),
    # an error declaration does not change what the declared event was: commissioning
    ("ErrorDeclarationAndCorrectiveEvent.jsonld", 0): ("production", "commissioning"),
    ("ErrorDeclarationAndCorrectiveEvent.jsonld", 1): ("production", "commissioning"),
    # a bizStep of another vocabulary (healthcare) and an untyped business transaction say
    # nothing here, so the TransactionEvent type decides
    ("Example-TransactionEvents-2020_07_03y.jsonld", 0): ("transaction", "transaction"),
    # a rail passage document is no CBEC document; transporting is logistics
    ("Example-TransactionEvents-2020_07_03y.jsonld", 1): ("logistics", "transporting"),
    # a purchase order (CBV po) does not decide the stage as the three CBEC documents do
    ("Example_9.6.1-ObjectEvent.jsonld", 0): ("logistics", "shipping"),
    ("Example_9.6.1-ObjectEvent.jsonld", 1): ("logistics", "receiving"),
    ("Example_9.6.2-ObjectEvent.jsonld", 0): ("logistics", "receiving"),
    # an AggregationEvent with a bizStep follows the bizStep, not the packing rule
    ("Example_9.6.3-AggregationEvent.jsonld", 0): ("logistics", "receiving"),
    # transforming inputs into outputs under commissioning is production
    ("Example_9.6.4-TransformationEvent.jsonld", 0): ("production", "commissioning"),
    ("Example_9.6.4-TransformationEventWithDigitalLink.jsonld", 0): ("production", "commissioning"),
    # inspecting with sensors at the maker's site: a production step in CBV terms
    ("SensorDataExample1.jsonld", 0): ("production", "inspecting"),
    # receiving with po and pedigree documents: logistics; the disposition is no recall
    ("object_event_all_possible_fields.jsonld", 0): ("logistics", "receiving"),
}


def test_every_fixture_event_has_an_expectation() -> None:
    assert {(name, i) for name, i, _ in all_fixture_events()} == set(FIXTURE_STAGES)


@pytest.mark.parametrize(("name", "index"), sorted(FIXTURE_STAGES))
def test_classify_fixture_events(name: str, index: int) -> None:
    event = fixture_events(name)[index]
    expected = Classified(*FIXTURE_STAGES[name, index])
    assert classify(event) == expected
    # None of the examples uses a handling step, so the signer's roles change nothing.
    assert classify(event, signer_roles=("producer",)) == expected
    assert classify(event, signer_roles=("logistics",)) == expected


# --- classify: a table of cases, CBEC and CBV --------------------------------------------

DECL = "cbec:declaration"
CASES: list[tuple[str, dict[str, Any], tuple[str, ...], tuple[str, str], bool]] = [
    # (what, body, signer roles, (stage, activity), may those roles sign it)
    # A 1210 bonded import of infant formula, start to end.
    ("producer commissions tins", ev(action="ADD", bizStep="commissioning"),
     ("producer",), ("production", "commissioning"), True),
    ("producer packs tins into a case", ev("AggregationEvent", action="ADD"),
     ("producer",), ("production", "packing"), True),
    ("brand owner packs at its own site", ev(bizStep="packing"),
     ("brand_owner",), ("production", "packing"), True),
    ("producer loads its truck", ev(bizStep="loading"),
     ("producer",), ("production", "loading"), True),
    ("carrier ships to the bonded zone", ev(bizStep="shipping", disposition="in_transit"),
     ("logistics",), ("logistics", "shipping"), True),
    ("bonded warehouse receives", ev(bizStep="receiving", disposition="in_progress"),
     ("warehouse",), ("logistics", "receiving"), True),
    ("bonded warehouse stores", ev(bizStep="storing"),
     ("warehouse",), ("logistics", "storing"), True),
    ("warehouse reports cold-store temperature", ev(bizStep="sensor_reporting"),
     ("warehouse",), ("logistics", "sensor_reporting"), True),
    ("platform takes the order", ev("TransactionEvent", action="ADD", bts=["cbec:order"]),
     ("platform",), ("transaction", "order"), True),
    ("merchant sells at retail", ev(bizStep="retail_selling"),
     ("merchant",), ("transaction", "retail_selling"), True),
    ("payment institution pays the order",
     ev("TransactionEvent", action="ADD", bts=["cbec:payment", "cbec:order"]),
     ("payment",), ("payment", "payment"), True),
    ("carrier issues the waybill for the order",
     ev(bizStep="staging_outbound", bts=["cbec:order", "cbec:waybill"]),
     ("logistics",), ("logistics", "waybill"), True),
    ("broker declares under 1210, citing all three documents",
     ev(bizStep="cbec:declaring", bts=[DECL, "cbec:order", "cbec:payment", "cbec:waybill"],
        **{"cbec:customsProcedure": "1210"}),
     ("customs_broker",), ("clearance", "declaration"), True),
    ("broker files a declaration document without a bizStep",
     ev("TransactionEvent", action="ADD", bts=[DECL]),
     ("customs_broker",), ("clearance", "declaration"), True),
    ("customs inspects the declared goods", ev(bizStep="cbec:inspecting_customs", bts=[DECL]),
     ("customs",), ("clearance", "inspection"), True),
    ("customs holds them", ev(bizStep="cbec:holding_customs", bts=[DECL]),
     ("customs",), ("clearance", "hold"), True),
    ("customs releases them", ev(bizStep="cbec:releasing", bts=[DECL]),
     ("customs",), ("clearance", "release"), True),
    ("warehouse unpacks the case", ev("AggregationEvent", action="DELETE"),
     ("warehouse",), ("logistics", "unpacking"), True),
    ("warehouse picks the parcel", ev(bizStep="picking"),
     ("warehouse",), ("logistics", "picking"), True),
    ("carrier departs", ev(bizStep="departing"),
     ("logistics",), ("logistics", "departing"), True),
    ("carrier delivers against the waybill",
     ev(bizStep="arriving", bts=["cbec:waybill", "cbec:order"]),
     ("logistics",), ("logistics", "waybill"), True),
    ("consumer evaluation posted by the platform", ev(bizStep="cbec:evaluating",
                                                      bts=["cbec:order"]),
     ("platform",), ("evaluation", "evaluation"), True),
    ("merchant posts an evaluation", ev(bizStep="cbec:evaluating"),
     ("merchant",), ("evaluation", "evaluation"), True),
    ("regulator recalls the lot", ev(bizStep="cbec:recalling", disposition="recalled"),
     ("regulator",), ("recall", "recall"), True),
    ("producer recalls its product", ev(bizStep="cbec:recalling"),
     ("producer",), ("recall", "recall"), True),
    ("an event saying only 'recalled' is a recall", ev(disposition="recalled"),
     ("regulator",), ("recall", "recall"), True),
    ("carrying recalled goods back is logistics",
     ev(bizStep="shipping", disposition="recalled"),
     ("logistics",), ("logistics", "shipping"), True),
    # Refusals the rules imply.
    ("customs may not declare", ev(bizStep="cbec:declaring"),
     ("customs",), ("clearance", "declaration"), False),
    ("a broker may not release", ev(bizStep="cbec:releasing"),
     ("customs_broker",), ("clearance", "release"), False),
    ("a merchant may not issue a payment", ev("TransactionEvent", bts=["cbec:payment"]),
     ("merchant",), ("payment", "payment"), False),
    ("a merchant's shipping event naming a payment is still a payment",
     ev(bizStep="shipping", bts=["cbec:payment"]),
     ("merchant",), ("payment", "payment"), False),
    ("a carrier citing the declaration files a declaration",
     ev(bizStep="shipping", bts=[DECL, "cbec:waybill"]),
     ("logistics",), ("clearance", "declaration"), False),
    ("a platform packing is logistics", ev("AggregationEvent", action="ADD"),
     ("platform",), ("logistics", "packing"), False),
    ("a warehouse may not commission", ev(bizStep="commissioning"),
     ("warehouse",), ("production", "commissioning"), False),
    ("a regulator may not evaluate", ev(bizStep="cbec:evaluating"),
     ("regulator",), ("evaluation", "evaluation"), False),
    ("a registrar signs no event", ev(bizStep="cbec:recalling"),
     ("registrar",), ("recall", "recall"), False),
    ("a payment institution may not ship", ev(bizStep="shipping"),
     ("payment",), ("logistics", "shipping"), False),
    # Precedence among documents: the latest one wins.
    ("a declaration beats a payment", ev(bts=["cbec:payment", DECL]),
     ("customs_broker",), ("clearance", "declaration"), True),
    ("a waybill beats the order it cites", ev(bts=["cbec:order", "cbec:waybill"]),
     ("warehouse",), ("logistics", "waybill"), True),
    ("a document beats an ordinary bizStep", ev(bizStep="commissioning", bts=["cbec:order"]),
     ("producer",), ("transaction", "order"), False),
    ("a CBEC bizStep beats the documents it cites",
     ev(bizStep="cbec:declaring", bts=["cbec:payment"]),
     ("customs_broker",), ("clearance", "declaration"), True),
    # Every spelling of a word is the same word.
    ("CBEC namespace URI", ev(bizStep="https://suyuan.example/cbec#releasing"),
     ("customs",), ("clearance", "release"), True),
    ("CBV URN bizStep", ev(bizStep="urn:epcglobal:cbv:bizstep:shipping"),
     ("logistics",), ("logistics", "shipping"), True),
    ("CBV web URI bizStep", ev(bizStep="https://ref.gs1.org/cbv/BizStep-commissioning"),
     ("producer",), ("production", "commissioning"), True),
    ("CBEC namespace URI document type",
     ev("TransactionEvent", bts=["https://suyuan.example/cbec#payment"]),
     ("payment",), ("payment", "payment"), True),
    ("CBV web URI disposition", ev(disposition="https://ref.gs1.org/cbv/Disp-recalled"),
     ("producer",), ("recall", "recall"), True),
    ("a CBV document type decides nothing", ev(bizStep="receiving",
                                               bts=["urn:epcglobal:cbv:btt:po"]),
     ("warehouse",), ("logistics", "receiving"), True),
    # Events without a stage-bearing bizStep: by type.
    ("TransformationEvent without a bizStep", ev("TransformationEvent"),
     ("producer",), ("production", "transformation"), True),
    ("TransactionEvent without a bizStep", ev("TransactionEvent"),
     ("merchant",), ("transaction", "transaction"), True),
    ("AggregationEvent OBSERVE by a warehouse", ev("AggregationEvent", action="OBSERVE"),
     ("warehouse",), ("logistics", "aggregation"), True),
    ("AssociationEvent without a bizStep", ev("AssociationEvent"),
     ("producer",), ("production", "other"), True),
    ("ObjectEvent with bizStep other", ev(bizStep="other"),
     ("producer",), ("production", "other"), True),
    ("ObjectEvent with a foreign bizStep", ev(bizStep="https://example.com/steps/weigh"),
     ("logistics",), ("production", "other"), False),
    # Handling steps go with the signer; other production steps do not.
    ("a carrier loads", ev(bizStep="loading"), ("logistics",), ("logistics", "loading"), True),
    ("a producer that is also a carrier packs on site", ev(bizStep="packing"),
     ("logistics", "producer"), ("production", "packing"), True),
    ("decommissioning is production", ev(bizStep="decommissioning"),
     ("brand_owner",), ("production", "decommissioning"), True),
    ("destroying is production", ev(bizStep="destroying", disposition="destroyed"),
     ("producer",), ("production", "destroying"), True),
    ("dispensing is a sale", ev(bizStep="dispensing"),
     ("merchant",), ("transaction", "dispensing"), True),
]  # fmt: skip


def test_case_table_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({what for what, *_ in CASES}) == len(CASES)


@pytest.mark.parametrize(
    ("body", "roles", "expected", "allowed"),
    [pytest.param(*case[1:], id=case[0]) for case in CASES],
)
def test_classify_table(
    body: dict[str, Any], roles: tuple[str, ...], expected: tuple[str, str], allowed: bool
) -> None:
    classified = classify(body, signer_roles=roles)
    assert classified == Classified(*expected)
    assert classified.activity in STAGE_ACTIVITIES[classified.stage]
    if allowed:
        authorise_event(party=PARTY, roles=roles, classified=classified)
    else:
        with pytest.raises(NotAuthorised):
            authorise_event(party=PARTY, roles=roles, classified=classified)


def test_every_cbv_bizstep_has_a_stage() -> None:
    # The CBV 2.0 bizStep words, as the schema lists them; only `other` carries no stage.
    words = (
        "accepting arriving assembling collecting commissioning consigning "
        "creating_class_instance cycle_counting decommissioning departing destroying "
        "disassembling dispensing encoding entering_exiting holding inspecting installing "
        "killing loading packing picking receiving removing repackaging repairing replacing "
        "reserving retail_selling sampling sensor_reporting shipping staging_outbound "
        "stock_taking stocking storing transporting unloading unpacking void_shipping"
    ).split()
    for word in words:
        for event_type in domain.EVENT_TYPES:
            c = classify(ev(event_type, bizStep=word))
            assert c.activity == word, (word, event_type)
            assert word in STAGE_ACTIVITIES[c.stage]


def test_classify_refuses_what_it_cannot_read() -> None:
    with pytest.raises(MalformedInput, match="event type"):
        classify({"type": "EPCISDocument"})
    with pytest.raises(MalformedInput, match="bizStep"):
        classify(ev(bizStep=["shipping"]))
    with pytest.raises(MalformedInput, match="bizTransactionList"):
        classify(ev(bizTransactionList=["cbec:order"]))
    with pytest.raises(MalformedInput, match="bizTransactionList type"):
        classify(ev(bizTransactionList=[{"type": 1, "bizTransaction": "urn:x:1"}]))


# --- Who may sign what -------------------------------------------------------------------

# Written out by stage, independently of ROLE_PERMISSIONS: who may sign each (stage,
# activity); "*" stands for every activity of the stage.
MAY_SIGN: dict[str, dict[str, set[str]]] = {
    "production": {"*": {"producer", "brand_owner"}},
    "transaction": {"*": {"platform", "merchant"}},
    "clearance": {
        "declaration": {"customs_broker"},
        "inspection": {"customs"},
        "release": {"customs"},
        "hold": {"customs"},
        "return": {"customs"},
        "receipt": {"customs"},
    },
    "logistics": {"*": {"warehouse", "logistics"}},
    "payment": {"*": {"payment"}},
    "evaluation": {"*": {"platform", "merchant"}},
    "recall": {"*": {"regulator", "producer", "brand_owner"}},
}


def expected_allowed(role: str, stage: str, activity: str) -> bool:
    rules = MAY_SIGN.get(stage, {})
    return role in rules.get("*", set()) | rules.get(activity, set())


def test_role_tables_cover_exactly_the_registry_roles() -> None:
    assert set(ROLE_PERMISSIONS) == set(ROLES)
    assert set(ROLE_STAGES) == set(ROLES)
    assert set(STAGE_ACTIVITIES) == set(STAGES)


def test_role_tables_are_read_only() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS["registrar"] = frozenset({("recall", None)})  # type: ignore[index]


def test_role_stages() -> None:
    assert ROLE_STAGES == {
        "producer": {"production", "recall"},
        "brand_owner": {"production", "recall"},
        "platform": {"transaction", "evaluation"},
        "merchant": {"transaction", "evaluation"},
        "warehouse": {"logistics"},
        "logistics": {"logistics"},
        "customs_broker": {"clearance"},
        "customs": {"clearance"},
        "payment": {"payment"},
        "regulator": {"recall"},
        "registrar": set(),
    }


def test_authorise_matrix() -> None:
    activities = sorted(set().union(*STAGE_ACTIVITIES.values()) | {"unheard_of"})
    stages = [*STAGES, "smuggling"]
    checked = allowed = 0
    for role, stage, activity in itertools.product([*ROLES, "stranger"], stages, activities):
        classified = Classified(stage, activity)
        checked += 1
        if expected_allowed(role, stage, activity):
            allowed += 1
            authorise_event(party=PARTY, roles=[role], classified=classified)
        else:
            with pytest.raises(NotAuthorised) as e:
                authorise_event(party=PARTY, roles=[role], classified=classified)
            assert e.value.code == "role_not_allowed"
            assert e.value.message.startswith(f"{PARTY} (roles: {role}) may not sign {stage} ")
    assert checked == (len(ROLES) + 1) * len(stages) * len(activities)
    assert allowed > 0


def test_authorise_any_of_several_roles() -> None:
    release = Classified("clearance", "release")
    authorise_event(party=PARTY, roles=("producer", "customs"), classified=release)
    with pytest.raises(NotAuthorised):
        authorise_event(party=PARTY, roles=("producer", "customs_broker"), classified=release)
    with pytest.raises(NotAuthorised):
        authorise_event(party=PARTY, roles=(), classified=Classified("production", "packing"))


def test_refusal_messages() -> None:
    def message(roles: tuple[str, ...], stage: str, activity: str) -> str:
        with pytest.raises(NotAuthorised) as e:
            authorise_event(party=PARTY, roles=roles, classified=Classified(stage, activity))
        assert e.value.code == "role_not_allowed"
        return e.value.message

    assert message(("producer",), "clearance", "release") == (
        f"{PARTY} (roles: producer) may not sign clearance (release): that activity belongs to customs"
    )
    assert message(("platform", "merchant"), "logistics", "shipping") == (
        f"{PARTY} (roles: platform, merchant) may not sign logistics (shipping): "
        "that stage belongs to warehouse or logistics"
    )
    assert message((), "recall", "recall") == (
        f"{PARTY} (roles: none) may not sign recall (recall): "
        "that stage belongs to producer or brand_owner or regulator"
    )
    assert message(("customs",), "smuggling", "x").endswith("no role may sign it")


# --- event_codes -------------------------------------------------------------------------


def test_event_codes_object_event() -> None:
    codes = event_codes(fixture_events("Example_9.6.1-ObjectEvent.jsonld")[0])
    assert codes.type == "ObjectEvent"
    assert codes.action == "OBSERVE"
    assert codes.biz_step == "shipping"
    assert codes.disposition == "in_transit"
    assert codes.event_time == "2005-04-03T20:33:31.116000-06:00"
    assert codes.event_time_utc == "2005-04-04T02:33:31.116000Z"
    assert codes.epcs == (
        "https://id.gs1.org/01/10614141073464/21/2017",
        "https://id.gs1.org/01/10614141073464/21/2018",
    )
    assert codes.read_point == "https://id.gs1.org/414/0614141073467/254/1234"
    assert codes.biz_location is None
    assert codes.biz_transactions == (("po", "http://transaction.acme.com/po/12345678"),)
    assert codes.parent is None
    assert codes.children == codes.inputs == codes.outputs == ()
    assert codes.classes == codes.input_classes == codes.output_classes == ()
    assert codes.sources == codes.destinations == ()


def test_event_codes_aggregation() -> None:
    codes = event_codes(fixture_events("Example_9.6.3-AggregationEvent.jsonld")[0])
    assert codes.parent == "https://id.gs1.org/00/106141412345678908"
    assert codes.children == (
        "https://id.gs1.org/01/10614141073464/21/2017",
        "https://id.gs1.org/01/10614141073464/21/2018",
    )
    # childQuantityList: a GTIN pattern (every item of the GTIN) and a lot, quantities kept.
    assert codes.classes == (
        ("https://id.gs1.org/01/04012345987652", 10, None),
        ("https://id.gs1.org/01/04012345123456/10/998877", 200.5, "KGM"),
    )
    assert codes.biz_location == "https://id.gs1.org/414/0614141008889"


def test_event_codes_transformation_same_in_urn_and_digital_link() -> None:
    urn = event_codes(fixture_events("Example_9.6.4-TransformationEvent.jsonld")[0])
    dl = event_codes(fixture_events("Example_9.6.4-TransformationEventWithDigitalLink.jsonld")[0])
    assert urn == dl
    assert urn.action is None
    assert urn.inputs == (
        "https://id.gs1.org/01/04012345111224/21/25",
        "https://id.gs1.org/01/04000001654321/21/99886655",
    )
    assert urn.input_classes == (
        ("https://id.gs1.org/01/04012345111118/10/4444", 10, "KGM"),
        ("https://id.gs1.org/01/00614141777778/10/987", 30, None),
        ("https://id.gs1.org/01/04012345666663", 220, None),
    )
    assert urn.outputs[0] == "https://id.gs1.org/01/04012345778892/21/25"
    assert len(urn.outputs) == 4
    assert urn.event_time_utc == "2013-10-31T14:58:56.591000Z"


def test_event_codes_sources_destinations_and_documents() -> None:
    codes = event_codes(fixture_events("object_event_all_possible_fields.jsonld")[0])
    assert codes.sources == (
        ("location", "https://id.gs1.org/414/4012345002256"),
        ("possessing_party", "https://id.gs1.org/417/4012345002256"),
        ("owning_party", "https://id.gs1.org/417/4012345002256"),
    )
    assert codes.destinations[2] == ("owning_party", "https://id.gs1.org/417/0614141007776")
    # Documents named by GS1 keys (GDTI, GSRN) are indexed by their Digital Links too.
    assert codes.biz_transactions == (
        ("po", "https://id.gs1.org/253/06141410000121618034"),
        ("pedigree", "https://id.gs1.org/8018/061414100000102534"),
    )
    assert codes.classes == (("https://id.gs1.org/01/04012345123456/10/998877", 200, "KGM"),)


def test_event_codes_untyped_and_foreign_documents() -> None:
    first, second = (event_codes(e) for e in fixture_events("Example-TransactionEvents-2020_07_03y.jsonld"))
    assert first.biz_transactions == (("", "https://id.gs1.org/253/95252084000140003555480001000"),)
    assert first.biz_step == "http://epcis.example.org/hc/bizstep/summarising_discharge"
    assert second.biz_transactions == (
        (
            "urn:gs1:epcisapp:rail:btt:passage",
            "http://transaction.examplerail.com/passage/xyz12345",
        ),
    )
    assert second.epcs == ("https://id.gs1.org/8004/952005385w2",)


def test_event_codes_normalise_words_and_cbec_documents() -> None:
    body = ev(
        bizStep="https://suyuan.example/cbec#releasing",
        disposition="urn:epcglobal:cbv:disp:in_progress",
        epcList=["https://example.com/shop/01/10614141073464/21/2017"],
        bizTransactionList=[
            {"type": "https://suyuan.example/cbec#declaration", "bizTransaction": "urn:x:d:1"},
            {"type": "https://ref.gs1.org/cbv/BTT-po", "bizTransaction": "urn:x:po:1"},
        ],
        destinationList=[
            {
                "type": "urn:epcglobal:cbv:sdt:owning_party",
                "destination": "urn:epc:id:pgln:0614141.00777",
            }
        ],
    )
    codes = event_codes(body)
    assert codes.biz_step == "cbec:releasing"
    assert codes.disposition == "in_progress"
    assert codes.epcs == ("https://id.gs1.org/01/10614141073464/21/2017",)
    assert codes.biz_transactions == (("cbec:declaration", "urn:x:d:1"), ("po", "urn:x:po:1"))
    assert codes.destinations == (("owning_party", "https://id.gs1.org/417/0614141007776"),)


def _raw_codes(body: Mapping[str, Any]) -> list[str]:
    """Every identifier of a body, found independently of event_codes, in its order."""
    out: list[str] = []
    for field in ("epcList", "childEPCs", "inputEPCList", "outputEPCList"):
        out += body.get(field, [])
    if "parentID" in body:
        out.append(body["parentID"])
    for field in ("quantityList", "childQuantityList", "inputQuantityList", "outputQuantityList"):
        out += [q["epcClass"] for q in body.get(field, [])]
    for field in ("readPoint", "bizLocation"):
        if field in body:
            out.append(body[field]["id"])
    out += [b["bizTransaction"] for b in body.get("bizTransactionList", [])]
    out += [s["source"] for s in body.get("sourceList", [])]
    out += [d["destination"] for d in body.get("destinationList", [])]
    return out


@pytest.mark.parametrize(("name", "index"), sorted(FIXTURE_STAGES))
def test_event_codes_are_index_keys(name: str, index: int) -> None:
    body = fixture_events(name)[index]
    c = event_codes(body)
    found = [*c.epcs, *c.children, *c.inputs, *c.outputs]
    found += [c.parent] if c.parent is not None else []
    found += [code for code, _, _ in (*c.classes, *c.input_classes, *c.output_classes)]
    found += [x for x in (c.read_point, c.biz_location) if x is not None]
    found += [i for _, i in (*c.biz_transactions, *c.sources, *c.destinations)]
    assert sorted(found) == sorted(ids.index_key(raw) for raw in _raw_codes(body))


def test_item_fast_path_agrees_with_ids() -> None:
    # event_codes converts plain item URNs and canonical item links on a short path; it must
    # give what ids.index_key gives, and refuse what it refuses.
    rng = random.Random(20261127)
    alphabet = string.ascii_letters + string.digits
    serials = ["0", "A", "x" * 20, "x" * 21, "a-b", "a%2Fb", "a/b", "ü", "12.3", "7" * 20]
    serials += ["".join(rng.choices(alphabet, k=rng.randint(1, 22))) for _ in range(300)]
    companies = [
        ("0614141", "107346"),
        ("0614141", "107347"),
        ("061414", "1073460"),
        ("4012345", "011122"),
        ("012345678901", "0"),
        ("0614141", "10734"),
    ]
    gtins = ["10614141073464", "10614141073465", "04012345111224", "0401234511122"]
    codes = [f"urn:epc:id:sgtin:{c}.{r}.{s}" for c, r in companies for s in serials]
    codes += [f"URN:EPC:ID:SGTIN:0614141.107346.{s}" for s in serials[:5]]
    codes += [f"https://id.gs1.org/01/{g}/21/{s}" for g in gtins for s in serials]
    for code in codes:
        body = ev(epcList=[code])
        try:
            expected = ids.index_key(code)
        except IdentifierError:
            with pytest.raises(IdentifierError, match="epcList"):
                event_codes(body)
            continue
        assert event_codes(body).epcs == (expected,), code


def test_event_codes_refusals_name_the_field() -> None:
    with pytest.raises(IdentifierError) as e:
        event_codes(
            ev(
                epcList=[
                    "urn:epc:id:sgtin:0614141.107346.2017",
                    "https://id.gs1.org/01/10614141073465/21/1",
                ]
            )
        )
    assert e.value.message.startswith("epcList: GTIN 10614141073465 has check digit 5")
    with pytest.raises(IdentifierError, match="^readPoint id: "):
        event_codes(ev(readPoint={"id": "https://id.gs1.org/414/0614141073468"}))
    with pytest.raises(MalformedInput, match="quantity must be a number"):
        event_codes(ev(quantityList=[{"epcClass": "https://id.gs1.org/01/04012345666663", "quantity": True}]))
    with pytest.raises(MalformedInput, match="epcList must be a list"):
        event_codes(ev(epcList="urn:epc:id:sgtin:0614141.107346.2017"))
    with pytest.raises(MalformedInput, match="identifier string"):
        event_codes(ev(parentID=7))
    with pytest.raises(MalformedInput, match="event type"):
        event_codes({"type": "Event", "eventTime": TIME})


@pytest.mark.parametrize(
    ("given", "utc"),
    [
        ("2026-11-27T13:05:00+08:00", "2026-11-27T05:05:00.000000Z"),
        ("2026-11-27T05:05:00Z", "2026-11-27T05:05:00.000000Z"),
        ("2026-11-27T05:05:00.5Z", "2026-11-27T05:05:00.500000Z"),
        ("2026-11-27T05:05:00.123456789+00:00", "2026-11-27T05:05:00.123456Z"),
        ("2026-01-01T01:00:00.000+02:00", "2025-12-31T23:00:00.000000Z"),
        ("0999-06-01T00:00:00Z", "0999-06-01T00:00:00.000000Z"),
    ],
)
def test_event_time_utc(given: str, utc: str) -> None:
    assert event_codes(ev(eventTime=given)).event_time_utc == utc
    assert event_codes(ev(eventTime=given)).event_time == given


@pytest.mark.parametrize(
    ("given", "problem"),
    [
        ("2026-11-27T13:05:00", "no UTC offset"),
        ("27/11/2026", "not a date-time"),
        ("0001-01-01T00:00:00+01:00", "outside the years"),
        (None, "needs eventTime"),
        (1764219900, "needs eventTime"),
    ],
)
def test_event_time_refusals(given: object, problem: str) -> None:
    body = ev()
    if given is None:
        del body["eventTime"]
    else:
        body["eventTime"] = given
    with pytest.raises(MalformedInput, match=problem):
        event_codes(body)


def test_event_codes_is_frozen() -> None:
    codes = event_codes(ev())
    with pytest.raises(AttributeError):
        codes.type = "AggregationEvent"  # type: ignore[misc]


def test_event_times_are_read_alike_long_or_short_and_only_short_ones_cached() -> None:
    from ledger.epcis import stages

    body = {"type": "ObjectEvent", "action": "OBSERVE", "epcList": []}
    short = event_codes({**body, "eventTime": "2026-11-27T13:05:00.123456+08:00"})
    before = stages._cached_utc.cache_info().currsize
    long = event_codes({**body, "eventTime": "2026-11-27T13:05:00.123456" + "9" * 500 + "+08:00"})
    assert long.event_time_utc == short.event_time_utc == "2026-11-27T05:05:00.123456Z"
    assert stages._cached_utc.cache_info().currsize == before
    for _ in range(2):  # a refusal is never cached: it raises each time
        with pytest.raises(MalformedInput, match="no UTC offset"):
            event_codes({**body, "eventTime": "2026-11-27T13:05:00"})
