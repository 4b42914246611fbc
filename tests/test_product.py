"""Product master data from commissioning events (pure functions)."""

from __future__ import annotations

from ledger.core.ids import gs1_check_digit, parse_digital_link
from ledger.epcis.product import Commissioning, Name, is_commissioning, names_of, product_of


def test_names_in_every_accepted_form() -> None:
    assert names_of("  Bone china cup ") == (Name("Bone china cup"),)
    assert names_of([{"@language": "zh", "@value": "骨瓷杯"}, {"@language": "en", "@value": "Cup"}]) == (
        Name("骨瓷杯", "zh"),
        Name("Cup", "en"),
    )
    assert names_of({"@language": "ja", "@value": "粉ミルク"}) == (Name("粉ミルク", "ja"),)
    assert names_of(None) == () and names_of("") == () and names_of([{"@value": 3}]) == ()


def test_earliest_event_first_and_gaps_filled_from_later_ones() -> None:
    lot_event = Commissioning(
        seq=4,
        signer="uscc:A",
        event_time="2026-01-01T08:00:00+08:00",
        body={"ilmd": {"cbvmda:lotNumber": "L1", "cbvmda:itemExpirationDate": "2028-01-01"}},
    )
    item_event = Commissioning(
        seq=9,
        signer="uscc:B",
        event_time="2026-01-02T08:00:00+08:00",
        body={"ilmd": {"gs1:productName": "奶粉", "cbvmda:lotNumber": "L2", "cbvmda:countryOfOrigin": "JP"}},
    )
    p = product_of([item_event, lot_event])
    assert p is not None
    assert (p.name(), p.name("en"), p.lot_number, p.expiration_date, p.country_of_origin) == (
        "奶粉",
        "奶粉",
        "L1",
        "2028-01-01",
        "JP",
    )
    assert (p.production_time, p.producer, p.seqs) == ("2026-01-01T08:00:00+08:00", "uscc:A", (4, 9))
    assert product_of([]) is None


def test_which_steps_say_what_the_product_is() -> None:
    lot = "https://id.gs1.org/01/09506000134352/10/L1"
    body = "09506000134352000"
    pallet = f"https://id.gs1.org/00/{body}{gs1_check_digit(body)}"
    assert parse_digital_link(pallet).kind == "sscc"
    assert is_commissioning(stage="production", biz_step="commissioning", via=None)
    assert is_commissioning(stage="production", biz_step="commissioning", via=lot)
    assert not is_commissioning(stage="production", biz_step="commissioning", via=pallet)
    assert not is_commissioning(stage="production", biz_step="packing", via=None)
    assert not is_commissioning(stage="logistics", biz_step="commissioning", via=None)
