"""Event body schema: GS1's own examples and ours validate; bad bodies are refused with a
sentence naming the JSON path; the fast validator and jsonschema agree on every case."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.errors import MalformedInput
from ledger.core.keys import PartyKey
from ledger.core.statements import prepare, sign_one
from ledger.epcis import validation as schemas
from tests.support import new_uscc

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "epcis"
SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
EXAMPLES = SCHEMAS / "examples"

Body = dict[str, Any]


def _fixture_events() -> list[tuple[str, Body]]:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonld")):
        body = json.loads(path.read_text(encoding="utf-8"))["epcisBody"]
        events = body.get("eventList")
        if events is None:
            events = body["queryResults"]["resultsBody"]["eventList"]
        out += [(f"{path.stem}[{i}]", e) for i, e in enumerate(events)]
    return out


FIXTURE_EVENTS = _fixture_events()
EXAMPLE_BODIES = [
    (p.stem, json.loads(p.read_text(encoding="utf-8"))) for p in sorted(EXAMPLES.glob("*.json"))
]


def _example(stem: str) -> Body:
    return copy.deepcopy(dict(EXAMPLE_BODIES)[stem])


def _fast_ok(body: object) -> bool:
    try:
        schemas.validate_event_body(body)  # type: ignore[arg-type]
    except MalformedInput:
        return False
    return True


def _reference_ok(body: object) -> bool:
    return not schemas.reference_error_paths(body)


def test_fixtures_and_examples_were_found() -> None:
    assert len(FIXTURE_EVENTS) >= 13, f"GS1 fixtures not found under {FIXTURES}"
    assert len(EXAMPLE_BODIES) >= 8


def test_the_schemas_are_valid_draft_2020_12() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    for name in (schemas.EVENT_SCHEMA, schemas.ENVELOPE_SCHEMA):
        schema = schemas.load_schema(name)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("name", "event"), FIXTURE_EVENTS, ids=[n for n, _ in FIXTURE_EVENTS])
def test_every_gs1_fixture_event_validates(name: str, event: Body) -> None:
    schemas.validate_event_body(event)
    assert schemas.reference_error_paths(event) == []


@pytest.mark.parametrize(("name", "body"), EXAMPLE_BODIES, ids=[n for n, _ in EXAMPLE_BODIES])
def test_every_example_validates(name: str, body: Body) -> None:
    schemas.validate_event_body(body)
    assert schemas.reference_error_paths(body) == []


def test_the_readme_examples_are_the_example_files_and_validate() -> None:
    readme = (SCHEMAS / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", readme, flags=re.S)
    codes = set()
    for block in blocks:
        body = json.loads(block)
        schemas.validate_event_body(body)
        assert body in [b for _, b in EXAMPLE_BODIES], "README example differs from its file"
        codes.add(body["cbec:customsProcedure"])
    assert codes == {"9610", "1210", "9710", "9810"}


def test_the_1210_chain_covers_every_stage() -> None:
    chain = [b for n, b in EXAMPLE_BODIES if b.get("cbec:customsProcedure", "1210") == "1210"]
    steps = {b.get("bizStep") for b in chain}
    assert {"commissioning", "cbec:declaring", "cbec:releasing", "accepting", "cbec:evaluating"} <= steps
    types = {t["type"] for b in chain for t in b.get("bizTransactionList", [])}
    assert {"cbec:order", "cbec:payment", "cbec:waybill", "cbec:declaration"} <= types
    ilmd = _example("01-production-commissioning")["ilmd"]
    assert ilmd["cbvmda:lotNumber"] and ilmd["cbvmda:itemExpirationDate"]
    order = _example("05-order")["cbec:orderInfo"]
    payment = _example("06-payment")["cbec:paymentInfo"]
    waybill = _example("07-waybill")["cbec:waybillInfo"]
    # The three documents agree (三单对碰).
    assert order["paid"] == payment["paid"] and order["buyerIdHash"] == payment["buyerIdHash"]
    assert order["freight"] == waybill["freight"]
    goods, freight, tax, discount, paid = (
        Decimal(order[k]) for k in ("goods", "freight", "tax", "discount", "paid")
    )
    assert goods + freight + tax - discount == paid


def test_the_vocabulary_defines_exactly_the_cbec_terms_the_schema_uses() -> None:
    vocab = json.loads((SCHEMAS / "cbec-vocabulary.jsonld").read_text(encoding="utf-8"))
    assert vocab["@context"]["cbec"] == schemas.CBEC_NAMESPACE
    defined = {n["@id"] for n in vocab["@graph"]}
    for node in vocab["@graph"]:  # every term is explained in both languages
        assert set(node["label"]) == {"en", "zh"}, node["@id"]
    defs = schemas.load_schema(schemas.EVENT_SCHEMA)["$defs"]
    used = {f"cbec:{t}" for t in defs["cbecBizStepTerm"]["enum"]}
    used |= {f"cbec:{t}" for t in defs["cbecBizTransactionTypeTerm"]["enum"]}
    # ilmd also names GS1's lot number (cbvmda:), whose rule the schema states.
    cbec_ilmd = {k for k in defs["ilmd"]["properties"] if k.startswith("cbec:")}
    used |= cbec_ilmd
    used |= {f"cbec:procedure-{c}" for c in defs["cbec:customsProcedure"]["enum"]}
    assert used <= defined, sorted(used - defined)
    props = {n["@id"] for n in vocab["@graph"] if "rdfs:range" in n}
    assert props - {"cbec:buyerIdHash", "cbec:consigneeHash"} == cbec_ilmd


# --- Bad bodies --------------------------------------------------------------------------

Mutation = Callable[[Body], Any]


class Replace:
    """Returned by a mutation that replaces the whole body instead of editing it."""

    def __init__(self, value: object) -> None:
        self.value = value


def _set(key: str, value: Any) -> Mutation:
    return lambda b: b.__setitem__(key, value)


def _drop(key: str) -> Mutation:
    return lambda b: b.pop(key)


def _edit(f: Callable[[Body], None]) -> Mutation:
    return f


TRANSFORMATION: Body = {
    "type": "TransformationEvent",
    "eventTime": "2026-09-15T10:20:00+09:00",
    "eventTimeZoneOffset": "+09:00",
    "inputQuantityList": [
        {"epcClass": "https://id.gs1.org/01/04901234567894/10/L1", "quantity": 5, "uom": "KGM"}
    ],
    "outputEPCList": ["https://id.gs1.org/01/04901234567894/21/1"],
    "bizStep": "commissioning",
}
ASSOCIATION: Body = {
    "type": "AssociationEvent",
    "eventTime": "2026-09-15T10:20:00+09:00",
    "eventTimeZoneOffset": "+09:00",
    "parentID": "urn:epc:id:grai:4012345.55555.987",
    "childEPCs": ["urn:epc:id:giai:4000001.12345"],
    "action": "ADD",
    "bizStep": "assembling",
}

# (case id, starting body, mutation, path the fast validator names, path jsonschema names)
BAD: list[tuple[str, str | Body, Mutation, str, str | None]] = [
    (
        "transaction-without-bizTransactionList",
        "05-order",
        _drop("bizTransactionList"),
        "$.bizTransactionList",
        None,
    ),
    (
        "transaction-with-empty-bizTransactionList",
        "05-order",
        _set("bizTransactionList", []),
        "$.bizTransactionList",
        None,
    ),
    ("association-without-parentID", ASSOCIATION, _drop("parentID"), "$.parentID", None),
    ("transformation-with-action", TRANSFORMATION, _set("action", "ADD"), "$.action", None),
    (
        "eventTime-without-offset",
        "11-delivery",
        _set("eventTime", "2026-11-29T10:12:00"),
        "$.eventTime",
        None,
    ),
    (
        "eventTime-not-a-date",
        "11-delivery",
        _set("eventTime", "2026-02-30T10:12:00+08:00"),
        "$.eventTime",
        None,
    ),
    ("eventTime-date-only", "11-delivery", _set("eventTime", "2026-11-29"), "$.eventTime", None),
    (
        "offset-without-leading-zero",
        "11-delivery",
        _set("eventTimeZoneOffset", "+8:00"),
        "$.eventTimeZoneOffset",
        None,
    ),
    (
        "offset-beyond-14h",
        "11-delivery",
        _set("eventTimeZoneOffset", "+15:00"),
        "$.eventTimeZoneOffset",
        None,
    ),
    (
        "missing-eventTimeZoneOffset",
        "11-delivery",
        _drop("eventTimeZoneOffset"),
        "$.eventTimeZoneOffset",
        None,
    ),
    ("unknown-bizStep-bare-word", "10-outbound-shipping", _set("bizStep", "shiping"), "$.bizStep", None),
    (
        "misspelt-cbv-urn-bizStep",
        "10-outbound-shipping",
        _set("bizStep", "urn:epcglobal:cbv:bizstep:shiping"),
        "$.bizStep",
        None,
    ),
    (
        "cbv-web-uri-of-a-disposition-as-bizStep",
        "10-outbound-shipping",
        _set("bizStep", "https://ref.gs1.org/cbv/Disp-in_transit"),
        "$.bizStep",
        None,
    ),
    ("unknown-cbec-bizStep", "08-declaration", _set("bizStep", "cbec:clearing"), "$.bizStep", None),
    (
        "bizStep-word-as-disposition",
        "10-outbound-shipping",
        _set("disposition", "shipping"),
        "$.disposition",
        None,
    ),
    (
        "quantity-as-string",
        "14-recall",
        _edit(lambda b: b["quantityList"][0].__setitem__("quantity", "1200")),
        "$.quantityList[0].quantity",
        None,
    ),
    (
        "quantity-as-boolean",
        "14-recall",
        _edit(lambda b: b["quantityList"][0].__setitem__("quantity", True)),
        "$.quantityList[0].quantity",
        None,
    ),
    (
        "uom-without-quantity",
        "14-recall",
        _edit(
            lambda b: (
                b["quantityList"][0].update(uom="KGM", quantity=None) or b["quantityList"][0].pop("quantity")
            )
        ),
        "$.quantityList[0].quantity",
        None,
    ),
    (
        "unknown-field-in-quantity-element",
        "14-recall",
        _edit(lambda b: b["quantityList"][0].__setitem__("lot", "L2026A")),
        "$.quantityList[0].lot",
        None,
    ),
    ("unknown-top-level-field", "11-delivery", _set("deliveredTo", "Zhang San"), "$.deliveredTo", None),
    ("field-of-another-event-type", "11-delivery", _set("childEPCs", []), "$.childEPCs", None),
    ("unknown-cbec-field", "05-order", _set("cbec:buyerName", "Zhang San"), "$['cbec:buyerName']", None),
    ("action-not-in-the-enum", "11-delivery", _set("action", "UPDATE"), "$.action", None),
    ("object-event-without-action", "11-delivery", _drop("action"), "$.action", None),
    ("unknown-event-type", "11-delivery", _set("type", "SensorEvent"), "$.type", None),
    ("missing-type", "11-delivery", _drop("type"), "$.type", None),
    ("ilmd-on-an-observe", "11-delivery", _set("ilmd", {"cbvmda:lotNumber": "L1"}), "$.ilmd", "$.action"),
    (
        "ilmd-key-without-prefix",
        "01-production-commissioning",
        _edit(lambda b: b["ilmd"].__setitem__("lotNumber", "L2026A")),
        "$.ilmd.lotNumber",
        None,
    ),
    ("object-event-about-nothing", "11-delivery", _drop("epcList"), "$", None),
    ("aggregation-add-without-parentID", "02-packing-pallet", _drop("parentID"), "$.parentID", None),
    ("epc-that-is-not-a-uri", "11-delivery", _set("epcList", ["JP0001"]), "$.epcList[0]", None),
    (
        "epc-listed-twice",
        "11-delivery",
        _edit(lambda b: b["epcList"].append(b["epcList"][0])),
        "$.epcList",
        None,
    ),
    (
        "readPoint-without-id",
        "10-outbound-shipping",
        _set("readPoint", {"gln": "6901234000108"}),
        "$.readPoint.id",
        None,
    ),
    (
        "source-without-source",
        "10-outbound-shipping",
        _edit(lambda b: b["sourceList"][0].pop("source")),
        "$.sourceList[0].source",
        None,
    ),
    (
        "unknown-bizTransaction-type-word",
        "05-order",
        _edit(lambda b: b["bizTransactionList"][0].__setitem__("type", "order")),
        "$.bizTransactionList[0].type",
        None,
    ),
    (
        "persistentDisposition-empty",
        "11-delivery",
        _set("persistentDisposition", {}),
        "$.persistentDisposition",
        None,
    ),
    (
        "order-amount-as-number",
        "05-order",
        _edit(lambda b: b["cbec:orderInfo"].__setitem__("paid", 316.03)),
        "$['cbec:orderInfo'].paid",
        None,
    ),
    (
        "raw-buyer-id",
        "05-order",
        _edit(lambda b: b["cbec:orderInfo"].__setitem__("buyerIdHash", "110101199003071234")),
        "$['cbec:orderInfo'].buyerIdHash",
        None,
    ),
    (
        "order-without-tax",
        "05-order",
        _edit(lambda b: b["cbec:orderInfo"].pop("tax")),
        "$['cbec:orderInfo'].tax",
        None,
    ),
    (
        "rating-out-of-range",
        "12-evaluation",
        _edit(lambda b: b["cbec:evaluation"].__setitem__("rating", 6)),
        "$['cbec:evaluation'].rating",
        None,
    ),
    (
        "rating-not-whole",
        "12-evaluation",
        _edit(lambda b: b["cbec:evaluation"].__setitem__("rating", 4.5)),
        "$['cbec:evaluation'].rating",
        None,
    ),
    (
        "unknown-procedure-code",
        "08-declaration",
        _set("cbec:customsProcedure", "1239"),
        "$['cbec:customsProcedure']",
        None,
    ),
    (
        "procedure-code-as-number",
        "08-declaration",
        _set("cbec:customsProcedure", 1210),
        "$['cbec:customsProcedure']",
        None,
    ),
    (
        "country-not-iso-3166",
        "08-declaration",
        _set("cbec:countryOfOrigin", "XX"),
        "$['cbec:countryOfOrigin']",
        None,
    ),
    ("hs-code-with-dots", "08-declaration", _set("cbec:hsCode", "1901.10.10"), "$['cbec:hsCode']", None),
    (
        "recall-without-scope",
        "14-recall",
        _edit(lambda b: b["cbec:recall"].pop("scope")),
        "$['cbec:recall'].scope",
        None,
    ),
    ("body-not-an-object", "11-delivery", lambda b: Replace([b]), "$", None),
]


def _bad_body(start: str | Body, mutate: Mutation) -> object:
    body = _example(start) if isinstance(start, str) else copy.deepcopy(start)
    assert _fast_ok(body) and _reference_ok(body), "the starting body must be valid"
    result = mutate(body)
    return result.value if isinstance(result, Replace) else body


@pytest.mark.parametrize(("case", "start", "mutate", "path", "ref_path"), BAD, ids=[c[0] for c in BAD])
def test_bad_bodies_are_refused_naming_the_path(
    case: str, start: str | Body, mutate: Mutation, path: str, ref_path: str | None
) -> None:
    body = _bad_body(start, mutate)
    with pytest.raises(MalformedInput) as e:
        schemas.validate_event_body(body)  # type: ignore[arg-type]
    message = e.value.message
    assert message.startswith(f"event body {path} "), message
    assert "\n" not in message and len(message) < 400
    assert e.value.code == "malformed"
    # jsonschema over the published schema refuses it too, at the same place.
    paths = schemas.reference_error_paths(body)
    assert (ref_path or path) in paths, paths
    with pytest.raises(MalformedInput):
        schemas.validate_event_body_reference(body)


def test_there_are_enough_bad_cases() -> None:
    assert len(BAD) >= 15


def test_example_messages() -> None:
    body = _example("05-order")
    del body["bizTransactionList"]
    with pytest.raises(
        MalformedInput,
        match=r"^event body \$\.bizTransactionList is required "
        r"for a TransactionEvent$",
    ):
        schemas.validate_event_body(body)
    with pytest.raises(MalformedInput, match="a transformation has no action; remove it"):
        schemas.validate_event_body({**TRANSFORMATION, "action": "ADD"})


def test_vocabulary_spellings_are_accepted() -> None:
    body = _example("10-outbound-shipping")
    for step in (
        "shipping",
        "https://ref.gs1.org/cbv/BizStep-shipping",
        "urn:epcglobal:cbv:bizstep:shipping",
        "cbec:releasing",
        "https://suyuan.example/cbec#releasing",
        "http://ns.example.com/bizstep/picked",
    ):
        body["bizStep"] = step
        assert _fast_ok(body) and _reference_ok(body), step


# --- The two validators agree on arbitrary damage ------------------------------------------

JSON_VALUES = st.sampled_from(
    [
        None,
        True,
        0,
        1,
        -1,
        1.5,
        "",
        "x",
        "ADD",
        "DELETE",
        "OBSERVE",
        "shipping",
        "in_transit",
        "cbec:declaring",
        "cbec:order",
        "urn:epc:id:sgtin:0614141.107346.2017",
        "2026-11-27T13:05:00+08:00",
        "2026-11-27T13:05:00",
        "+08:00",
        "1210",
        "JP",
        "298.00",
        [],
        ["urn:x:y"],
        ["urn:x:y", "urn:x:y"],
        {},
        {"id": "urn:x:y"},
        {"epcClass": "urn:x:y"},
        [{"epcClass": "urn:x:y", "quantity": 1}],
        [{"bizTransaction": "urn:x:y"}],
        [{"type": "location", "source": "urn:x:y"}],
    ]
)
KEYS = st.sampled_from(
    [
        "type",
        "eventTime",
        "eventTimeZoneOffset",
        "action",
        "epcList",
        "quantityList",
        "parentID",
        "childEPCs",
        "bizStep",
        "disposition",
        "readPoint",
        "bizTransactionList",
        "sourceList",
        "ilmd",
        "transformationID",
        "inputEPCList",
        "outputQuantityList",
        "persistentDisposition",
        "sensorElementList",
        "errorDeclaration",
        "certificationInfo",
        "recordTime",
        "foo",
        "ext:foo",
        "cbec:hsCode",
        "cbec:orderInfo",
        "cbec:evaluation",
        "cbec:recall",
        "cbec:unknown",
    ]
)
STARTS = [b for _, b in EXAMPLE_BODIES] + [b for _, b in FIXTURE_EVENTS] + [TRANSFORMATION, ASSOCIATION]


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(STARTS),
    st.lists(st.tuples(KEYS, st.one_of(st.none(), JSON_VALUES), st.booleans()), min_size=1, max_size=3),
)
def test_fast_and_reference_validators_agree(start: Body, edits: list[Any]) -> None:
    body = copy.deepcopy(start)
    for key, value, nested in edits:
        target = body
        if nested:  # damage one level down when there is an object or list of objects there
            inner = [v for v in body.values() if isinstance(v, dict)]
            inner += [x for v in body.values() if isinstance(v, list) for x in v if isinstance(x, dict)]
            if inner:
                target = inner[0]
        if value is None:
            target.pop(key, None)
        else:
            target[key] = copy.deepcopy(value)
    assert _fast_ok(body) == _reference_ok(body), (body, schemas.reference_error_paths(body))


# --- The envelope schema -----------------------------------------------------------------


def _envelope(kind: str = "event", body: Body | None = None) -> dict[str, Any]:
    key = PartyKey.from_seed("p", bytes(32))
    return sign_one(
        kind=kind,
        signer=new_uscc(),
        key=key,
        body=body if body is not None else _example("12-evaluation"),
        issued="2026-12-01T20:31:00+08:00",
        private="sha256:" + "ab" * 32,
    )


def test_a_signed_envelope_validates() -> None:
    env = _envelope()
    prepare(env)
    assert schemas.reference_error_paths(env, schemas.ENVELOPE_SCHEMA) == []
    other = _envelope("attest", {"entry": "ab" * 32})
    assert schemas.reference_error_paths(other, schemas.ENVELOPE_SCHEMA) == []


ENVELOPE_BAD: list[tuple[str, Callable[[dict[str, Any]], None], str]] = [
    ("extra-envelope-field", lambda e: e.__setitem__("note", "x"), "$.note"),
    ("no-signatures", lambda e: e.__setitem__("signatures", []), "$.signatures"),
    ("version-2", lambda e: e["statement"].__setitem__("v", 2), "$.statement.v"),
    ("unknown-kind", lambda e: e["statement"].__setitem__("kind", "evnt"), "$.statement.kind"),
    (
        "bad-signer",
        lambda e: e["statement"].__setitem__("signer", "uscc:91310110666007217I"),
        "$.statement.signer",
    ),
    ("upper-case-key-id", lambda e: e["statement"].__setitem__("key", "ABCDEF0123456789"), "$.statement.key"),
    (
        "issued-without-offset",
        lambda e: e["statement"].__setitem__("issued", "2026-12-01T20:31:00"),
        "$.statement.issued",
    ),
    ("bad-private", lambda e: e["statement"].__setitem__("private", "sha256:xyz"), "$.statement.private"),
    ("unknown-statement-field", lambda e: e["statement"].__setitem__("to", "x"), "$.statement.to"),
    ("short-signature", lambda e: e["signatures"][0].__setitem__("sig", "AAAA"), "$.signatures[0].sig"),
    ("signature-without-key", lambda e: e["signatures"][0].pop("key"), "$.signatures[0].key"),
]


@pytest.mark.parametrize(("case", "mutate", "path"), ENVELOPE_BAD, ids=[c[0] for c in ENVELOPE_BAD])
def test_bad_envelopes_are_refused_by_schema_and_ledger(
    case: str, mutate: Callable[[dict[str, Any]], None], path: str
) -> None:
    env = _envelope()
    mutate(env)
    assert path in schemas.reference_error_paths(env, schemas.ENVELOPE_SCHEMA)
    with pytest.raises(MalformedInput):
        prepare(env)


def test_an_event_statement_body_is_held_to_the_event_schema() -> None:
    body = _example("12-evaluation")
    body["cbec:evaluation"]["rating"] = 0
    env = _envelope(body=body)
    paths = schemas.reference_error_paths(env, schemas.ENVELOPE_SCHEMA)
    assert "$.statement.body['cbec:evaluation'].rating" in paths
