"""``statements.prepare`` and the checks behind it, where a short cut stands in for the plain
rule: the spelling check of a signature, the cached verdict on a time text, the key-set
comparison of a statement. Pure: no ledger."""

from __future__ import annotations

import binascii
import copy
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core.errors import MalformedInput
from ledger.core.keys import PartyKey
from ledger.core.statements import check_timestamp, prepare, sign_one
from ledger.epcis.validation import is_event_time, validate_event_body
from tests.support import new_uscc

B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
PARTY = new_uscc()
KEY = PartyKey.from_seed("p", b"\x07" * 32)


def _envelope() -> dict[str, Any]:
    body = {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["https://id.gs1.org/01/09506000134352/21/1"],
    }
    return sign_one(kind="event", signer=PARTY, key=KEY, body=body, issued="2026-11-27T13:05:00+08:00")


def _refusal(envelope: object) -> str | None:
    try:
        prepare(envelope)
    except MalformedInput as e:
        return e.message
    return None


@pytest.mark.parametrize("last", list(B64))
def test_a_signature_has_one_spelling(last: str) -> None:
    """Every 88-character spelling of 64 bytes, by the plain rule: canonical exactly when
    re-encoding the bytes gives the same text."""
    env = _envelope()
    sig = env["signatures"][0]["sig"]
    env["signatures"][0]["sig"] = sig[:85] + last + "=="
    raw = binascii.a2b_base64(env["signatures"][0]["sig"], strict_mode=True)
    canonical = binascii.b2a_base64(raw, newline=False).decode() == env["signatures"][0]["sig"]
    why = _refusal(env)
    if canonical:
        assert why is None
    else:
        assert why == "signature 0 sig is not canonical base64 (stray padding bits)"


@pytest.mark.parametrize(
    "sig,why",
    [
        # 88 characters that decode to 65 and 66 bytes: the length is named, or the spelling.
        ("A" * 86 + "A=", "signature 0 sig must decode to 64 bytes, not 65"),
        ("A" * 86 + "B=", "signature 0 sig is not canonical base64 (stray padding bits)"),
        ("A" * 88, "signature 0 sig must decode to 64 bytes, not 66"),
        ("A" * 84 + "AA=A", "signature 0 sig is not valid base64"),
        ("A" * 85 + "A= ", "signature 0 sig is not valid base64"),
    ],
)
def test_signatures_of_another_length_keep_their_message(sig: str, why: str) -> None:
    env = _envelope()
    env["signatures"][0]["sig"] = sig
    assert _refusal(env) == why


def test_a_second_signature_by_the_same_key_is_refused() -> None:
    env = _envelope()
    env["signatures"].append(copy.deepcopy(env["signatures"][0]))
    assert _refusal(env) == "an envelope may carry only one signature per key"


@pytest.mark.parametrize(
    "drop,add,why",
    [
        (("issued",), {}, "statement is missing issued"),
        (("issued", "key"), {}, "statement is missing issued, key"),
        ((), {"colour": "red"}, "statement has unknown field(s) colour"),
        (("issued",), {"colour": "red"}, "statement is missing issued"),
        ((), {"b": 1, "a": 2}, "statement has unknown field(s) a, b"),
    ],
)
def test_missing_and_unknown_statement_fields_are_named(
    drop: tuple[str, ...], add: dict[str, Any], why: str
) -> None:
    env = _envelope()
    for k in drop:
        del env["statement"][k]
    env["statement"].update(add)
    assert _refusal(env) == why


def test_a_cached_time_verdict_names_each_callers_field() -> None:
    for _ in range(2):  # the second round answers from the cache
        for where in ("statement issued", "prefix.delegate until"):
            with pytest.raises(MalformedInput) as bad_form:
                check_timestamp("2026-11-27T13:05:00", where=where)
            assert bad_form.value.message == (
                f"{where} must be an RFC 3339 time with its offset, like 2026-11-27T13:05:00+08:00"
            )
            with pytest.raises(MalformedInput) as bad_date:
                check_timestamp("2026-02-30T13:05:00+08:00", where=where)
            assert (
                bad_date.value.message == f"{where} '2026-02-30T13:05:00+08:00' is not a real date and time"
            )
            assert check_timestamp("2026-11-27T13:05:00Z", where=where) == "2026-11-27T13:05:00Z"
    for value in (None, 5, ["2026-11-27T13:05:00Z"]):
        with pytest.raises(MalformedInput, match="must be an RFC 3339 time"):
            check_timestamp(value, where="statement issued")


def test_a_cached_event_time_verdict_names_each_field() -> None:
    body: dict[str, Any] = {
        "type": "ObjectEvent",
        "action": "OBSERVE",
        "eventTime": "2026-11-27T13:05:00+08:00",
        "eventTimeZoneOffset": "+08:00",
        "epcList": ["https://id.gs1.org/01/09506000134352/21/1"],
    }
    for _ in range(2):
        for field in ("eventTime", "recordTime"):
            for value, words in (
                ("2026-02-30T13:05:00Z", "'2026-02-30T13:05:00Z' is not a real date and time"),
                ("2026-11-27T13:05Z", "must be an RFC 3339 date-time with seconds"),
            ):
                with pytest.raises(MalformedInput) as e:
                    validate_event_body({**body, field: value})
                assert e.value.message.startswith(f"event body $.{field} {words}")
        validate_event_body({**body, "recordTime": body["eventTime"]})


_TIMES = st.one_of(
    st.from_regex(
        r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,10})?(Z|[+-][0-9]{2}:[0-9]{2})?",
        fullmatch=True,
    ),
    st.text(max_size=30),
)


@settings(max_examples=500, deadline=None)
@given(_TIMES)
def test_the_cached_time_checks_are_the_plain_rules(value: str) -> None:
    import re
    from datetime import datetime

    def real(v: str) -> bool:
        try:
            datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return False
        return True

    rfc3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})$")
    form = rfc3339.match(value) is not None
    try:
        check_timestamp(value, where="w")
        verdict = "ok"
    except MalformedInput as e:
        verdict = "date" if "is not a real date" in e.message else "form"
    assert verdict == ("form" if not form else "ok" if real(value) else "date")
    ascii_form = re.compile(rfc3339.pattern, re.ASCII).match(value) is not None
    assert is_event_time(value) == (ascii_form and real(value))


def test_long_texts_stay_out_of_the_time_caches() -> None:
    from ledger.core import statements
    from ledger.epcis import validation

    caches = (statements._time_problem, validation._cached_time_problem)
    before = [c.cache_info().currsize for c in caches]
    for value in ("2" * 5000, "2026-11-27T13:05:00." + "1" * 300 + "Z"):
        with pytest.raises(MalformedInput, match="must be an RFC 3339 time"):
            check_timestamp(value, where="statement issued")
        assert not is_event_time(value)
    assert [c.cache_info().currsize for c in caches] == before
