"""EPCIS 2.0 import and export with GS1's own published examples: every event is signed
unchanged, a document lands whole or not at all, and an export gives back exactly the
signed events, in event-time order, in a document whose context is the contexts of the
documents they were imported in (tests/test_epcis_jsonld.py expands both and compares)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import rfc8785

from ledger.core.errors import BatchRejected, MalformedInput, NotFound
from ledger.epcis.context import cbec_context, namespaces
from ledger.epcis.stages import ROLE_PERMISSIONS, classify
from ledger.epcis.validation import validate_event_body
from ledger.queries.documents import (
    EPCIS_CONTEXT,
    Direction,
    DocumentRejected,
    events_of,
    export_document,
    import_document,
)
from tests.support import World, new_uscc

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "epcis"

Doc = dict[str, Any]

# Per GS1 example: (code, direction, indices in its eventList the export must give, in
# that order, and the extension prefixes the exported events use in their keys, which the
# export binds as the example did).
CASES: dict[str, list[tuple[str, Direction, list[int], set[str]]]] = {
    "AssociationEvent-a.jsonld": [
        ("urn:epc:id:grai:4012345.55555.987", "journey", [0], set()),
        ("urn:epc:id:giai:4000001.12345", "journey", [0], set()),
    ],
    "ErrorDeclarationAndCorrectiveEvent.jsonld": [
        ("urn:epc:id:sgtin:4012345.011111.987", "journey", [0, 1], {"example"}),
        ("urn:epc:id:sgtin:4012345.033333.AGHFG", "up", [0, 1], {"example"}),
    ],
    "Example-TransactionEvents-2020_07_03y.jsonld": [
        ("urn:epc:id:gsrn:95252084.000000001", "journey", [0], set()),
        ("urn:epc:id:giai:952005385.w2", "journey", [1], {"rail"}),
    ],
    "Example_9.6.1-ObjectEvent.jsonld": [
        ("urn:epc:id:sgtin:0614141.107346.2018", "journey", [0, 1], {"example"}),
        ("urn:epc:id:sgtin:0614141.107346.2017", "journey", [0], set()),
    ],
    "Example_9.6.2-ObjectEvent.jsonld": [
        ("urn:epc:class:lgtin:4012345.012345.998877", "journey", [0], {"example"}),
    ],
    "Example_9.6.3-AggregationEvent.jsonld": [
        ("urn:epc:id:sscc:0614141.1234567890", "journey", [0], {"example"}),
        ("urn:epc:id:sgtin:0614141.107346.2017", "journey", [0], {"example"}),
    ],
    "Example_9.6.4-TransformationEvent.jsonld": [
        ("urn:epc:id:sgtin:4012345.077889.25", "up", [0], {"example"}),
        ("urn:epc:id:sgtin:4012345.011122.25", "down", [0], {"example"}),
    ],
    "Example_9.6.4-TransformationEventWithDigitalLink.jsonld": [
        ("https://id.gs1.org/01/00614141777778/10/987", "down", [0], {"example"}),
        ("urn:epc:id:sgtin:4012345.077889.28", "journey", [0], {"example"}),
    ],
    "SensorDataExample1.jsonld": [
        ("urn:epc:id:sgtin:4012345.011111.9876", "journey", [0], set()),
    ],
    "object_event_all_possible_fields.jsonld": [
        ("urn:epc:id:sgtin:0614141.107346.2018", "journey", [0], {"ext1", "ext2", "ext3"}),
        ("urn:epc:class:lgtin:4012345.012345.998877", "up", [0], {"ext1", "ext2", "ext3"}),
    ],
}


def load(name: str) -> Doc:
    doc: Doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return doc


def roles_for(events: Sequence[Doc]) -> list[str]:
    """For each event, the first role that may sign its stage: what its signer must hold."""
    roles = set()
    for e in events:
        c = classify(e)
        roles.add(
            next(
                r
                for r, perms in ROLE_PERMISSIONS.items()
                if (c.stage, None) in perms or (c.stage, c.activity) in perms
            )
        )
    return sorted(roles)


def jcs(value: Any) -> bytes:
    return bytes(rfc8785.dumps(value))


def check_document(doc: Doc, sources: Sequence[Doc]) -> list[Doc]:
    """An EPCISDocument of valid events whose context is GS1's, then the contexts of
    ``sources`` (the documents its events were imported in, each part once), then the
    ledger's own prefix; its events as signed (``as_signed``)."""
    # The ledger's own terms beside the events: each event's seq, signer and event hash, and
    # the document records naming it (issue 12: the hash is exposed, the bodies untouched).
    assert doc.keys() == {
        "@context",
        "type",
        "schemaVersion",
        "creationDate",
        "epcisBody",
        "suyuan:entries",
        "suyuan:documents",
    }
    assert doc["type"] == "EPCISDocument" and doc["schemaVersion"] == "2.0"
    assert isinstance(doc["creationDate"], str) and doc["creationDate"].endswith("Z")
    assert doc["epcisBody"].keys() == {"eventList"}
    kept: list[Any] = []
    for source in sources:
        kept += [p for p in source["@context"] if p != EPCIS_CONTEXT and p not in kept]
    assert doc["@context"] == [EPCIS_CONTEXT, *kept, {"suyuan": "urn:suyuan:export#"}]
    events = as_signed(doc)
    for e in events:
        validate_event_body(e)
    assert events_of(doc) == doc["epcisBody"]["eventList"]
    return events


def as_signed(doc: Doc) -> list[Doc]:
    """The events of an export as they were signed: an event that the export gave a context
    of its own (its document bound a prefix otherwise than the export's context does) gets
    back the ``@context`` its signed body had, which its entry names."""
    out = []
    for e, entry in zip(doc["epcisBody"]["eventList"], doc["suyuan:entries"], strict=True):
        if "signedContext" in entry:
            e = {k: v for k, v in e.items() if k != "@context"}
            if entry["signedContext"] is not None:
                e["@context"] = entry["signedContext"]
        out.append(e)
    return out


def assert_same_events(got: Sequence[Doc], want: Sequence[Doc]) -> None:
    """Equal as values and as the bytes that were signed (== alone takes True for 1)."""
    assert list(got) == list(want)
    assert [jcs(e) for e in got] == [jcs(e) for e in want]


def signed_bodies(world: World, seqs: Sequence[int]) -> list[Doc]:
    return [e.decoded()["envelope"]["statement"]["body"] for e in world.ledger.entries(seqs)]


# --- the ten GS1 examples ------------------------------------------------------------------


def test_every_gs1_example_has_a_case() -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(CASES)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gs1_example_imports_in_one_batch_and_round_trips(world: World, name: str) -> None:
    doc = load(name)
    original = copy.deepcopy(doc)
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    size = world.ledger.size()

    receipts = import_document(world.ledger, doc, signer=party, key=key)

    assert doc == original  # the document is read, never changed
    assert len(receipts) == len(events)
    assert [r.seq for r in receipts] == list(range(size, size + len(events)))
    # ... and, after them, the document record (its header fields and event hashes).
    assert world.ledger.size() == size + len(events) + 1
    # One batch: every receipt is against the one checkpoint that batch signed.
    assert len({r.checkpoint for r in receipts}) == 1
    assert_same_events(signed_bodies(world, [r.seq for r in receipts]), events)

    for code, direction, wanted, prefixes in CASES[name]:
        exported = export_document(world.store, code, direction=direction)
        got = check_document(exported, [original])
        bound = namespaces(original["@context"])
        assert {p: namespaces(exported["@context"])[p] for p in prefixes} == {p: bound[p] for p in prefixes}
        assert_same_events(got, [events[i] for i in wanted])
        # What is written out reads back the same: the JSON text is the signed JSON.
        assert_same_events(events_of(json.loads(json.dumps(exported))), got)


def test_events_come_out_in_event_time_order(world: World) -> None:
    doc = load("Example_9.6.1-ObjectEvent.jsonld")
    first, second = doc["epcisBody"]["eventList"]
    doc["epcisBody"]["eventList"] = [second, first]  # listed latest first
    party, key = world.register(roles_for([first, second]))
    import_document(world.ledger, doc, signer=party, key=key)
    directions: tuple[Direction, ...] = ("journey", "up", "down")
    for direction in directions:
        got = check_document(
            export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018", direction=direction), [doc]
        )
        assert_same_events(got, [first, second])


def test_an_export_spans_documents_and_declares_all_their_prefixes(world: World) -> None:
    a = load("Example_9.6.1-ObjectEvent.jsonld")
    b = load("object_event_all_possible_fields.jsonld")
    events = a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    import_document(world.ledger, a, signer=party, key=key)
    import_document(world.ledger, b, signer=party, key=key)
    # b's event happens at the same instant as a's second; the earlier entry comes first.
    exported = export_document(world.store, "https://id.gs1.org/01/10614141073464/21/2018")
    got = check_document(exported, [a])
    assert_same_events(got, events)
    # b writes a sensor component example:x without binding example, which a binds: b's
    # event carries b's context, unbinding it (tests/test_epcis_jsonld.py expands both).
    assert exported["epcisBody"]["eventList"][2]["@context"] == [{"example": None}, *b["@context"][1:]]


def test_up_and_down_follow_lineage_across_documents(world: World) -> None:
    a = load("Example_9.6.4-TransformationEvent.jsonld")
    b = load("Example_9.6.4-TransformationEventWithDigitalLink.jsonld")
    events = a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    import_document(world.ledger, a, signer=party, key=key)
    import_document(world.ledger, b, signer=party, key=key)
    # a names this input as an EPC pattern, b as a Digital Link: one class to the ledger.
    down = export_document(world.store, "urn:epc:idpat:sgtin:4012345.066666.*", direction="down")
    assert_same_events(check_document(down, [a, b]), events)
    up = export_document(world.store, "urn:epc:id:sgtin:4012345.077889.27", direction="up")
    assert_same_events(check_document(up, [a, b]), events)


def test_cbec_prefix_maps_to_the_cbec_namespace(world: World) -> None:
    party, key = world.register(["producer"])
    event = {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "bizStep": "commissioning",
        "epcList": ["https://id.gs1.org/01/09506000134352/21/7"],
        "cbec:countryOfOrigin": "JP",
        "ilmd": {"cbvmda:lotNumber": "L1"},
        "https://ns.example.com/epcis/note": "an absolute IRI key",
    }
    doc = {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-27T13:05:00+08:00",
        "epcisBody": {"eventList": [event]},
    }
    import_document(world.ledger, doc, signer=party, key=key)
    out = export_document(world.store, "https://id.gs1.org/01/09506000134352/21/7")
    # The document binds no cbec: the ledger's reading of cbec: (the CBEC vocabulary) is kept.
    assert out["@context"] == [EPCIS_CONTEXT, cbec_context(), {"suyuan": "urn:suyuan:export#"}]
    assert cbec_context()["cbec"] == "https://suyuan.example/cbec#"
    assert_same_events(out["epcisBody"]["eventList"], [event])


def test_a_query_document_imports_its_results(world: World) -> None:
    events = load("Example_9.6.1-ObjectEvent.jsonld")["epcisBody"]["eventList"]
    doc = {
        "@context": [EPCIS_CONTEXT],
        "type": "EPCISQueryDocument",
        "schemaVersion": "2.0",
        "creationDate": "2005-07-11T11:30:47.0Z",
        "epcisBody": {
            "queryResults": {"queryName": "SimpleEventQuery", "resultsBody": {"eventList": events}}
        },
    }
    assert events_of(doc) == events
    party, key = world.register(roles_for(events))
    receipts = import_document(world.ledger, doc, signer=party, key=key)
    assert_same_events(signed_bodies(world, [r.seq for r in receipts]), events)


# --- all or nothing ------------------------------------------------------------------------


def test_one_malformed_event_refuses_the_whole_document(world: World) -> None:
    doc = load("Example-TransactionEvents-2020_07_03y.jsonld")
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    del events[1]["bizTransactionList"]
    size = world.ledger.size()
    with pytest.raises(BatchRejected) as e:
        import_document(world.ledger, doc, signer=party, key=key)
    assert world.ledger.size() == size
    assert isinstance(e.value, DocumentRejected) and e.value.code == "batch_rejected"
    assert [i for i, _ in e.value.errors] == [1]
    assert e.value.message.startswith("document refused, nothing appended: event 1: ")
    assert "$.bizTransactionList is required for a TransactionEvent" in e.value.message


def test_an_event_its_signer_may_not_sign_refuses_the_document(world: World) -> None:
    doc = load("Example_9.6.1-ObjectEvent.jsonld")  # shipping and receiving: logistics
    party, key = world.register(["producer"])
    size = world.ledger.size()
    with pytest.raises(DocumentRejected) as e:
        import_document(world.ledger, doc, signer=party, key=key)
    assert world.ledger.size() == size
    assert [i for i, _ in e.value.errors] == [0, 1]
    assert all(err.code == "role_not_allowed" for _, err in e.value.errors)
    first_id = doc["epcisBody"]["eventList"][0]["eventID"]
    assert e.value.message.startswith(f"document refused, nothing appended: event 0 ({first_id}): ")
    assert e.value.message.endswith("(and 1 more)")
    lines = e.value.diagnostics().splitlines()
    assert lines[0] == "error [batch_rejected]: 2 event(s) refused, nothing appended"
    assert lines[2].startswith("  event 1 (")


def test_an_event_that_cannot_be_signed_refuses_the_document(world: World) -> None:
    doc = load("Example_9.6.2-ObjectEvent.jsonld")
    doc["epcisBody"]["eventList"][0]["quantityList"][0]["quantity"] = 1e16  # JCS writes 1e+16
    party, key = world.register(roles_for(doc["epcisBody"]["eventList"]))
    size = world.ledger.size()
    with pytest.raises(DocumentRejected) as e:
        import_document(world.ledger, doc, signer=party, key=key)
    assert world.ledger.size() == size
    assert [i for i, _ in e.value.errors] == [0]


@pytest.mark.parametrize(
    "doc, words",
    [
        ([], "not an array"),
        (
            {"type": "EPCISMasterDataDocument", "epcisBody": {"eventList": []}},
            "type 'EPCISMasterDataDocument'",
        ),
        (
            {"type": "EPCISDocument", "epcisBody": {"queryResults": {"resultsBody": {"eventList": []}}}},
            "eventList is missing",
        ),
        ({"type": "EPCISQueryDocument", "epcisBody": {"eventList": []}}, "has type 'EPCISQueryDocument'"),
        ({"type": "EPCISDocument"}, "has type 'EPCISDocument'"),
        ({"type": "EPCISDocument", "epcisBody": {"eventList": {}}}, "not an array"),
        (
            {"type": "EPCISDocument", "epcisBody": {"eventList": [{}, "ObjectEvent"]}},
            "event 1 of the eventList must be a JSON object",
        ),
    ],
)
def test_anything_but_an_epcis_document_is_refused(doc: Any, words: str) -> None:
    with pytest.raises(MalformedInput) as e:
        events_of(doc)
    assert words in e.value.message
    assert e.value.message.startswith(("expected an EPCISDocument", "event 1"))


def test_export_refuses_an_unknown_code_and_direction(world: World) -> None:
    with pytest.raises(NotFound, match="no event in the ledger names"):
        export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    with pytest.raises(MalformedInput, match="direction must be one of journey, up, down"):
        export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018", direction="sideways")  # type: ignore[arg-type]


# --- the command ---------------------------------------------------------------------------


def test_cli_imports_and_exports(world: World, tmp_path: Path) -> None:
    env = {"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")}

    def suyuan(*args: str, stdin: bytes = b"", rc: int = 0) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "tools.cli", *args],
            cwd=REPO,
            env=env,
            input=stdin.decode(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == rc, proc.stderr
        return proc

    a, b = load("Example_9.6.1-ObjectEvent.jsonld"), load("object_event_all_possible_fields.jsonld")
    events = a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]
    party = new_uscc()
    key = world.home.keys.create("gs1-examples")
    world.ledger.append(world.registration(party, key, roles_for(events)))
    size = world.ledger.size()

    run = suyuan(
        "epcis",
        "import",
        "-",
        "--signer",
        party,
        "--key",
        "gs1-examples",
        stdin=(FIXTURES / "Example_9.6.1-ObjectEvent.jsonld").read_bytes(),
    )
    *receipts, record = [json.loads(line) for line in run.stdout.splitlines()]
    assert [r["seq"] for r in receipts] == [size, size + 1]
    assert record["document"]["seq"] == size + 2  # the document record follows its events
    run = suyuan(
        "epcis",
        "import",
        str(FIXTURES / "object_event_all_possible_fields.jsonld"),
        "--signer",
        party,
        "--key",
        "gs1-examples",
    )
    assert [json.loads(line).get("seq") for line in run.stdout.splitlines()] == [size + 3, None]

    code = "urn:epc:id:sgtin:0614141.107346.2018"
    doc = json.loads(suyuan("epcis", "export", code).stdout)
    assert_same_events(check_document(doc, [a]), events)
    out = tmp_path / "up.jsonld"
    summary = json.loads(suyuan("epcis", "export", code, "--up", "--out", str(out)).stdout)
    assert summary == {"out": str(out), "events": 3}
    assert_same_events(check_document(json.loads(out.read_text()), [a]), events)

    bad = load("Example-TransactionEvents-2020_07_03y.jsonld")
    del bad["epcisBody"]["eventList"][1]["bizTransactionList"]
    run = suyuan(
        "epcis",
        "import",
        "-",
        "--signer",
        party,
        "--key",
        "gs1-examples",
        stdin=json.dumps(bad).encode(),
        rc=2,
    )
    assert run.stdout == ""
    assert run.stderr.startswith(
        "error [batch_rejected]: 1 event(s) refused, nothing appended\n"
        "  event 1: [malformed] event body $.bizTransactionList"
    )
    assert world.ledger.size() == size + 5
    run = suyuan("epcis", "export", code, "--up", "--down", rc=2)
    assert "not allowed with argument" in run.stderr
