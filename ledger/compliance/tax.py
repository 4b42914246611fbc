"""Tax on CBEC retail imports (跨境电商零售进口税收政策): the limits, the comprehensive rate,
and ``tax_for`` that breaks one order's tax down. Pure, exact (``Decimal``), no I/O.

Within the limits — at most 5,000 RMB per transaction and 26,000 RMB per buyer per
calendar year — the tariff is 0 and import VAT and consumption tax are levied at 70 %:

    comprehensive rate = (VAT rate + consumption-tax rate) / (1 − consumption-tax rate) × 70 %

which is 9.1 % at 13 % VAT and no consumption tax, and 23.1 % (23.0588… %) for high-end
cosmetics with 15 % consumption tax. Each tax is computed on its own base and rounded to
the fen (half up), as customs assesses them:

    consumption tax = value / (1 − c) × c × 70 %        VAT = value / (1 − c) × v × 70 %

where ``value`` is the dutiable value, the goods' price plus freight (insurance is not
modelled). Over a limit, the order is taxed as general trade, at full rates from the
tariff schedule, which this module does not hold: ``tax_for`` then says so instead of
inventing a number.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any, Final

RETAIL_PROCEDURES: Final = frozenset({"9610", "1210"})
SINGLE_LIMIT: Final = Decimal("5000.00")
ANNUAL_LIMIT: Final = Decimal("26000.00")
VAT_RATE: Final = Decimal("0.13")
REDUCTION: Final = Decimal("0.7")  # 70 % of VAT and consumption tax within the limits
FEN: Final = Decimal("0.01")


@dataclass(frozen=True)
class ConsumptionTaxLine:
    """HS codes starting with ``prefix`` carry consumption tax at ``rate``."""

    prefix: str
    rate: Decimal
    zh: str
    en: str


# A small table, enough for the pilot's goods; the full list is the State Council's
# 消费税税目税率表. The law taxes only the *high-end* grades of these goods (cosmetics from
# 10 RMB per ml or 15 RMB per piece, watches from 10,000 RMB); this table presumes every
# retail import under the heading is high-end, which is the case for the goods the
# pilot zone sells through 1210 and 9610.
CONSUMPTION_TAX: Final[tuple[ConsumptionTaxLine, ...]] = (
    ConsumptionTaxLine(
        "3303", Decimal("0.15"), "高档化妆品：香水及花露水", "high-end cosmetics: perfumes and toilet waters"
    ),
    ConsumptionTaxLine(
        "3304",
        Decimal("0.15"),
        "高档化妆品：美容品、化妆品及护肤品",
        "high-end cosmetics: beauty, make-up and skin-care preparations",
    ),
    ConsumptionTaxLine(
        "9101", Decimal("0.20"), "高档手表：贵金属表壳手表", "high-end watches with precious-metal cases"
    ),
    ConsumptionTaxLine("9102", Decimal("0.20"), "高档手表：其他手表", "high-end watches, other cases"),
)


def consumption_tax_line(hs_code: str | None) -> ConsumptionTaxLine | None:
    if not hs_code:
        return None
    for line in CONSUMPTION_TAX:
        if hs_code.startswith(line.prefix):
            return line
    return None


def comprehensive_rate(*, vat: Decimal = VAT_RATE, consumption: Decimal = Decimal(0)) -> Decimal:
    """(VAT + consumption tax) / (1 − consumption tax) × 70 %, exact to 28 digits."""
    return (vat + consumption) / (1 - consumption) * REDUCTION


def money(value: object) -> Decimal | None:
    """A decimal-string amount (``"298.00"``), or None if it is not one."""
    if not isinstance(value, str):
        return None
    try:
        d = Decimal(value)
    except InvalidOperation:
        return None
    return d if d.is_finite() else None


def dutiable_value(order_info: Mapping[str, Any]) -> Decimal | None:
    """Goods plus freight: the value the limits and the tax are measured on."""
    goods, freight = money(order_info.get("goods")), money(order_info.get("freight"))
    if goods is None or freight is None:
        return None
    return goods + freight


def tax_for(order: Mapping[str, Any], *, hs_code: str | None = None) -> dict[str, Any]:
    """The tax of one retail-import order, broken down, every amount a ``Decimal``.

    ``order`` is an order event body (with ``cbec:orderInfo`` and perhaps
    ``cbec:hsCode``) or the ``cbec:orderInfo`` object itself; ``hs_code`` names the goods
    when the order does not (the declaration does). The annual limit needs the buyer's
    other orders, so it is judged by the findings, not here.
    """
    info = order.get("cbec:orderInfo", order)
    if not isinstance(info, Mapping):
        raise ValueError("an order needs cbec:orderInfo")
    hs = hs_code or (order.get("cbec:hsCode") if isinstance(order.get("cbec:hsCode"), str) else None)
    value = dutiable_value(info)
    if value is None:
        raise ValueError('an order\'s goods and freight must be decimal strings such as "298.00"')
    line = consumption_tax_line(hs)
    c = line.rate if line else Decimal(0)
    out: dict[str, Any] = {
        "currency": info.get("currency"),
        "hsCode": hs,
        "dutiableValue": value,
        "vatRate": VAT_RATE,
        "consumptionTaxRate": c,
        "consumptionTaxItem": {"zh": line.zh, "en": line.en} if line else None,
        "singleLimit": SINGLE_LIMIT,
        "declaredTax": money(info.get("tax")),
    }
    if value > SINGLE_LIMIT:
        out.update(
            treatment="general_trade",
            comprehensiveRate=None,
            tariff=None,
            consumptionTax=None,
            vat=None,
            total=None,
        )
        return out
    base = value / (1 - c)
    consumption = (base * c * REDUCTION).quantize(FEN, ROUND_HALF_UP)
    vat = (base * VAT_RATE * REDUCTION).quantize(FEN, ROUND_HALF_UP)
    out.update(
        treatment="cbec_retail",
        comprehensiveRate=comprehensive_rate(consumption=c),
        tariff=Decimal("0.00"),
        consumptionTax=consumption,
        vat=vat,
        total=consumption + vat,
    )
    return out


def as_json(breakdown: Mapping[str, Any]) -> dict[str, Any]:
    """``tax_for``'s answer with every Decimal as a string (amounts and rates exact)."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in breakdown.items()}
