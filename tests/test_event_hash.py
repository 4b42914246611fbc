"""The CBV 2.0 event hash: known answers of the reference implementation on GS1's examples,
the same hash for every spelling of one event, and a different one for any change."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledger.core.errors import MalformedInput
from ledger.epcis import xml as epcis_xml
from ledger.epcis.event_hash import (
    canonical_identifier,
    check_document_record,
    event_hash,
    pre_hash,
    timestamp,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
KNOWN: dict[str, list[dict[str, str]]] = json.loads(
    (FIXTURES / "event-hash" / "reference-1.9.3.json").read_text(encoding="utf-8")
)


def _document(name: str) -> dict[str, Any]:
    path = FIXTURES / name
    if path.suffix == ".xml":
        return epcis_xml.parse(path.read_bytes(), source=name)
    doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return doc


@pytest.mark.parametrize("name", sorted(KNOWN))
def test_known_answers_of_the_reference_implementation(name: str) -> None:
    doc = _document(name)
    events = doc["epcisBody"]["eventList"]
    assert len(events) == len(KNOWN[name])
    for event, want in zip(events, KNOWN[name], strict=True):
        assert pre_hash(event, context=doc["@context"]) == want["preHash"]
        assert event_hash(event, context=doc["@context"]) == want["hash"]


def test_the_reference_implementation_agrees_where_it_runs() -> None:
    """Run the reference itself (a test dependency) on the examples: the stored answers are
    its answers, not a copy of ours."""
    pytest.importorskip("epcis_event_hash_generator")
    for name, want in KNOWN.items():
        out = subprocess.run(
            [sys.executable, "-m", "epcis_event_hash_generator", str(FIXTURES / name)],
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        ).stdout
        assert [line for line in out.splitlines() if line.startswith("ni:")] == [w["hash"] for w in want]


BASE: dict[str, Any] = {
    "type": "ObjectEvent",
    "eventTime": "2026-11-27T13:05:00.000+08:00",
    "eventTimeZoneOffset": "+08:00",
    "action": "OBSERVE",
    "bizStep": "shipping",
    "epcList": ["urn:epc:id:sgtin:0614141.107346.2017", "urn:epc:id:sgtin:0614141.107346.2018"],
    "readPoint": {"id": "urn:epc:id:sgln:0614141.07346.1234"},
    "bizTransactionList": [{"type": "po", "bizTransaction": "urn:epc:id:gdti:0614141.00001.1618034"}],
    "cbec:procedure": "1210",
}


def test_every_spelling_of_one_event_has_one_hash() -> None:
    h = event_hash(BASE)
    same = copy.deepcopy(BASE)
    same["eventTime"] = "2026-11-27T05:05:00Z"  # the same instant in UTC, no milliseconds
    same["epcList"] = [
        "https://id.gs1.org/01/10614141073464/21/2018",  # reordered, as links
        "https://example.com/01/10614141073464/21/2017?linkType=all",
    ]
    same["bizStep"] = "urn:epcglobal:cbv:bizstep:shipping"
    same["readPoint"] = {"id": "https://id.gs1.org/414/0614141073467/254/1234"}
    same["bizTransactionList"] = [
        {"type": "urn:epcglobal:cbv:btt:po", "bizTransaction": "https://id.gs1.org/253/06141410000121618034"}
    ]
    same["eventID"] = "urn:uuid:6f1f7f36-6b8e-4a38-9d5a-0e4d3b2c1a00"  # not hashed
    same["recordTime"] = "2026-11-28T00:00:00Z"
    reordered = dict(reversed(list(same.items())))
    assert event_hash(same) == event_hash(reordered) == h


@pytest.mark.parametrize(
    "change",
    [
        ("eventTime", "2026-11-27T13:05:00.001+08:00"),
        ("action", "ADD"),
        ("bizStep", "receiving"),
        ("epcList", ["urn:epc:id:sgtin:0614141.107346.2017"]),
        ("readPoint", {"id": "urn:epc:id:sgln:0614141.07346.1235"}),
        ("cbec:procedure", "9610"),
        ("disposition", "in_transit"),
    ],
)
def test_any_change_changes_the_hash(change: tuple[str, Any]) -> None:
    changed = copy.deepcopy(BASE)
    changed[change[0]] = change[1]
    assert event_hash(changed) != event_hash(BASE)


def test_an_error_declaration_keeps_its_events_hash() -> None:
    declared = {
        **BASE,
        "errorDeclaration": {"declarationTime": "2026-12-01T00:00:00Z", "reason": "incorrect_data"},
    }
    assert event_hash(declared) == event_hash(BASE)


@pytest.mark.parametrize(
    "value,want",
    [
        ("2023-01-18T11:04:03.1415Z", "2023-01-18T11:04:03.142Z"),
        ("2023-01-18T11:04:03.1414Z", "2023-01-18T11:04:03.141Z"),
        ("2023-12-31T23:59:59.9996+00:00", "2024-01-01T00:00:00.000Z"),
        ("2005-04-03T20:33:31.116000-06:00", "2005-04-04T02:33:31.116Z"),
        ("2005-04-03T20:33:31-06:00", "2005-04-04T02:33:31.000Z"),
        ("2005-04-03T20:33:31", None),  # no offset: not a timestamp the algorithm can place
        ("2005-02-30T00:00:00Z", None),
    ],
)
def test_timestamps_are_utc_milliseconds_rounded_half_up(value: str, want: str | None) -> None:
    assert timestamp(value) == want


@pytest.mark.parametrize(
    "uri,want",
    [
        ("urn:epc:id:sgtin:0614141.107346.2017", "https://id.gs1.org/01/10614141073464/21/2017"),
        ("urn:epc:id:sscc:0614141.1234567890", "https://id.gs1.org/00/106141412345678908"),
        ("urn:epc:id:sgln:0614141.07346.0", "https://id.gs1.org/414/0614141073467"),
        ("urn:epc:id:pgln:4012345.00225", "https://id.gs1.org/417/4012345002256"),
        ("urn:epc:id:grai:4012345.55555.987", "https://id.gs1.org/8003/04012345555554987"),
        ("urn:epc:id:giai:4000001.111", "https://id.gs1.org/8004/4000001111"),
        ("urn:epc:id:gdti:0614141.00001.1618034", "https://id.gs1.org/253/06141410000121618034"),
        ("urn:epc:id:gsrn:0614141.0000010253", "https://id.gs1.org/8018/061414100000102534"),
        ("urn:epc:class:lgtin:4012345.012345.998877", "https://id.gs1.org/01/04012345123456/10/998877"),
        ("urn:epc:idpat:sgtin:4012345.066666.*", "https://id.gs1.org/01/04012345666663"),
        (
            "https://brand.example/01/9506000134352/10/L1/21/S1?x=1",
            "https://id.gs1.org/01/09506000134352/21/S1",
        ),
        ("https://id.gs1.org/gtin/09506000134352/lot/L1", "https://id.gs1.org/01/09506000134352/10/L1"),
        ("https://example.com/no/gs1/key/here", None),
        ("urn:epc:id:sgtin:0614141.10734.2017", None),  # company prefix + item reference ≠ 13
    ],
)
def test_identifiers_become_constrained_canonical_digital_links(uri: str, want: str | None) -> None:
    assert canonical_identifier(uri) == want


def test_a_document_record_lists_event_hashes_only() -> None:
    good = {"type": "EPCISDocument", "events": [event_hash(BASE)], "sender": "urn:x"}
    check_document_record(good)
    for bad in (
        {**good, "events": ["sha256:00"]},
        {**good, "extra": 1},
        {**good, "type": "Other"},
        {**good, "sender": 5},
    ):
        with pytest.raises(MalformedInput):
            check_document_record(bad)
