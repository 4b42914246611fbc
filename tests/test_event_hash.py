"""The CBV 2.0 event hash: known answers of the reference implementation on GS1's examples,
the same hash for every spelling of one event, and a different one for any change."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.errors import MalformedInput
from ledger.epcis import event_hash as eh
from ledger.epcis import xml as epcis_xml
from ledger.epcis.event_hash import (
    canonical_identifier,
    check_document_record,
    event_hash,
    normalise,
    pre_hash,
    timestamp,
)
from tests.test_times import EVENT_TIMES

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


# --- the caches and fast paths give what the plain rules give ---------------------------------


def _plain_number(text: str) -> str:
    """Rule 9 as first written: whatever float() reads, in its shortest form."""
    try:
        f = float(text)
    except ValueError:
        return text
    if not math.isfinite(f):
        return text
    return str(int(f)) if f == int(f) else repr(f)


def _plain_normalise(value: object, key: str, vocab: bool, namespaces: Mapping[str, str]) -> str:
    """``normalise`` as first written: no cache, no fast path."""
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, int | float):
        text = _plain_number(repr(value))
    else:
        text = str(value).strip()
    if not text:
        return ""
    low = key.lower()
    if "time" in low and "offset" not in low:
        ts = timestamp(text)
        if ts is not None:
            return ts
    if vocab:
        if text in eh.vocabulary():
            return eh.vocabulary()[text]
        text = eh.expand_curie(text, namespaces)
    for old, new in eh._OLD_CBV:
        if text.startswith(old):
            text = new + text[len(old) :]
            break
    text = _plain_number(text)
    return canonical_identifier(text) or text


_PAD = st.sampled_from(["", " ", "\t", "\n", "\u3000", "/", "?x=1", "#f"])
_ITEM_LINKS = st.builds(
    lambda pre, host, gtin, serial, post: f"{pre}https://{host}/01/{gtin}/21/{serial}{post}",
    _PAD,
    st.sampled_from(["id.gs1.org", "id.gs1.org.example", "ID.GS1.ORG", "brand.example"]),
    st.one_of(
        st.from_regex(r"[0-9]{14}", fullmatch=True),
        st.from_regex(r"[0-9\uff10-\uff19]{8,15}", fullmatch=True),
    ),
    st.one_of(st.from_regex(r"[!-~]{1,22}", fullmatch=True), st.text(max_size=22)),
    _PAD,
)
_WORDS = st.sampled_from(
    [
        "shipping",
        "in_transit",
        "po",
        "Temperature",
        "cbv:BizStep-shipping",
        "gs1:Temperature",
        "ex:step",
        "cbec:recalling",
        "urn:epcglobal:cbv:bizstep:shipping",
        "urn:epcglobal:cbv:disp:in_progress",
        "urn:epcglobal:cbv:btt:po",
        "urn:epcglobal:cbv:bt:0614141073467:1152",
        "urn:epc:id:sgtin:0614141.107346.2017",
        "urn:epc:class:lgtin:4012345.012345.998877",
        "https://id.gs1.org/414/9520123456788",
        "https://example.com/01/9506000134352/10/L1/21/S1?x=1",
        "2026-11-27T13:05:00.1235+08:00",
        "2026-11-27T13:05:00Z",
        "0999-01-01T00:00:00Z",
        "+08:00",
        "ADD",
    ]
)
_NUMBERISH = st.one_of(
    st.from_regex(r"\s*[+-]?[0-9_.]{0,6}([eE][+-]?[0-9_]{0,3})?\s*", fullmatch=True),
    st.sampled_from(
        ["inf", "-Infinity", "nAn", "+nan", "١٢٣", "\u0663.5", "1_000", ".5", "5.", "0x10", "i", "n"]
    ),
)
_SCALARS = st.one_of(
    _ITEM_LINKS,
    _WORDS,
    _NUMBERISH,
    st.text(max_size=30),
    st.integers(-(2**60), 2**60),
    st.floats(),
    st.booleans(),
)
_KEYS = st.sampled_from(
    ["epc", "id", "eventTime", "eventTimeZoneOffset", "bizStep", "example:startTime", "ex:x"]
)
_NAMESPACES = st.sampled_from(
    [
        eh.STANDARD_NAMESPACES,
        {**eh.STANDARD_NAMESPACES, "ex": "https://ex.example/ns#"},
        {**eh.STANDARD_NAMESPACES, "cbv": "https://other.example/", "https": "urn:odd:"},
    ]
)


@settings(max_examples=600, deadline=None)
@given(st.one_of(st.text(max_size=40), _NUMBERISH, _WORDS, _ITEM_LINKS))
def test_the_number_rule_skips_float_only_for_texts_float_refuses(text: str) -> None:
    assert eh._number(text) == _plain_number(text)


@settings(max_examples=1500, deadline=None)
@given(_SCALARS, _KEYS, st.booleans(), _NAMESPACES)
def test_normalise_with_its_caches_is_the_plain_rule(
    value: object, key: str, vocab: bool, namespaces: Mapping[str, str]
) -> None:
    # Hypothesis repeats values under other keys, flags and namespaces, so a cache keyed
    # by too little would answer with another context's result here.
    assert normalise(value, key=key, vocab=vocab, namespaces=namespaces) == _plain_normalise(
        value, key, vocab, namespaces
    )


def test_one_text_in_different_fields_keeps_each_fields_meaning() -> None:
    when = "2026-11-27T13:05:00+08:00"
    assert normalise(when, key="eventTime") == "2026-11-27T05:05:00.000Z"
    assert normalise(when, key="example:note") == when  # not a time field: as written
    assert normalise(when, key="example:startTime") == "2026-11-27T05:05:00.000Z"
    assert normalise(when, key="eventTime") == "2026-11-27T05:05:00.000Z"
    assert normalise("shipping", key="bizStep", vocab=True) == eh.CBV + "BizStep-shipping"
    assert normalise("shipping", key="example:x") == "shipping"
    assert normalise("shipping", key="bizStep", vocab=True) == eh.CBV + "BizStep-shipping"
    declared = {**eh.STANDARD_NAMESPACES, "cbv": "https://other.example/"}
    assert normalise("cbv:X", vocab=True) == eh.CBV + "X"
    assert normalise("cbv:X", vocab=True, namespaces=declared) == "https://other.example/X"
    assert normalise("cbv:X", vocab=True) == eh.CBV + "X"


def test_a_prefix_means_what_each_events_context_says() -> None:
    event = {"type": "ObjectEvent", "action": "OBSERVE", "bizStep": "ex:step", "ex:note": "ex:step"}
    a = pre_hash(event, context=[{"ex": "https://a.example/"}])
    b = pre_hash(event, context=[{"ex": "https://b.example/"}])
    plain = pre_hash(event)
    assert (
        a
        == "eventType=ObjectEventaction=OBSERVEbizStep=https://a.example/step{https://a.example/}note=ex:step"
    )
    assert (
        b
        == "eventType=ObjectEventaction=OBSERVEbizStep=https://b.example/step{https://b.example/}note=ex:step"
    )
    assert plain == "eventType=ObjectEventaction=OBSERVEbizStep=ex:stepex:note=ex:step"
    assert pre_hash(event, context=[{"ex": "https://a.example/"}]) == a


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(_ITEM_LINKS, _WORDS, st.integers(0, 3)), min_size=1, max_size=4))
def test_an_epc_list_of_item_links_hashes_as_each_link_normalises(epcs: list[object]) -> None:
    std = eh.STANDARD_NAMESPACES
    event = {"type": "ObjectEvent", "epcList": epcs, "ex:x": epcs[0]}
    texts = sorted(f"epc={t}" if (t := _plain_normalise(e, "epc", False, std)) else "" for e in epcs)
    other = _plain_normalise(epcs[0], "ex:x", False, std)
    want = "eventType=ObjectEventepcList" + "".join(texts) + (f"ex:x={other}" if other else "ex:x")
    assert pre_hash(event) == want


def test_long_texts_are_hashed_alike_and_stay_out_of_the_caches() -> None:
    """A statement may carry 1 MiB: caches keyed by such texts would hold gigabytes, so a
    text longer than an identifier may be (300 characters) is normalised each time."""
    caches = (
        eh._normalise_standard,
        eh._cached_text_field,
        eh._cached_timestamp,
        eh._cached_canonical_identifier,
    )
    long_time = "2026-11-27T13:05:00." + "1" * 400 + "+08:00"
    long_link = "https://id.gs1.org/01/09506000134352/10/L1/21/" + "7" * 400 + "?x=1"
    event = {
        "type": "ObjectEvent",
        "eventTime": long_time,
        "bizStep": "ex:" + "s" * 400,
        "epcList": [long_link],
        "ex:" + "k" * 400 + "Time": long_time,
        "ex:note": "n" * 5000,
    }
    before = [c.cache_info().currsize for c in caches]
    got = pre_hash(event, context=[{"ex": "https://ex.example/"}])
    assert [c.cache_info().currsize for c in caches] == before
    assert got.startswith("eventType=ObjectEventeventTime=2026-11-27T05:05:00.111Z")
    assert "epcList" + "epc=https://id.gs1.org/01/09506000134352/21/" + "7" * 400 in got
    assert "bizStep=https://ex.example/" + "s" * 400 in got
    assert "{https://ex.example/}" + "k" * 400 + "Time=2026-11-27T05:05:00.111Z" in got
    assert got.endswith("{https://ex.example/}note=" + "n" * 5000)


_URNS = st.one_of(
    st.builds(
        lambda scheme, rest, pad: f"urn:{scheme}{rest}{pad}",
        st.sampled_from(
            [
                "suyuan:order:",
                "uuid:",
                "epc:id:sgtin:",
                "epcglobal:cbv:btt:",
                "epcx:",
                "ep",
                "",
                "EPC:",
                "Urn:",
            ]
        ),
        st.one_of(
            st.from_regex(r"[!-~]{0,30}", fullmatch=True),
            st.text(max_size=20),
            st.sampled_from(_WORDS.elements),
        ),
        _PAD,
    ),
    _WORDS,
)


def _plain_field(name: str, value: str, vocab: bool) -> tuple[str, str]:
    """The field as the plain rule writes it, or the error it raises."""
    try:
        text = _plain_normalise(value, name, vocab, eh.STANDARD_NAMESPACES)
    except OverflowError as e:  # a time outside the years 1 to 9999 in UTC
        return ("OverflowError", str(e))
    return ("field", f"{name}={text}" if text else "")


def _field_outcome(name: str, value: str, vocab: bool) -> tuple[str, str]:
    try:
        return ("field", eh._text_field(name, value, vocab))
    except OverflowError as e:
        return ("OverflowError", str(e))


@settings(max_examples=1500, deadline=None)
@given(
    st.one_of(_URNS, EVENT_TIMES),
    st.sampled_from(["bizTransaction", "source", "id", "eventTime", "example:startTime", "ex:x", "type"]),
    st.booleans(),
)
def test_a_text_field_is_written_as_the_plain_rule_writes_it(value: str, name: str, vocab: bool) -> None:
    """_text_field writes a URN of no EPC scheme, and a time of the common shape, past
    normalise's caches; what it gives is the field as the plain rule writes it, for every
    name and flag."""
    assert _field_outcome(name, value, vocab) == _plain_field(name, value, vocab)


@settings(max_examples=800, deadline=None)
@given(_URNS, st.sampled_from(["bizTransaction", "source", "destination"]))
def test_a_plain_urn_in_a_list_is_written_as_the_rule_writes_it(value: str, name: str) -> None:
    """In a business transaction, source or destination list, where such URNs are."""
    body = {
        "type": "ObjectEvent",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "action": "OBSERVE",
        f"{name}List": [{"type": "po", name: value}],
    }
    _, field = _plain_field(name, value, False)
    assert eh.pre_hash(body).endswith(f"{name}List" + eh._text_field("type", "po", True) + field)


@settings(max_examples=800, deadline=None)
@given(st.one_of(EVENT_TIMES, _WORDS, st.text(max_size=30)))
def test_an_event_time_is_written_as_the_plain_rule_writes_it(value: str) -> None:
    """The event's hash carries its time as the plain rule writes it, the first time and
    from the cache alike; a time outside the years 1 to 9999 in UTC is refused."""
    body = {"type": "ObjectEvent", "eventTime": value, "eventTimeZoneOffset": "+08:00", "action": "OBSERVE"}
    kind, field = _plain_field("eventTime", value, False)
    for _ in range(2):  # worked out, then from the field cache
        if kind == "OverflowError":
            with pytest.raises(OverflowError):
                eh.pre_hash(body)
        else:
            assert eh.pre_hash(body).startswith("eventType=ObjectEvent" + field + "eventTimeZoneOffset=")
