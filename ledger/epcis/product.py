"""Product master data as producers sign it: the ``ilmd`` of commissioning events.

Pure functions over event bodies. A name is a string or a JSON-LD list of
``{"@language", "@value"}``; ``cbvmda:lotNumber``, ``cbvmda:itemExpirationDate``
(YYYY-MM-DD) and ``cbvmda:countryOfOrigin`` (ISO 3166-1 alpha-2) complete it; the
production date is the commissioning event's time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledger.core.errors import IdentifierError
from ledger.core.ids import parse_digital_link

_PREFIXES = ("cbvmda:", "https://ref.gs1.org/cbv/mda#", "")


@dataclass(frozen=True)
class Name:
    value: str
    language: str | None = None


@dataclass(frozen=True)
class Product:
    names: tuple[Name, ...] = ()
    lot_number: str | None = None
    expiration_date: str | None = None
    country_of_origin: str | None = None
    production_time: str | None = None
    producer: str | None = None
    seqs: tuple[int, ...] = field(default=())  # the commissioning entries it comes from

    def name(self, language: str | None = None) -> str | None:
        for n in self.names:
            if n.language == language:
                return n.value
        return self.names[0].value if self.names else None


@dataclass(frozen=True)
class Commissioning:
    """One signed commissioning event of the product (its own, or its lot's)."""

    seq: int
    signer: str
    event_time: str
    body: Mapping[str, Any]


def names_of(value: object) -> tuple[Name, ...]:
    if isinstance(value, str) and value.strip():
        return (Name(value.strip()),)
    items = value if isinstance(value, list) else [value]
    out = []
    for item in items:
        if isinstance(item, Mapping) and isinstance(item.get("@value"), str):
            lang = item.get("@language")
            out.append(Name(item["@value"], lang if isinstance(lang, str) else None))
        elif isinstance(item, str) and item.strip():
            out.append(Name(item.strip()))
    return tuple(out)


def _ilmd(body: Mapping[str, Any], name: str, ns: str = "cbvmda") -> object:
    ilmd = body.get("ilmd")
    if not isinstance(ilmd, Mapping):
        return None
    prefixes = _PREFIXES if ns == "cbvmda" else ("gs1:", "https://gs1.org/voc/", "")
    for p in prefixes:
        if p + name in ilmd:
            return ilmd[p + name]
    return None


def _text(v: object) -> str | None:
    return v if isinstance(v, str) and v else None


def product_of(events: Sequence[Commissioning]) -> Product | None:
    """What the commissioning events say about a product, earliest first; a field an
    earlier event leaves out is taken from a later one. None when there are none."""
    if not events:
        return None
    ordered = sorted(events, key=lambda e: (e.event_time, e.seq))
    names: tuple[Name, ...] = ()
    lot = expiry = country = None
    for e in ordered:
        names = names or names_of(_ilmd(e.body, "productName", ns="gs1"))
        lot = lot or _text(_ilmd(e.body, "lotNumber"))
        expiry = expiry or _text(_ilmd(e.body, "itemExpirationDate"))
        country = country or _text(_ilmd(e.body, "countryOfOrigin"))
    first = ordered[0]
    return Product(
        names=names,
        lot_number=lot,
        expiration_date=expiry,
        country_of_origin=country,
        production_time=first.event_time,
        producer=first.signer,
        seqs=tuple(e.seq for e in ordered),
    )


def is_commissioning(*, stage: str, biz_step: str | None, via: str | None) -> bool:
    """Whether a journey step says what the product is: a production-stage commissioning
    of the item itself or of its lot (never of a container it travelled in)."""
    if stage != "production" or biz_step != "commissioning":
        return False
    if via is None:
        return True
    try:
        return parse_digital_link(via).kind == "lot"
    except IdentifierError:
        return False
