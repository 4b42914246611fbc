"""Identifiers against hand-computed known answers, GS1's published EPCIS examples, and
Hypothesis round trips."""

from __future__ import annotations

import json
import re
import string
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.core import ids
from ledger.core.errors import IdentifierError

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "epcis"
GS1 = "https://id.gs1.org"
CSET82 = string.ascii_letters + string.digits + "!\"%&'()*+,-./:;<=>?_"


def refusal(code: str, call: Callable[[str], object] = ids.canonical_code) -> str:
    """The message ``call`` refuses ``code`` with."""
    with pytest.raises(IdentifierError) as caught:
        call(code)
    return caught.value.message


# --- USCC --------------------------------------------------------------------------------

# 91310110666007217T: values 9 1 3 1 0 1 1 0 6 6 6 0 0 7 2 1 7, weights
# 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28:
# 9+3+27+27+0+26+16+0+120+174+150+0+0+168+20+30+196 = 966; 966 mod 31 = 5; 31-5 = 26 = 'T'.
# Its organisation code 66600721 + 7, weights 3 7 9 10 5 8 4 2:
# 18+42+54+0+0+56+8+2 = 180; 180 mod 11 = 4; 11-4 = 7.
# 91350100M000100Y43: M = 21, Y = 30:
# 9+3+27+135+0+26+0+0+420+0+0+0+8+0+0+900+112 = 1640; 1640 mod 31 = 28; 31-28 = 3 = '3'.
# Its organisation code M000100Y + 4 (GB 11714 values M = 22, Y = 34):
# 66+0+0+0+5+0+0+68 = 139; 139 mod 11 = 7; 11-7 = 4.
USCC_KNOWN = ["91310110666007217T", "91350100M000100Y43"]
# The ends of both rules. Organisation code 66600725 + X: 18+42+54+0+0+56+8+10 = 188,
# 188 mod 11 = 1, 11-1 = 10 -> 'X'; 6660072A + 0: 18+42+54+0+0+56+8+20 = 198, mod 11 = 0,
# 11-0 = 11 -> '0'. USCC check characters '0' (31 -> 0) and 'Y' (30), from the
# re-implementation in test_uscc_inner_check_agrees_with_a_plain_reimplementation.
USCC_EDGES = ["9131011066600725X3", "913101106660072A0E", "913101106660072090", "913101106660070G7Y"]


@pytest.mark.parametrize("code", USCC_KNOWN + USCC_EDGES)
def test_uscc_known_answers(code: str) -> None:
    assert ids.validate_uscc(code) == code
    assert ids.uscc_check_char(code[:17]) == code[17]
    assert ids.org_code_check_char(code[8:16]) == code[16]
    assert ids.make_uscc(code[:16]) == code
    assert ids.make_uscc(code[:17]) == code


@pytest.mark.parametrize("code", USCC_KNOWN)
def test_uscc_every_single_character_corruption_is_refused_naming_the_expected_char(
    code: str,
) -> None:
    tried = 0
    for i in range(18):
        for c in ids.USCC_CHARSET:
            if c == code[i]:
                continue
            bad = code[:i] + c + code[i + 1 :]
            message = refusal(bad, ids.validate_uscc)
            if 2 <= i <= 7 and not c.isdigit():
                assert "at positions 3-8, where the GB/T 2260 region code" in message
            else:
                expected = ids.uscc_check_char(bad[:17])
                assert message == f"USCC {bad} has check character {bad[17]}; expected {expected}"
            tried += 1
    assert tried == 18 * 30


def test_uscc_whose_organisation_code_check_fails_is_refused() -> None:
    # The example: the 18th character is right, the 17th is not.
    assert ids.uscc_check_char("91737249R62AMHU00") == "5"
    assert refusal("91737249R62AMHU005", ids.validate_uscc) == (
        "USCC 91737249R62AMHU005 has organisation code R62AMHU00, whose check character "
        "(position 17) is 0; GB 11714 gives 9"
    )
    assert "GB 11714 gives 9" in refusal("uscc:91737249R62AMHU005", ids.parse_party_id)
    fixed = ids.make_uscc("91737249R62AMHU0")
    assert fixed[:17] == "91737249R62AMHU09" and ids.validate_uscc(fixed) == fixed
    assert "gives 9" in refusal("91737249R62AMHU00", ids.make_uscc)


def test_uscc_in_lower_case_is_refused_with_the_upper_case_form() -> None:
    message = refusal("91350100m000100y43", ids.validate_uscc)
    assert "lower-case" in message and "91350100M000100Y43" in message


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("91310110666007217", "has 17 characters; it needs 18"),
        ("91310110666007217TT", "has 19 characters; it needs 18"),
        ("9131011066600721IT", "'I' at position 17"),
        ("O1310110666007217T", "'O' at position 1"),
        ("9131A110666007217T", "'31A110' at positions 3-8"),
        ("", "has 0 characters"),
    ],
)
def test_uscc_bad_forms(code: str, fragment: str) -> None:
    assert fragment in refusal(code, ids.validate_uscc)


def test_uscc_check_char_and_make_uscc_need_valid_bodies() -> None:
    assert "it needs 17" in refusal("9131011066600721", ids.uscc_check_char)
    assert "'Z'" in refusal("9131011066600Z21", ids.make_uscc)
    assert "give 16, or 17" in refusal("913101106660072", ids.make_uscc)
    assert "positions 3-8" in refusal("91A1011066600721", ids.make_uscc)


# A USCC body drawn at random: positions 1-2 and 9-16 from the USCC alphabet, 3-8 digits.
USCC_BODIES = st.builds(
    lambda a, region, b: a + region + b,
    st.text(alphabet=ids.USCC_CHARSET, min_size=2, max_size=2),
    st.text(alphabet=string.digits, min_size=6, max_size=6),
    st.text(alphabet=ids.USCC_CHARSET, min_size=8, max_size=8),
)


def plain_org_check(body8: str) -> str:
    """GB 11714 written again from the standard: 0-9 as themselves, A-Z as 10-35."""
    values = [ord(c) - 48 if c <= "9" else ord(c) - 55 for c in body8]
    c = 11 - sum(v * w for v, w in zip(values, [3, 7, 9, 10, 5, 8, 4, 2], strict=True)) % 11
    return {10: "X", 11: "0"}.get(c, str(c))


@given(USCC_BODIES, st.sampled_from(ids.USCC_CHARSET))
def test_uscc_inner_check_agrees_with_a_plain_reimplementation(body: str, c17: str) -> None:
    code17 = body + c17
    code = code17 + ids.uscc_check_char(code17)
    if c17 == plain_org_check(body[8:]):
        assert ids.validate_uscc(code) == code
        assert ids.make_uscc(body) == code
    else:
        assert "GB 11714 gives" in refusal(code, ids.validate_uscc)


@given(USCC_BODIES)
def test_uscc_outer_check_and_format_agree_with_python_stdnum(body: str) -> None:
    # python-stdnum (test-only) checks the 18th character and the form; it does not know the
    # organisation code's check, which the test above covers.
    stdnum_uscc = pytest.importorskip("stdnum.cn.uscc")
    code = ids.make_uscc(body)
    if code[:2].isdigit():  # stdnum also wants digits in positions 1-2, which GB 32100 does not
        assert stdnum_uscc.is_valid(code)
    assert stdnum_uscc.calc_check_digit(code[:17]) == code[17]


@given(USCC_BODIES, st.data())
def test_made_usccs_validate_and_any_single_change_is_refused(body: str, data: st.DataObject) -> None:
    code = ids.make_uscc(body)
    assert ids.validate_uscc(code) == code
    i = data.draw(st.integers(0, 17))
    c = data.draw(st.sampled_from(ids.USCC_CHARSET).filter(lambda c: c != code[i]))
    with pytest.raises(IdentifierError, match="expected|GB/T 2260"):
        ids.validate_uscc(code[:i] + c + code[i + 1 :])


# --- GS1 keys ----------------------------------------------------------------------------

# Each body is weighted 3, 1, 3, ... from its rightmost digit; check = (10 - sum mod 10) mod 10.
GS1_KNOWN = [
    # 0950600013435: 5*3+3+4*3+3+1*3+0+0*3+0+6*3+0+5*3+9+0*3 = 78 -> 2
    ("0950600013435", "2"),
    # 401234500000: 0*3+0+0*3+0+0*3+5+4*3+3+2*3+1+0*3+4 = 31 -> 9
    ("401234500000", "9"),
    # 01234567890: 0*3+9+8*3+7+6*3+5+4*3+3+2*3+1+0*3 = 85 -> 5
    ("01234567890", "5"),
    # 9638507: 7*3+0+5*3+8+3*3+6+9*3 = 86 -> 4
    ("9638507", "4"),
    # 10614141123456789: 9*3+8+7*3+6+5*3+4+3*3+2+1*3+1+4*3+1+4*3+1+6*3+0+1*3 = 143 -> 7
    ("10614141123456789", "7"),
    # 952012345678: 8*3+7+6*3+5+4*3+3+2*3+1+0*3+2+5*3+9 = 102 -> 8
    ("952012345678", "8"),
]


@pytest.mark.parametrize(("body", "digit"), GS1_KNOWN)
def test_gs1_check_digit_known_answers(body: str, digit: str) -> None:
    assert ids.gs1_check_digit(body) == digit


@pytest.mark.parametrize(
    ("code", "gtin14"),
    [
        ("09506000134352", "09506000134352"),
        ("4012345000009", "04012345000009"),  # GTIN-13
        ("012345678905", "00012345678905"),  # GTIN-12 (UPC-A)
        ("96385074", "00000096385074"),  # GTIN-8
    ],
)
def test_gtin_known_answers_pad_to_14_digits(code: str, gtin14: str) -> None:
    assert ids.validate_gtin(code) == gtin14


def test_gtin_with_wrong_check_digit_names_the_expected_digit() -> None:
    assert refusal("09506000134353", ids.validate_gtin) == (
        "GTIN 09506000134353 has check digit 3; expected 2"
    )
    assert refusal("4012345000008", ids.validate_gtin) == ("GTIN 4012345000008 has check digit 8; expected 9")


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("1234567", "has 7 digits; GTINs have 8, 12, 13 or 14"),
        ("095060001343521", "has 15 digits"),
        ("0950600013435x", "only the digits 0-9"),
        ("٠٩٥٠٦٠٠٠١٣٤٣٥٢", "only the digits 0-9"),  # Arabic-Indic digits
        ("", "GTIN is empty"),
    ],
)
def test_gtin_bad_forms(code: str, fragment: str) -> None:
    assert fragment in refusal(code, ids.validate_gtin)


def test_sscc_and_gln_known_answers() -> None:
    assert ids.validate_sscc("106141411234567897") == "106141411234567897"
    assert ids.validate_gln("9520123456788") == "9520123456788"
    assert refusal("106141411234567890", ids.validate_sscc) == (
        "SSCC 106141411234567890 has check digit 0; expected 7"
    )
    assert refusal("9520123456789", ids.validate_gln) == ("GLN 9520123456789 has check digit 9; expected 8")
    assert "has 12 digits; GLNs have 13" in refusal("952012345678", ids.validate_gln)
    assert "has 16 digits; SSCCs have 18" in refusal("1061414112345678", ids.validate_sscc)


@st.composite
def gtins(draw: st.DrawFn) -> str:
    length = draw(st.sampled_from([8, 12, 13, 14]))
    body = draw(st.text(alphabet=string.digits, min_size=length - 1, max_size=length - 1))
    return body + ids.gs1_check_digit(body)


@given(gtins(), st.integers(6, 12), st.text(alphabet=CSET82, min_size=1, max_size=20))
def test_random_gtins_round_trip(gtin: str, prefix_length: int, serial: str) -> None:
    gtin14 = ids.validate_gtin(gtin)
    assert gtin14 == gtin.zfill(14)
    klass = ids.canonical_code(gtin)
    assert klass == f"{GS1}/01/{gtin14}"
    assert ids.parse_digital_link(klass).gtin == gtin14
    assert ids.canonical_code(ids.epc_urn(klass, company_prefix_length=prefix_length)) == klass

    item = ids.DigitalLink("item", gtin=gtin14, serial=serial).canonical
    link = ids.parse_digital_link(item)
    assert (link.kind, link.gtin, link.serial) == ("item", gtin14, serial)
    urn = ids.epc_urn(item, company_prefix_length=prefix_length)
    assert ids.canonical_code(urn) == item


@given(gtins(), st.data())
def test_any_single_digit_change_to_a_gtin_is_refused(gtin: str, data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(gtin) - 1))
    d = data.draw(st.sampled_from(string.digits).filter(lambda d: d != gtin[i]))
    changed = gtin[:i] + d + gtin[i + 1 :]
    with pytest.raises(IdentifierError, match="expected"):
        ids.validate_gtin(changed)
    with pytest.raises(IdentifierError, match="expected"):
        ids.canonical_code(f"https://example.com/01/{changed}")


# --- Party identifiers -------------------------------------------------------------------


@pytest.mark.parametrize("party", ["uscc:91310110666007217T", "gln:9520123456788"])
def test_party_ids_are_returned_unchanged(party: str) -> None:
    assert ids.parse_party_id(party) == party


@pytest.mark.parametrize(
    ("party", "fragment"),
    [
        ("91310110666007217T", "party id must be uscc:<18 characters> or gln:<13 digits>"),
        ("USCC:91310110666007217T", "party id must be uscc:<18 characters> or gln:<13 digits>"),
        ("lei:5493001KJTIIGC8Y1R12", "party id must be uscc:<18 characters> or gln:<13 digits>"),
        ("uscc:91310110666007217X", "has check character X; expected T"),
        ("uscc:91310110666007217t", "upper case: 91310110666007217T"),
        ("gln:9520123456789", "has check digit 9; expected 8"),
    ],
)
def test_bad_party_ids(party: str, fragment: str) -> None:
    assert fragment in refusal(party, ids.parse_party_id)


# --- EPC URN <-> Digital Link ------------------------------------------------------------

# Every URN below occurs in the GS1 fixtures. GTIN and SSCC: the first digit of the URN's
# reference (indicator / extension digit) moves to the front, then comes the company prefix,
# the rest of the reference and a check digit computed as above.
CONVERSIONS = [
    # 1|0614141|07346: 6*3+4+3*3+7+0*3+1+4*3+1+4*3+1+6*3+0+1*3 = 86 -> 4. (The indicator is
    # 1, so the GTIN is 10614141073464, not 00614141073464, whose check digit would be 7.)
    ("urn:epc:id:sgtin:0614141.107346.2017", f"{GS1}/01/10614141073464/21/2017"),
    # 1|0614141|234567890: 0*3+9+8*3+7+6*3+5+4*3+3+2*3+1+4*3+1+4*3+1+6*3+0+1*3 = 132 -> 8
    ("urn:epc:id:sscc:0614141.1234567890", f"{GS1}/00/106141412345678908"),
    # 0|4012345|12345: 5*3+4+3*3+2+1*3+5+4*3+3+2*3+1+0*3+4+0*3 = 64 -> 6
    ("urn:epc:class:lgtin:4012345.012345.998877", f"{GS1}/01/04012345123456/10/998877"),
    # 0|0614141|77777: 7*3+7+7*3+7+7*3+1+4*3+1+4*3+1+6*3+0+0*3 = 122 -> 8 (GS1 publishes
    # this same pair in the two Example_9.6.4 TransformationEvent files)
    ("urn:epc:class:lgtin:0614141.077777.987", f"{GS1}/01/00614141777778/10/987"),
    # 0|4012345|66666: 6*3+6+6*3+6+6*3+5+4*3+3+2*3+1+0*3+4+0*3 = 97 -> 3 (also published)
    ("urn:epc:idpat:sgtin:4012345.066666.*", f"{GS1}/01/04012345666663"),
    # GLN 0614141|07346: 6*3+4+3*3+7+0*3+1+4*3+1+4*3+1+6*3+0 = 83 -> 7; extension 1234
    ("urn:epc:id:sgln:0614141.07346.1234", f"{GS1}/414/0614141073467/254/1234"),
    # GLN 4012345|00001: 1*3+0+0*3+0+0*3+5+4*3+3+2*3+1+0*3+4 = 34 -> 6; extension 0 = none
    ("urn:epc:id:sgln:4012345.00001.0", f"{GS1}/414/4012345000016"),
    # GLN 952005385|011 (9-digit prefix): 1*3+1+0*3+5+8*3+3+5*3+0+0*3+2+5*3+9 = 77 -> 3
    ("urn:epc:id:sgln:952005385.011.ts4711", f"{GS1}/414/9520053850113/254/ts4711"),
    # PGLN 0614141|00777: 7*3+7+7*3+0+0*3+1+4*3+1+4*3+1+6*3+0 = 94 -> 6
    ("urn:epc:id:pgln:0614141.00777", f"{GS1}/417/0614141007776"),
    # GRAI 4012345|55555: 5*3+5+5*3+5+5*3+5+4*3+3+2*3+1+0*3+4 = 86 -> 4; AI 8003 value is
    # a filler 0, the GRAI-13, then the serial 987
    ("urn:epc:id:grai:4012345.55555.987", f"{GS1}/8003/04012345555554987"),
    # GIAI has no check digit: prefix and reference are concatenated (GS1 publishes
    # https://id.gs1.org/8004/4000001111 in SensorDataExample1 for this asset)
    ("urn:epc:id:giai:4000001.111", f"{GS1}/8004/4000001111"),
    # GSRN 0614141|0000010253: 3*3+5+2*3+0+1*3+0+0*3+0+0*3+0+1*3+4+1*3+4+1*3+6+0*3 = 46 -> 4
    ("urn:epc:id:gsrn:0614141.0000010253", f"{GS1}/8018/061414100000102534"),
    # GDTI 0614141|00001: 1*3+0+0*3+0+0*3+1+4*3+1+4*3+1+6*3+0 = 48 -> 2; then serial 1618034
    ("urn:epc:id:gdti:0614141.00001.1618034", f"{GS1}/253/06141410000121618034"),
]


@pytest.mark.parametrize(("urn", "link"), CONVERSIONS)
def test_epc_urn_to_digital_link_known_answers(urn: str, link: str) -> None:
    assert ids.canonical_code(urn) == link
    assert ids.index_key(urn) == link


@pytest.mark.parametrize(("urn", "link"), CONVERSIONS)
def test_epc_urn_round_trips_with_its_company_prefix_length(urn: str, link: str) -> None:
    prefix_length = len(urn.split(":")[4].split(".")[0])
    assert ids.epc_urn(link, company_prefix_length=prefix_length) == urn


@pytest.mark.parametrize(
    ("link", "canonical"),
    [
        # GDTI 4012345|00005: 5*3+0+0*3+0+0*3+5+4*3+3+2*3+1+0*3+4 = 46 -> 4; then serial 987
        ("https://example.com/253/4012345000054987", f"{GS1}/253/4012345000054987"),
        ("https://example.org/8004/401234599999", f"{GS1}/8004/401234599999"),
    ],
)
def test_digital_links_on_other_domains_from_the_fixtures(link: str, canonical: str) -> None:
    assert ids.canonical_code(link) == canonical


def test_the_company_prefix_length_changes_the_urn_not_the_key() -> None:
    link = f"{GS1}/01/10614141073464/21/2017"
    assert ids.epc_urn(link) == "urn:epc:id:sgtin:0614141.107346.2017"
    other = ids.epc_urn(link, company_prefix_length=9)
    assert other == "urn:epc:id:sgtin:061414107.1346.2017"
    assert ids.canonical_code(other) == link


def test_epc_urn_of_an_item_with_a_lot_keeps_gtin_and_serial() -> None:
    link = f"{GS1}/01/10614141073464/10/L1/21/2017"
    assert ids.epc_urn(link) == "urn:epc:id:sgtin:0614141.107346.2017"


@pytest.mark.parametrize(
    ("link", "prefix_length", "fragment"),
    [
        (f"{GS1}/01/09506000134352/22/2A/21/1", 7, "consumer product variant"),
        (f"{GS1}/01/09506000134352", 5, "6 to 12 digits"),
        (f"{GS1}/01/09506000134352", 13, "6 to 12 digits"),
        (f"{GS1}/8003/04012345555554", 7, "GRAI without a serial"),
        (f"{GS1}/253/4012345000054", 7, "GDTI without a serial"),
        (f"{GS1}/8004/4000abc", 7, "7-digit company prefix"),
        (f"{GS1}/8004/4000001", 7, "7-digit company prefix"),
        (f"{GS1}/414/0614141073467/254/0", 7, "extension 0"),
    ],
)
def test_epc_urn_refusals(link: str, prefix_length: int, fragment: str) -> None:
    with pytest.raises(IdentifierError, match=fragment):
        ids.epc_urn(link, company_prefix_length=prefix_length)


def test_serials_are_escaped_per_format() -> None:
    # Digital Link escapes everything outside RFC 3986 "unreserved"; an EPC URN escapes
    # only " % & / < > ? and writes the other CSET 82 characters as they are.
    link = ids.parse_digital_link("/01/09506000134352/21/A%2fB!(x)%25")
    assert link.serial == "A/B!(x)%"
    assert link.canonical == f"{GS1}/01/09506000134352/21/A%2FB%21%28x%29%25"
    urn = ids.epc_urn(link.canonical)
    assert urn == "urn:epc:id:sgtin:9506000.013435.A%2FB!(x)%25"
    assert ids.canonical_code(urn) == link.canonical

    asset = ids.parse_digital_link("/8004/4000001a%2Fb!")
    assert asset.giai == "4000001a/b!"
    assert ids.epc_urn(asset.canonical) == "urn:epc:id:giai:4000001.a%2Fb!"
    assert ids.canonical_code("urn:epc:id:giai:4000001.a%2Fb!") == f"{GS1}/8004/4000001a%2Fb%21"


# --- Digital Link parsing ----------------------------------------------------------------

LOT = ids.DigitalLink("lot", gtin="09506000134352", lot="ABC")


@pytest.mark.parametrize(
    "uri",
    [
        "/01/09506000134352/10/ABC",
        "https://id.gs1.org/01/09506000134352/10/ABC",
        "https://example.com/foo/bar/01/09506000134352/10/ABC",
        "http://example.com/01/9506000134352/10/ABC?17=251231&linkType=gs1:pip#top",
        "HTTPS://EXAMPLE.COM/01/09506000134352/10/ABC/",
    ],
)
def test_parse_digital_link_with_or_without_domain(uri: str) -> None:
    link = ids.parse_digital_link(uri)
    assert link == LOT
    assert link.path == "/01/09506000134352/10/ABC"
    assert link.canonical == f"{GS1}/01/09506000134352/10/ABC"
    assert ids.canonical_code(uri) == link.canonical


def test_parse_digital_link_fields() -> None:
    item = ids.parse_digital_link(f"{GS1}/01/09506000134352/22/2A/10/L1/21/S1")
    assert (item.kind, item.gtin, item.cpv, item.lot, item.serial) == (
        "item",
        "09506000134352",
        "2A",
        "L1",
        "S1",
    )
    assert ids.parse_digital_link("/00/106141411234567897").sscc == "106141411234567897"
    place = ids.parse_digital_link("/414/9520123456788/254/dock%2F1")
    assert (place.kind, place.gln, place.gln_extension) == ("location", "9520123456788", "dock/1")


@pytest.mark.parametrize(
    ("uri", "fragment"),
    [
        ("/01/09506000134353", "has check digit 3; expected 2"),
        ("/01/09506000134352/21/S1/10/L1", "in the order 22, 10, 21"),
        ("/01/09506000134352/10/L1/10/L2", "at most once each"),
        ("/01/09506000134352/17/251231", "not a key qualifier"),
        ("/00/106141411234567897/10/L1", "it takes none"),
        (f"/01/09506000134352/21/{'x' * 21}", "at most 20"),
        ("/01/09506000134352/21/a%C3%A9", "does not allow"),
        ("/01/09506000134352/21/50%", "does not start an escape"),
        ("/01/09506000134352/21/", "does not follow the GS1 Digital Link grammar"),
        ("/8003/14012345555554987", "must be a 0, the 13-digit GRAI"),
        ("/8004/40a1", "company prefix"),
        ("https:///01/09506000134352", "no domain"),
        ("https://example.com/about/us", "names no GS1 key"),
        ("urn:epc:id:sgtin:0614141.107346.2017", "is not a Digital Link"),
    ],
)
def test_parse_digital_link_refusals(uri: str, fragment: str) -> None:
    assert fragment in refusal(uri, ids.parse_digital_link)


# --- canonical_code and index_key --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "canonical"),
    [
        ("09506000134352", f"{GS1}/01/09506000134352"),
        ("4012345000009", f"{GS1}/01/04012345000009"),
        ("96385074", f"{GS1}/01/00000096385074"),
        ("106141411234567897", f"{GS1}/00/106141411234567897"),
    ],
)
def test_bare_keys(code: str, canonical: str) -> None:
    assert ids.canonical_code(code) == canonical


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("12345", "a bare GS1 key must be a GTIN"),
        ("", "identifier is empty"),
        (" 09506000134352", "contains whitespace"),
        ("urn:epc:id:sgtin:06141.1073460.2017", "company prefix of 6 to 12 digits"),
        ("urn:epc:id:sgtin:0614141.10734.2017", "have 12 digits together; sgtin URNs need 13"),
        ("urn:epc:id:sgtin:0614141.10734a.2017", "non-digit reference"),
        ("urn:epc:id:sgtin:0614141.107346", "must have 3 parts"),
        ("urn:epc:id:sgtin:0614141.107346.", "serial is empty"),
        ("urn:epc:id:sgtin:0614141.107346.a/b", "as %2F"),
        ("urn:epc:id:sgtin:0614141.107346.a%2", "does not start an escape"),
        ("urn:epc:idpat:sgtin:0614141.107346.5", "must end in '.*'"),
        ("urn:epc:id:sscc:0614141.123456789", "sscc URNs need 17"),
        ("urn:epc:id:giai:40000.111", "company prefix of 6 to 12 digits"),
        ("urn:epc:id:giai:4000001." + "1" * 24, "at most 23"),
        ("https://id.gs1.org/01/09506000134353/235/X", "expected 2"),
    ],
)
def test_malformed_gs1_identifiers_are_refused_by_canonical_code_and_index_key(
    code: str, fragment: str
) -> None:
    for call in (ids.canonical_code, ids.index_key):
        message = refusal(code, call)
        assert fragment in message
        assert "\n" not in message and not message.endswith(".")


@pytest.mark.parametrize(
    "code",
    [
        "urn:epc:id:gid:95100000.12345.400",  # GS1 defines no Digital Link for GID
        "urn:epc:idpat:sgtin:4012345.*.*",  # all of a company's products: no one GTIN
        "http://transaction.acme.com/po/12345678",
        # A key AI segment followed by a segment with no digit: no GS1 key is written so.
        "https://news.example/2024/01/report",
        "https://erp.example/2024/01/15/po",
        "https://example.com/00/index.html",
        "urn:uuid:374d95fc-9457-4a51-bd6a-0bba133845a8",
        "ABC-123",
    ],
)
def test_identifiers_without_a_digital_link_index_as_written(code: str) -> None:
    assert ids.index_key(code) == code
    with pytest.raises(IdentifierError):
        ids.canonical_code(code)


# --- Every identifier in GS1's published EPCIS examples ---------------------------------

FIXTURE_TEXT = {p.name: p.read_text() for p in sorted(FIXTURES.glob("*.jsonld"))}
IDENTIFIERS = sorted(
    {m for text in FIXTURE_TEXT.values() for m in re.findall(r'"((?:urn|https?|ni):[^"\s]+)"', text)}
)
GS1_KEYED = re.compile(
    r"urn:epc:(?:id:(?:sgtin|sscc|sgln|pgln|grai|giai|gsrnp?|gdti|sgcn|ginc|gsin|itip|upui|cpi)"
    r"|class:lgtin|idpat:sgtin):"
    r"|https?://[^/]+/(?:.*/)?(?:00|01|253|255|401|402|414|415|417|8003|8004|8006|8010|8013"
    r"|8017|8018)/[^/]*[0-9]"
)
KEYED = [i for i in IDENTIFIERS if GS1_KEYED.match(i)]
OTHERS = [i for i in IDENTIFIERS if not GS1_KEYED.match(i)]


def test_the_fixtures_were_found() -> None:
    assert len(FIXTURE_TEXT) == 10
    assert len(KEYED) >= 50 and len(OTHERS) >= 20


@pytest.mark.parametrize("code", IDENTIFIERS)
def test_every_fixture_identifier_can_be_indexed(code: str) -> None:
    assert ids.index_key(code)


@pytest.mark.parametrize("code", KEYED)
def test_every_gs1_keyed_fixture_identifier_has_a_canonical_code(code: str) -> None:
    canonical = ids.canonical_code(code)
    assert canonical.startswith(f"{GS1}/")
    assert ids.index_key(code) == canonical
    assert ids.canonical_code(canonical) == canonical
    if code.startswith("urn:"):
        prefix_length = len(code.split(":")[4].split(".")[0])
        assert ids.epc_urn(canonical, company_prefix_length=prefix_length) == code


@pytest.mark.parametrize("code", OTHERS)
def test_other_fixture_identifiers_index_as_written(code: str) -> None:
    assert ids.index_key(code) == code


def test_gs1_published_urn_and_digital_link_versions_index_alike() -> None:
    # GS1 publishes Example 9.6.4 twice: with EPC class URNs and with Digital Links.
    def classes(name: str) -> list[str]:
        event = json.loads(FIXTURE_TEXT[name])["epcisBody"]["eventList"][0]
        return [ids.index_key(q["epcClass"]) for q in event["inputQuantityList"]]

    with_urns = classes("Example_9.6.4-TransformationEvent.jsonld")
    with_links = classes("Example_9.6.4-TransformationEventWithDigitalLink.jsonld")
    assert with_urns == with_links


@given(st.text(max_size=30))
def test_digital_link_escaping_matches_rfc3986_percent_encoding(value: str) -> None:
    # The fast path for values with nothing to escape must agree with the general one.
    from urllib.parse import quote

    from ledger.core.ids import _dl_escape

    assert _dl_escape(value) == quote(value, safe="")


# --- The whole GS1 Digital Link 1.4 path grammar (issue 12) -------------------------------

# Malformed links that used to be indexed as plain text: each must be refused by every entry
# point, naming what is wrong.
MALFORMED_LINKS = [
    # Wrong check digit and an odd number of path segments.
    (f"{GS1}/01/09506000134353/21/x/y", "after the key /01/09506000134353 the path must go on"),
    (f"{GS1}/01/09506000134353/21/x", "has check digit 3; expected 2"),
    (f"{GS1}/01/09506000134352/21", "/21 does not"),  # a qualifier without a value
    (f"{GS1}/01/09506000134352/10/L/21/", "/10/L/21 does not"),
    (f"{GS1}/01/09506000134352/10/L//", "/10/L/ does not"),  # an empty segment
    (f"{GS1}/01/09506000134352//10/L", "after the key /01/09506000134352"),
    (f"{GS1}/01/09506000134352/21/S/235/X", "it takes 22, 10, 21 or else 235, not both"),
    (f"{GS1}/414/9520123456788/254/A/7040/1ABC", "it takes 254 or else 7040, not both"),
    (f"{GS1}/414/9520123456788/7040/1AB.", "importer index"),
    (f"{GS1}/417/9520123456788/7040/ABCD", "importer index"),
    (f"{GS1}/417/9520123456788/254/A", "only 7040 may follow it"),
    (f"{GS1}/8004/9520123456788/7040/1ABC/7040/1ABC", "at most once each"),
    (f"{GS1}/415/9520123456788", "without its payment reference"),
    (f"{GS1}/8006/095060001343520302", "piece 03 of 02"),
    (f"{GS1}/8006/09506000134353" + "0102", "check digit 3; expected 2"),
    (f"{GS1}/8018/106141412345678908/8019/12345678901", "GS1 allows 10"),
    (f"{GS1}/8010/95201234ab", "upper-case letters"),
    (f"{GS1}/8010/9520123ABC/8011/012", "must not start with 0"),
    (f"{GS1}/8013/1987654Ad4X4bL5ttr2310cXK", "expected 2K"),
    (f"{GS1}/255/9520123456787", "has check digit 7; expected 8"),
    (f"{GS1}/255/9520123456788AB", "13 digits and up to 12 more digits"),
    (f"{GS1}/402/95201234567890123", "GSIN 95201234567890123 has check digit 3; expected 2"),
    (f"{GS1}/8017/106141412345678907", "GSRNP 106141412345678907 has check digit"),
    # A page address whose path happens to hold a key AI and 4 digits reads as a link.
    ("https://example.com/report/01/2024", "GTIN 2024 has 4 digits"),
]


@pytest.mark.parametrize(
    ("code", "fragment"),
    [
        ("https://example.com/2024/01/15/x", "after the key /01/15"),
        (f"{GS1}/01/O9506000134352", "must contain only the digits"),  # letter O for zero
        (f"{GS1}/401/ABC123", "company prefix"),
        (f"{GS1}/01/123", "GTIN 123 has 3 digits"),
    ],
)
def test_paths_whose_key_segment_starts_with_no_4_digits_are_not_read_as_links(
    code: str, fragment: str
) -> None:
    # No GS1 key value starts with fewer than 4 digits, so index_key keeps these as written;
    # a caller that says the string is a product code is told what is wrong with it.
    assert not ids.looks_like_digital_link(code)
    assert ids.index_key(code) == code
    for call in (ids.canonical_code, ids.parse_digital_link, ids.parse_code):
        assert fragment in refusal(code, call)


@pytest.mark.parametrize(("code", "fragment"), MALFORMED_LINKS)
def test_malformed_digital_links_are_refused_not_indexed_as_text(code: str, fragment: str) -> None:
    assert ids.looks_like_digital_link(code)
    for call in (ids.index_key, ids.canonical_code, ids.parse_digital_link, ids.parse_code):
        message = refusal(code, call)
        assert fragment in message, message
        assert "\n" not in message and not message.endswith(".")


# Valid links of every primary key, with the qualifiers the grammar lets each one take.
VALID_LINKS = [
    ("/417/9520123456788/7040/1ABC", ids.DigitalLink("party", gln="9520123456788", uic_ext="1ABC")),
    ("/8004/9520123456788/7040/1ABC", ids.DigitalLink("giai", giai="9520123456788", uic_ext="1ABC")),
    ("/414/9520123456788/7040/1AB-", ids.DigitalLink("location", gln="9520123456788", uic_ext="1AB-")),
    (
        "/01/9506000134352/235/TPX%2F1",  # a GTIN-13, padded
        ids.DigitalLink("item", gtin="09506000134352", tpx="TPX/1"),
    ),
    (
        "/8006/095060001343520102/22/V/10/L/21/S",
        ids.DigitalLink("itip", itip="095060001343520102", cpv="V", lot="L", serial="S"),
    ),
    ("/8018/106141412345678908/8019/123", ids.DigitalLink("gsrn", gsrn="106141412345678908", srin="123")),
    ("/8017/106141412345678908", ids.DigitalLink("gsrnp", gsrnp="106141412345678908")),
    ("/8010/9520123ABC%23-%2F/8011/10", ids.DigitalLink("cpid", cpid="9520123ABC#-/", cpid_serial="10")),
    ("/8013/1987654Ad4X4bL5ttr2310c2K", ids.DigitalLink("gmn", gmn="1987654Ad4X4bL5ttr2310c2K")),
    ("/255/9520123456788123", ids.DigitalLink("gcn", gcn="9520123456788123")),
    ("/401/9520123CONS%2F1", ids.DigitalLink("ginc", ginc="9520123CONS/1")),
    ("/402/95201234567890122", ids.DigitalLink("gsin", gsin="95201234567890122")),
    ("/415/9520123456788/8020/INV-1", ids.DigitalLink("payto", gln="9520123456788", payment_ref="INV-1")),
]


@pytest.mark.parametrize(("path", "link"), VALID_LINKS)
def test_every_digital_link_key_converts_to_its_canonical_form(path: str, link: ids.DigitalLink) -> None:
    for spelling in (path, f"https://example.com/a/b{path}", f"HTTP://example.com{path}/?17=261231"):
        assert ids.parse_digital_link(spelling) == link
        assert ids.index_key(spelling) == link.canonical
    assert ids.canonical_code(link.canonical) == link.canonical


@pytest.mark.parametrize(
    ("urn", "path"),
    [
        ("urn:epc:id:gsrnp:0614141.1234567890", "/8017/061414112345678902"),
        ("urn:epc:id:ginc:0614141.xyz47%2F11", "/401/0614141xyz47%2F11"),
        ("urn:epc:id:gsin:0614141.123456789", "/402/06141411234567890"),
        ("urn:epc:id:sgcn:4012345.67890.04711", "/255/401234567890104711"),
        ("urn:epc:id:itip:4012345.012345.01.02.987", "/8006/040123451234560102/21/987"),
        ("urn:epc:id:upui:1234567.089456.51qIgY)%3C%26Jp3*j7'SDB", None),
        ("urn:epc:id:cpi:0614141.123ABC.123456789", "/8010/0614141123ABC/8011/123456789"),
        ("urn:epc:id:cpi:0614141.123%2345%2F.1", "/8010/0614141123%2345%2F/8011/1"),
    ],
)
def test_epc_urns_of_the_other_gs1_keys_convert_and_round_trip(urn: str, path: str | None) -> None:
    canonical = ids.canonical_code(urn)
    if path is not None:
        assert canonical == GS1 + path
    prefix_length = len(urn.split(":")[4].split(".")[0])
    back = ids.epc_urn(canonical, company_prefix_length=prefix_length)
    assert ids.canonical_code(back) == canonical
    assert back == urn


@pytest.mark.parametrize(
    ("link", "fragment"),
    [
        (f"{GS1}/417/9520123456788/7040/1ABC", "UIC with extension (AI 7040)"),
        (f"{GS1}/8018/106141412345678908/8019/1", "service relation instance"),
        (f"{GS1}/8013/1987654Ad4X4bL5ttr2310c2K", "no EPC URN"),
        (f"{GS1}/8006/095060001343520102", "ITIP without a serial"),
        (f"{GS1}/255/9520123456788", "GCN without a serial"),
        (f"{GS1}/8010/9520123ABC", "CPID without a serial"),
    ],
)
def test_links_an_epc_urn_cannot_carry_are_refused_by_epc_urn(link: str, fragment: str) -> None:
    assert fragment in refusal(link, ids.epc_urn)


def test_gmn_check_pair_known_answers() -> None:
    # GS1's own linter test vectors (gs1-syntax-dictionary, lint_csumalpha).
    for gmn in (
        "1987654Ad4X4bL5ttr2310c2K",
        "12345678901234567890123NT",
        "7907665Bm8v2AB",
        "00000!HV",
        "12345_!\"%&'()*+,-./LC",
    ):
        assert ids.gmn_check_pair(gmn[:-2]) == gmn[-2:]


@pytest.mark.parametrize("link", [path for path, _ in VALID_LINKS])
def test_element_strings_name_the_same_elements_as_the_link(link: str) -> None:
    parsed = ids.parse_digital_link(link)
    assert ids.element_string(link) == "".join(f"({ai}){v}" for ai, v in parsed.elements)


# --- the common shape's fast reading (ids._COMMON_GTIN_LINK) --------------------------------


def _outcome(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except IdentifierError as e:
        return ("refused", e.message)


_DL_PREFIXES = [
    "",
    "https://id.gs1.org",
    "http://example.com",
    "https://shop.example/p",
    "HTTPS://x.org",
    "https://",
]
# Values the fast match takes (up to 22 characters: two too many) and values it must not.
_DL_VALUE = st.one_of(
    st.text(alphabet="Aa0Z9._-", min_size=0, max_size=22),
    st.text(alphabet="Aa0Z9._-/%~!2é 'x", min_size=0, max_size=22),
)


@st.composite
def _links(draw: st.DrawFn) -> str:
    body = draw(st.text(alphabet=string.digits, min_size=12, max_size=14))
    gtin = draw(
        st.sampled_from([body, body[:-1] + ids.gs1_check_digit(body[:-1]) if len(body) > 1 else body])
    )
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(["10", "21", "22", "235", "01", "414"]), _DL_VALUE), max_size=3)
    )
    path = f"/01/{gtin}" + "".join(f"/{ai}/{v}" for ai, v in pairs)
    return draw(st.sampled_from(_DL_PREFIXES)) + path + draw(st.sampled_from(["", "/", "?x=1", "#f", "//"]))


_SAFE = "Aa0Z9._-"


@st.composite
def _common_links(draw: st.DrawFn) -> str:
    """The common shape, with its edges: GTINs of 13 and 14 digits, right and wrong check
    digits, values of 0 to 22 characters, at most one of them outside the match's set."""
    body = draw(st.text(alphabet=string.digits, min_size=12, max_size=13))
    check = ids.gs1_check_digit(body)
    gtin = body + draw(st.sampled_from([check, str((int(check) + 1) % 10)]))

    def value() -> str:
        n = draw(st.integers(min_value=0, max_value=22))
        chars = [draw(st.sampled_from(_SAFE)) for _ in range(n)]
        if chars and draw(st.booleans()):
            chars[draw(st.integers(0, n - 1))] = draw(st.sampled_from("%/?#~é "))
        return "".join(chars)

    path = f"/01/{gtin}" + "".join(f"/{ai}/{value()}" for ai in ("10", "21") if draw(st.booleans()))
    prefix = draw(
        st.sampled_from(
            [
                "",
                "https://id.gs1.org",
                "http://a",
                "https://x.y/p",
                "https:/",
                "HTTPS://a",
                "https://a?b",
                "https://a#b",
            ]
        )
    )
    return prefix + path


@settings(max_examples=500)
@given(uri=st.one_of(_common_links(), _links()), loose=st.booleans())
def test_the_common_shape_reads_as_the_grammar_walk_does(uri: str, loose: bool) -> None:
    fast = _outcome(lambda: ids._from_digital_link(uri, loose=loose))
    walk = _outcome(lambda: ids._walk_digital_link(uri, loose=loose))
    assert fast == walk


@pytest.mark.parametrize(
    "uri",
    [
        "https://id.gs1.org/01/09506000134352",
        "/01/09506000134352/10/L1",
        "/01/09506000134352/21/7",
        "https://example.com/01/09506000134352/10/ABC-1.2_x/21/12345678901234567890",
        "/01/09506000134353/21/7",  # a wrong check digit: refused the same way
    ],
)
def test_the_common_shape_is_read_by_one_match(uri: str) -> None:
    assert ids._COMMON_GTIN_LINK.fullmatch(uri) is not None
    assert _outcome(lambda: ids._from_digital_link(uri)) == _outcome(lambda: ids._walk_digital_link(uri))


_G = "09506000134352"


@pytest.mark.parametrize(
    "uri",
    [
        f"/01/{_G}/21/{'A' * 20}",
        f"/01/{_G}/21/{'A' * 21}",
        f"/01/{_G}/10/{'A' * 21}/21/1",
        f"/01/{_G}/10/1/21/{'-' * 21}",
        f"/01/{_G}/10//21/1",
        f"/01/{_G}/21/",
        f"/01/{_G}/21/a%20b",
        f"/01/{_G}/21/50%",
        f"/01/{_G}/21/1/",
        f"/01/{_G}/21/1?x=1",
        f"/01/{_G}/21/1/10/2",
        f"/01/{_G[1:]}/21/1",
        f"/01/0{_G[1:-1]}3/21/1",
        f"https://a?b/01/{_G}/21/1",
        f"https://a#b/01/{_G}/21/1",
        f"https:///01/{_G}/21/1",
        f"HTTPS://a/01/{_G}/21/1",
        f"https://a b/01/{_G}/21/1",
    ],
)
def test_the_common_shape_at_its_edges_reads_as_the_grammar_walk_does(uri: str) -> None:
    assert _outcome(lambda: ids._from_digital_link(uri)) == _outcome(lambda: ids._walk_digital_link(uri))
