"""An export means what was signed: each exported event, expanded as JSON-LD with GS1's
EPCIS 2.0 context (served offline from tests/fixtures/epcis-standard), gives the same RDF
graph (URDNA2015 N-Quads) as the event in the document it was imported in. On SQLite and
PostgreSQL, for every GS1 example, GS1's XML examples, the CBEC vocabulary, events of two
documents that bind one prefix to two namespaces, and entries signed before contexts were
kept (which are exported as they always were)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import rfc8785
from lxml import etree
from pyld import jsonld

from ledger.core.statements import now_rfc3339, sign_one
from ledger.epcis import xml as epcis_xml
from ledger.epcis.event_hash import event_hash
from ledger.queries.documents import (
    EPCIS_CONTEXT,
    document_record,
    events_in_context,
    export_document,
    export_xml,
    import_epcis,
)
from tests.chain import ITEM, build
from tests.support import World
from tests.test_epcis import CASES, roles_for

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "epcis"
STANDARD = REPO / "tests" / "fixtures" / "epcis-standard"
XML_EXAMPLES = sorted(p.name for p in STANDARD.glob("xml-*.xml") if "masterdata" not in p.name)
VOCABULARY = json.loads((REPO / "schemas" / "cbec-vocabulary.jsonld").read_text(encoding="utf-8"))

Doc = dict[str, Any]

# The only remote context any of these documents names. Anything else is a test that would
# need the network: it fails, naming the IRI, rather than fetching it.
OFFLINE = {EPCIS_CONTEXT: json.loads((STANDARD / "epcis-context.jsonld").read_text(encoding="utf-8"))}
# A remote context of the tests' own (a document may name any): served like GS1's.
REMOTE = "https://contexts.example/maker.jsonld"
OFFLINE[REMOTE] = {"@context": {"ext": "https://maker.example/ns/", "ext:grade": {"@type": "xsd:token"}}}


def offline_loader(url: str, options: Any = None) -> dict[str, Any]:
    if url not in OFFLINE:
        pytest.fail(f"JSON-LD processing asked for {url}, which has no offline copy")
    return {"contextUrl": None, "documentUrl": url, "document": copy.deepcopy(OFFLINE[url])}


def rdf(context: Any, events: list[Doc]) -> str:
    """The canonical N-Quads of ``events`` in an EPCISDocument with ``context``."""
    doc = {"@context": context, "type": "EPCISDocument", "epcisBody": {"eventList": events}}
    nquads: str = jsonld.normalize(
        doc, {"algorithm": "URDNA2015", "format": "application/n-quads", "documentLoader": offline_loader}
    )
    return nquads


def load(name: str) -> Doc:
    doc: Doc = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    return doc


def signed_bodies(world: World, seqs: list[int]) -> list[Doc]:
    return [e.decoded()["envelope"]["statement"]["body"] for e in world.ledger.entries(seqs)]


def same_rdf(exported: Doc, original_context: Any, originals: list[Doc]) -> None:
    want = rdf(original_context, originals)
    assert want  # a graph to compare, not two empty ones
    assert rdf(exported["@context"], exported["epcisBody"]["eventList"]) == want


def test_the_epcis_context_names_no_other_remote_context() -> None:
    """So serving it alone is enough: the CBV and GS1 vocabularies it uses are prefixes, not
    contexts to load (no nested ``@context`` IRI, no ``@import``)."""
    found: list[Any] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                if k == "@import":
                    found.append(v)
                if k == "@context":  # an IRI, or an array holding one, is a context to load
                    found.extend(c for c in (v if isinstance(v, list) else [v]) if not isinstance(c, dict))
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(OFFLINE[EPCIS_CONTEXT])
    assert found == []
    assert OFFLINE[EPCIS_CONTEXT] == json.loads(
        (REPO / "ledger" / "gs1data" / "epcis-context.jsonld").read_text(encoding="utf-8")
    )


# --- GS1's examples ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_gs1_example_keeps_its_meaning_on_export(world: World, name: str) -> None:
    doc = load(name)
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    done = import_epcis(world.ledger, doc, signer=party, key=key)
    # The signed bodies are the events, untouched: the context is kept beside them.
    assert signed_bodies(world, [r.seq for r in done.events]) == events
    record = world.ledger.entry(done.document.seq).decoded()["envelope"]["statement"]["body"]
    assert record["context"] == doc["@context"]

    # Every event, all together, as the EPCIS REST binding writes them.
    together = events_in_context(world.store, [r.seq for r in done.events])
    assert together.signed_contexts == {}
    assert together.events == events
    assert rdf(together.context, together.events) == rdf(doc["@context"], events)
    # And each export the examples' codes give.
    for code, direction, wanted, _ in CASES[name]:
        exported = export_document(world.store, code, direction=direction)
        assert exported["epcisBody"]["eventList"] == [events[i] for i in wanted]
        same_rdf(exported, doc["@context"], [events[i] for i in wanted])


def test_extension_terms_expand_to_the_iris_gs1_gave_them(world: World) -> None:
    """The two defects of issue 12 by name: example:myField and the rail terms' datatypes."""
    a, b = load("Example_9.6.1-ObjectEvent.jsonld"), load("Example-TransactionEvents-2020_07_03y.jsonld")
    party, key = world.register(roles_for(a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]))
    import_epcis(world.ledger, a, signer=party, key=key)
    import_epcis(world.ledger, b, signer=party, key=key)
    got = export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    nquads = rdf(got["@context"], got["epcisBody"]["eventList"])
    assert "<http://ns.example.com/epcis/myField>" in nquads
    assert "urn:suyuan:ext" not in nquads
    got = export_document(world.store, "urn:epc:id:giai:952005385.w2")
    nquads = rdf(got["@context"], got["epcisBody"]["eventList"])
    assert '"true"^^<http://www.w3.org/2001/XMLSchema#boolean>' in nquads
    assert "^^<http://www.w3.org/2001/XMLSchema#integer>" in nquads


def test_documents_binding_one_prefix_alike_share_one_context(world: World) -> None:
    a = load("Example_9.6.4-TransformationEvent.jsonld")
    b = load("Example_9.6.4-TransformationEventWithDigitalLink.jsonld")
    events = a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    import_epcis(world.ledger, a, signer=party, key=key)
    import_epcis(world.ledger, b, signer=party, key=key)
    got = export_document(world.store, "urn:epc:idpat:sgtin:4012345.066666.*", direction="down")
    assert got["@context"] == [
        EPCIS_CONTEXT,
        {"example": "http://ns.example.com/epcis/"},
        {"suyuan": "urn:suyuan:export#"},
    ]
    assert got["epcisBody"]["eventList"] == events
    same_rdf(got, a["@context"], events)


def test_an_undeclared_prefix_keeps_its_meaning_beside_a_document_that_binds_it(world: World) -> None:
    """GS1's all-possible-fields event writes a sensor component ``example:x`` without binding
    ``example``; 9.6.1 binds it. In one export the second event carries its own context, which
    unbinds ``example`` again, and the entry says what its signed body had."""
    a, b = load("Example_9.6.1-ObjectEvent.jsonld"), load("object_event_all_possible_fields.jsonld")
    events = a["epcisBody"]["eventList"] + b["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    import_epcis(world.ledger, a, signer=party, key=key)
    done = import_epcis(world.ledger, b, signer=party, key=key)
    got = export_document(world.store, "https://id.gs1.org/01/10614141073464/21/2018")
    out = got["epcisBody"]["eventList"]
    assert got["@context"] == [EPCIS_CONTEXT, *a["@context"][1:], {"suyuan": "urn:suyuan:export#"}]
    assert out[:2] == a["epcisBody"]["eventList"]
    assert out[2]["@context"] == [{"example": None}, *b["@context"][1:]]
    assert rdf(got["@context"], out[:2]) == rdf(a["@context"], a["epcisBody"]["eventList"])
    assert rdf(got["@context"], out[2:]) == rdf(b["@context"], b["epcisBody"]["eventList"])
    entry = got["suyuan:entries"][2]
    assert entry["seq"] == done.events[0].seq and entry["signedContext"] is None
    assert "signedContext" not in got["suyuan:entries"][0]
    restored = {k: v for k, v in out[2].items() if k != "@context"}
    assert rfc8785.dumps(restored) == rfc8785.dumps(signed_bodies(world, [entry["seq"]])[0])


# --- two parties, one prefix, two namespaces ------------------------------------------------

CODE = "https://id.gs1.org/01/09506000134352/21/7"


def _event(time: str, step: str, **extra: Any) -> Doc:
    return {
        "type": "ObjectEvent",
        "eventTime": time,
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD" if step == "commissioning" else "OBSERVE",
        "bizStep": step,
        "epcList": [CODE],
        **extra,
    }


def _document(context: Any, *events: Doc) -> Doc:
    return {
        "@context": context,
        "type": "EPCISDocument",
        "schemaVersion": "2.0",
        "creationDate": "2026-11-27T13:05:00+08:00",
        "epcisBody": {"eventList": list(events)},
    }


def test_two_parties_binding_one_prefix_to_two_namespaces_keep_their_meanings(world: World) -> None:
    maker, mk = world.register(["producer"])
    carrier, ck = world.register(["logistics"])
    made = _document(
        [EPCIS_CONTEXT, {"ext": "https://maker.example/ns/"}],
        _event("2026-11-27T13:05:00+08:00", "commissioning", **{"ext:grade": "A"}),
    )
    shipped = _document(
        [EPCIS_CONTEXT, {"ext": "https://carrier.example/ns/", "ext:weight": {"@type": "xsd:decimal"}}],
        # Its own context too (EPCIS 2.0 lets an event carry one): kept in the signed body.
        {
            **_event("2026-11-28T09:00:00+08:00", "shipping", **{"ext:weight": "1.5", "own:seal": "S-1"}),
            "@context": {"own": "https://carrier.example/seal/"},
        },
    )
    import_epcis(world.ledger, made, signer=maker, key=mk)
    second = import_epcis(world.ledger, shipped, signer=carrier, key=ck)

    got = export_document(world.store, CODE)
    out = got["epcisBody"]["eventList"]
    assert got["@context"] == [
        EPCIS_CONTEXT,
        {"ext": "https://maker.example/ns/"},
        {"suyuan": "urn:suyuan:export#"},
    ]
    assert out[0] == made["epcisBody"]["eventList"][0]
    assert rdf(got["@context"], out[:1]) == rdf(made["@context"], made["epcisBody"]["eventList"])
    assert rdf(got["@context"], out[1:]) == rdf(shipped["@context"], shipped["epcisBody"]["eventList"])
    nquads = rdf(got["@context"], out)
    assert "<https://maker.example/ns/grade>" in nquads
    assert '"1.5"^^<http://www.w3.org/2001/XMLSchema#decimal>' in nquads
    assert "<https://carrier.example/seal/seal>" in nquads
    # What the carrier signed comes back by putting the signed context in place of the added.
    entry = got["suyuan:entries"][1]
    assert entry["seq"] == second.events[0].seq
    assert entry["signedContext"] == {"own": "https://carrier.example/seal/"}
    restored = {**out[1], "@context": entry["signedContext"]}
    assert rfc8785.dumps(restored) == rfc8785.dumps(shipped["epcisBody"]["eventList"][0])

    # XML: each event's extension elements in the namespace its own document gave them.
    root = etree.fromstring(export_xml(world.store, CODE))
    assert root.find(".//{https://maker.example/ns/}grade") is not None
    assert root.find(".//{https://carrier.example/ns/}weight").text == "1.5"


def test_a_typed_term_of_one_document_does_not_type_anothers_value(world: World) -> None:
    """Both bind ``rail`` alike; only the first types ``rail:trainAxleCount``. The second's
    value stays a plain string, as in its own document."""
    maker, mk = world.register(["producer"])
    carrier, ck = world.register(["logistics"])
    typed = [
        EPCIS_CONTEXT,
        {"rail": "urn:gs1:epcisapp:rail:", "rail:trainAxleCount": {"@type": "xsd:integer"}},
    ]
    plain = [EPCIS_CONTEXT, {"rail": "urn:gs1:epcisapp:rail:"}]
    a = _document(
        typed, _event("2026-11-27T13:05:00+08:00", "commissioning", **{"rail:trainAxleCount": "12"})
    )
    b = _document(plain, _event("2026-11-28T09:00:00+08:00", "shipping", **{"rail:trainAxleCount": "12"}))
    import_epcis(world.ledger, a, signer=maker, key=mk)
    import_epcis(world.ledger, b, signer=carrier, key=ck)
    got = export_document(world.store, CODE)
    out = got["epcisBody"]["eventList"]
    assert out[1]["@context"] == [
        {"rail": "urn:gs1:epcisapp:rail:"},
        {"rail:trainAxleCount": {"@id": "urn:gs1:epcisapp:rail:trainAxleCount"}},
    ]
    assert rdf(got["@context"], out[:1]) == rdf(typed, a["epcisBody"]["eventList"])
    assert rdf(got["@context"], out[1:]) == rdf(plain, b["epcisBody"]["eventList"])
    assert '"12"^^<http://www.w3.org/2001/XMLSchema#integer>' in rdf(got["@context"], out[:1])
    assert "XMLSchema#integer" not in rdf(got["@context"], out[1:])


def test_a_remote_context_reaches_only_its_own_events(world: World) -> None:
    """A context named by IRI is re-emitted by its IRI, never fetched by the ledger; since
    what it defines is not known here, its events carry it themselves unless every event of
    the export has the same context."""
    maker, mk = world.register(["producer"])
    carrier, ck = world.register(["logistics"])
    a = _document(
        [EPCIS_CONTEXT, REMOTE], _event("2026-11-27T13:05:00+08:00", "commissioning", **{"ext:grade": "A"})
    )
    b = _document(
        [EPCIS_CONTEXT, {"ext": "https://carrier.example/ns/"}],
        _event("2026-11-28T09:00:00+08:00", "shipping", **{"ext:weight": "1.5", "ext:grade": "B"}),
    )
    import_epcis(world.ledger, a, signer=maker, key=mk)
    alone = export_document(world.store, CODE)
    assert alone["@context"] == [EPCIS_CONTEXT, REMOTE, {"suyuan": "urn:suyuan:export#"}]
    assert alone["epcisBody"]["eventList"] == a["epcisBody"]["eventList"]
    import_epcis(world.ledger, b, signer=carrier, key=ck)
    got = export_document(world.store, CODE)
    out = got["epcisBody"]["eventList"]
    assert REMOTE not in got["@context"] and out[0]["@context"] == [{"ext": None}, REMOTE]
    assert rdf(got["@context"], out[:1]) == rdf(a["@context"], a["epcisBody"]["eventList"])
    assert rdf(got["@context"], out[1:]) == rdf(b["@context"], b["epcisBody"]["eventList"])
    assert "maker.example" not in rdf(got["@context"], out[1:])
    assert '"A"^^<http://www.w3.org/2001/XMLSchema#token>' in rdf(got["@context"], out[:1])


def test_another_partys_record_cannot_change_what_an_event_means(world: World) -> None:
    """A party that signs a document record naming someone else's event, even with the same
    issued time, gives it no context: the record must be its signer's own."""
    maker, mk = world.register(["producer"])
    other, ok = world.register(["producer"])
    made = _document(
        [EPCIS_CONTEXT, {"ext": "https://maker.example/ns/"}],
        _event("2026-11-27T13:05:00+08:00", "commissioning", **{"ext:grade": "A"}),
    )
    done = import_epcis(world.ledger, made, signer=maker, key=mk)
    issued = world.ledger.entry(done.events[0].seq).decoded()["envelope"]["statement"]["issued"]
    forged = {
        **document_record(made, made["epcisBody"]["eventList"]),
        "context": [EPCIS_CONTEXT, {"ext": "https://attacker.example/"}],
    }
    world.ledger.append(sign_one(kind="document", signer=other, key=ok, body=forged, issued=issued))
    got = export_document(world.store, CODE)
    assert rdf(got["@context"], got["epcisBody"]["eventList"]) == rdf(
        made["@context"], made["epcisBody"]["eventList"]
    )
    assert "attacker" not in json.dumps(got["@context"])


def test_importing_an_event_again_in_another_context_does_not_change_it(world: World) -> None:
    """The event's meaning is the one its entry was signed with; the second document (whose
    events are not appended again) is recorded, and named, but gives it no context."""
    maker, mk = world.register(["producer"])
    event = _event("2026-11-27T13:05:00+08:00", "commissioning", **{"ext:grade": "A"})
    first = _document([EPCIS_CONTEXT, {"ext": "https://maker.example/ns/"}], event)
    again = _document([EPCIS_CONTEXT, {"ext": "https://elsewhere.example/"}], event)
    done = import_epcis(world.ledger, first, signer=maker, key=mk)
    later = import_epcis(world.ledger, again, signer=maker, key=mk)
    assert later.events[0].duplicate_of == done.events[0].seq
    got = export_document(world.store, CODE)
    assert got["suyuan:entries"][0]["documents"] == [done.document.seq, later.document.seq]
    assert rdf(got["@context"], got["epcisBody"]["eventList"]) == rdf(first["@context"], [event])
    assert "elsewhere" not in json.dumps(got["@context"])


def test_a_documents_own_context_field_is_not_taken_for_its_context(world: World) -> None:
    maker, mk = world.register(["producer"])
    doc = {
        **_document(
            [EPCIS_CONTEXT, {"ext": "https://maker.example/ns/"}],
            _event("2026-11-27T13:05:00+08:00", "commissioning", **{"ext:grade": "A"}),
        ),
        "context": [EPCIS_CONTEXT, {"ext": "https://attacker.example/"}],
    }
    done = import_epcis(world.ledger, doc, signer=maker, key=mk)
    record = world.ledger.entry(done.document.seq).decoded()["envelope"]["statement"]["body"]
    assert record["context"] == doc["@context"]


@pytest.mark.parametrize("context", [5, [], [EPCIS_CONTEXT, 7]])
def test_a_record_whose_context_is_not_a_jsonld_context_is_refused(
    world: World, tmp_path: Path, context: Any
) -> None:
    maker, mk = world.register(["producer"])
    doc = _document([EPCIS_CONTEXT], _event("2026-11-27T13:05:00+08:00", "commissioning"))
    record = {**document_record(doc, doc["epcisBody"]["eventList"]), "context": context}
    path = tmp_path / "record.json"
    path.write_text(json.dumps([sign_one(kind="document", signer=maker, key=mk, body=record)]))
    size = world.ledger.size()
    proc = subprocess.run(
        [sys.executable, "-m", "tools.cli", "submit", str(path)],
        cwd=REPO,
        env={"SUYUAN_DB": world.url, "SUYUAN_HOME": str(world.home.path), "PATH": os.environ.get("PATH", "")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("error [")
    assert "a document record's context is the document's JSON-LD @context" in proc.stderr
    assert world.ledger.size() == size


# --- entries signed before contexts were kept ----------------------------------------------


def test_events_without_a_kept_context_are_exported_as_before(world: World) -> None:
    """An event imported before records kept contexts (its record has none), or submitted
    as a statement: each unknown prefix is bound to urn:suyuan:ext:<prefix>#, as it always
    was, and the events beside it keep their own meanings."""
    doc = load("Example_9.6.1-ObjectEvent.jsonld")
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    # The import of before this change: the same batch, a record without its context.
    issued = now_rfc3339()
    old_record = document_record({k: v for k, v in doc.items() if k != "@context"}, events)
    assert "context" not in old_record
    world.ledger.append_batch(
        [
            *(sign_one(kind="event", signer=party, key=key, body=e, issued=issued) for e in events),
            sign_one(kind="document", signer=party, key=key, body=old_record, issued=issued),
        ]
    )
    got = export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    assert got["@context"] == [
        EPCIS_CONTEXT,
        {"example": "urn:suyuan:ext:example#"},
        {"suyuan": "urn:suyuan:export#"},
    ]
    assert got["epcisBody"]["eventList"] == events
    assert rdf(got["@context"], events) == rdf(
        [EPCIS_CONTEXT, {"example": "urn:suyuan:ext:example#"}], events
    )
    # The same document imported now: its events are repeats, which keep their entries'
    # meaning; its record (with its context) is new, and named beside them.
    again = import_epcis(world.ledger, doc, signer=party, key=key)
    assert all(r.duplicate_of is not None for r in again.events)
    got = export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    assert got["@context"][1] == {"example": "urn:suyuan:ext:example#"}
    assert got["suyuan:entries"][0]["documents"][-1] == again.document.seq

    # A new import of another party's event with example bound to GS1's namespace beside it.
    other, ok = world.register(["logistics"])
    new = copy.deepcopy(doc)
    new["epcisBody"]["eventList"] = [{**events[1], "eventTime": "2005-04-05T20:33:31.116-06:00"}]
    import_epcis(world.ledger, new, signer=other, key=ok)
    got = export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    out = got["epcisBody"]["eventList"]
    assert rdf(got["@context"], out[:2]) == rdf(
        [EPCIS_CONTEXT, {"example": "urn:suyuan:ext:example#"}], events
    )
    assert rdf(got["@context"], out[2:]) == rdf(new["@context"], new["epcisBody"]["eventList"])


# --- XML -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", XML_EXAMPLES)
def test_xml_imported_events_keep_the_meaning_their_json_form_gives_them(world: World, name: str) -> None:
    """An XML event's context is the document's: GS1's context and, for each XML namespace
    of its extension elements, a prefix bound to it (with a trailing ``/`` where it had
    none). That is kept as any JSON document's context is."""
    doc = epcis_xml.parse((STANDARD / name).read_bytes(), source=name)
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    done = import_epcis(world.ledger, doc, signer=party, key=key, media_type="application/xml")
    together = events_in_context(world.store, [r.seq for r in done.events])
    assert together.events == events
    assert rdf(together.context, together.events) == rdf(doc["@context"], events)


def test_the_9_6_1_xml_and_its_json_twin_mean_the_same(world: World) -> None:
    """GS1's twin adds eventIDs and writes one time with microseconds: without those, the
    exports of the XML and of the JSON give one graph."""
    x = epcis_xml.parse((STANDARD / "xml-Example_9.6.1-ObjectEvent-2020_06_18a.xml").read_bytes())
    j = load("Example_9.6.1-ObjectEvent.jsonld")
    for e in j["epcisBody"]["eventList"]:
        del e["eventID"]
        e["eventTime"] = e["eventTime"].replace("31.116000-", "31.116-")
    for e in x["epcisBody"]["eventList"]:
        e["eventTime"] = e["eventTime"].replace("31.116000-", "31.116-")
    px, kx = world.register(roles_for(x["epcisBody"]["eventList"]))
    pj, kj = world.register(roles_for(j["epcisBody"]["eventList"]))
    dx = import_epcis(world.ledger, x, signer=px, key=kx, media_type="application/xml")
    dj = import_epcis(world.ledger, j, signer=pj, key=kj)
    a = events_in_context(world.store, [r.seq for r in dx.events])
    b = events_in_context(world.store, [r.seq for r in dj.events])
    assert rdf(a.context, a.events) == rdf(b.context, b.events)


# --- the CBEC vocabulary -------------------------------------------------------------------


def test_cbec_terms_keep_the_meaning_the_cbec_vocabulary_gives_them(world: World) -> None:
    """The demo's events are signed as statements, with no document context: the ledger reads
    ``cbec:`` as its CBEC vocabulary does (schemas/cbec-vocabulary.jsonld), so the members of
    ``cbec:orderInfo`` and the like are CBEC terms too, and an export says so."""
    chain = build(world)
    got = export_document(world.store, ITEM.format(1))
    out = got["epcisBody"]["eventList"]
    seqs = [e["seq"] for e in got["suyuan:entries"]]
    assert seqs and out == signed_bodies(world, seqs)
    assert rdf(got["@context"], out) == rdf([EPCIS_CONTEXT, VOCABULARY["@context"]], out)
    nquads = rdf(got["@context"], out)
    assert "<https://suyuan.example/cbec#orderInfo>" in nquads
    assert "<https://suyuan.example/cbec#paid>" in nquads
    assert "<https://suyuan.example/cbec#customsProcedure>" in nquads
    assert chain.seqs["order1"] in seqs


def test_a_document_binding_cbec_reads_it_as_the_ledger_does(world: World) -> None:
    """A document that binds ``cbec`` to the CBEC namespace (schemas/README.md) is read with the
    CBEC vocabulary's terms before its own context: its events mean what the ledger takes
    them to mean, and its own bindings still win."""
    party, key = world.register(["platform"])
    order = {
        "type": "TransactionEvent",
        "eventTime": "2026-11-27T13:02:11+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "ADD",
        "epcList": [CODE],
        "bizTransactionList": [{"type": "cbec:order", "bizTransaction": "https://mall.example.cn/orders/O1"}],
        "cbec:orderInfo": {
            "goods": "298.00",
            "freight": "10.00",
            "tax": "28.03",
            "discount": "20.00",
            "paid": "316.03",
            "currency": "CNY",
            "buyerIdHash": "hmac-sha256:" + "ab" * 32,
        },
    }
    context = [EPCIS_CONTEXT, {"cbec": "https://suyuan.example/cbec#"}]
    import_epcis(world.ledger, _document(context, order), signer=party, key=key)
    got = export_document(world.store, CODE)
    assert got["epcisBody"]["eventList"] == [order]
    assert rdf(got["@context"], [order]) == rdf([EPCIS_CONTEXT, VOCABULARY["@context"], context[1]], [order])
    assert "<https://suyuan.example/cbec#paid>" in rdf(got["@context"], [order])


def test_the_hash_of_an_event_does_not_depend_on_the_kept_context(world: World) -> None:
    """The event hash is computed from the signed body, as before contexts were kept: the
    capture index, the record's list and the export agree."""
    doc = load("Example_9.6.1-ObjectEvent.jsonld")
    events = doc["epcisBody"]["eventList"]
    party, key = world.register(roles_for(events))
    done = import_epcis(world.ledger, doc, signer=party, key=key)
    got = export_document(world.store, "urn:epc:id:sgtin:0614141.107346.2018")
    assert [e["eventHash"] for e in got["suyuan:entries"]] == [event_hash(e) for e in events]
    record = world.ledger.entry(done.document.seq).decoded()["envelope"]["statement"]["body"]
    assert record["events"] == [event_hash(e) for e in events]
