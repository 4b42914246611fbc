"""Whose products an event may make or recall: GTINs under the GS1 company prefixes
parties hold.

A party's registration may carry the GS1 company prefixes it holds (``gs1Prefixes``,
cosigned by the registrar like its roles). An event that makes items — a production-stage
ObjectEvent that adds or commissions them, a transformation's outputs — or that recalls
them (unless a regulator signs it) names GTINs; each GTIN under a registered prefix needs
the prefix's holder as signer, or a party the holder delegated the prefix to with a
``prefix.delegate`` statement (contract manufacturing) that has not been revoked or run
out. A GTIN under no registered prefix is accepted and raises the finding
``gtin.unregistered_prefix`` (``ledger.compliance.findings``).

GS1 company prefixes are 4 to 12 digits; in a GTIN-14 the company prefix starts after the
indicator digit, so a GTIN's prefix is found by the longest registered match of its digits
2 to 13. Pure: the registry slice comes from the caller.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from ledger.core.errors import NotAuthorised
from ledger.core.registry import RegistryState, may_use_prefix, prefix_holder
from ledger.epcis.projection import GS1_CLASS_PREFIX, named_codes, recall_scope
from ledger.epcis.stages import Classified, EventCodes

# bizSteps that bring an item into being, whatever the event's action.
MAKING_STEPS: Final = frozenset({"commissioning", "creating_class_instance", "encoding"})
_BASE = len(GS1_CLASS_PREFIX)


def gtin_of(code: str) -> str | None:
    """The GTIN-14 of an index key of a product, lot or item; None for anything else."""
    if not code.startswith(GS1_CLASS_PREFIX):
        return None
    gtin = code[_BASE : _BASE + 14]
    if len(gtin) == 14 and gtin.isdigit() and gtin.isascii() and code[_BASE + 14 : _BASE + 15] in ("", "/"):
        return gtin
    return None


def prefix_candidates(gtin: str) -> list[str]:
    """Every company prefix a GTIN-14 could fall under, longest first."""
    return [gtin[1 : 1 + n] for n in range(12, 3, -1)]


def _made(codes: EventCodes) -> list[str]:
    if codes.type == "TransformationEvent":
        return [*codes.outputs, *(c for c, _, _ in codes.output_classes)]
    if codes.type == "ObjectEvent" and (codes.action == "ADD" or codes.biz_step in MAKING_STEPS):
        return [*codes.epcs, *(c for c, _, _ in codes.classes)]
    return []


def _recalled(codes: EventCodes, body: Mapping[str, Any]) -> list[str]:
    return [*named_codes(codes), *recall_scope(body)]


def claimed_codes(
    classified: Classified, codes: EventCodes, body: Mapping[str, Any], roles: Collection[str]
) -> tuple[str, list[str]]:
    """(what the event does to them, the codes whose brand must consent): the items a
    production event makes, or everything a recall by anyone but a regulator names."""
    if classified.stage == "production":
        return "make", _made(codes)
    if classified.stage == "recall" and "regulator" not in roles:
        return "recall", _recalled(codes, body)
    return "", []


def prefixes_to_load(events: Iterable[tuple[Mapping[str, Any], EventCodes | None]]) -> set[str]:
    """Every prefix the brand check of these events may ask about, decided from the bodies
    alone (before the signers' roles are known): a superset of what ``check_event`` and
    the finding look up, so that one read per batch answers them all."""
    out: set[str] = set()
    seen: set[str] = set()
    for body, codes in events:
        if codes is None:
            continue
        wanted = _made(codes)
        if codes.biz_step == "cbec:recalling" or codes.disposition == "recalled":
            wanted = wanted + _recalled(codes, body)
        for code in wanted:
            gtin = gtin_of(code)
            if gtin is not None and gtin not in seen:
                seen.add(gtin)
                out.update(prefix_candidates(gtin))
    return out


def check_event(
    reg: RegistryState,
    *,
    signer: str,
    roles: Collection[str],
    classified: Classified,
    codes: EventCodes,
    body: Mapping[str, Any],
    time: str,
) -> None:
    """Refuse (``prefix_not_held``) an event that makes or recalls products under a GS1
    company prefix that neither the signer holds nor its holder delegated to the signer
    at ledger ``time``."""
    what, claimed = claimed_codes(classified, codes, body, roles)
    if not claimed:
        return
    checked: set[str] = set()
    for code in claimed:
        gtin = gtin_of(code)
        if gtin is None or gtin in checked:
            continue
        checked.add(gtin)
        held = prefix_holder(reg, gtin)
        if held is not None and not may_use_prefix(reg, signer, held, time):
            raise NotAuthorised(
                f"{signer} may not {what} {code}: its GS1 company prefix {held.prefix} is held "
                f"by {held.party} (since seq {held.since_seq}), who has not delegated it to "
                f"{signer}",
                code="prefix_not_held",
            )


def speaks_for_brand(reg: RegistryState, party: str, code: str, time: str) -> bool:
    """Whether ``party`` holds, or was delegated at ledger ``time``, the registered prefix
    the GTIN of ``code`` falls under: the brand may recall what its contract manufacturer
    made, though no production event of its own names it."""
    gtin = gtin_of(code)
    held = None if gtin is None else prefix_holder(reg, gtin)
    return held is not None and may_use_prefix(reg, party, held, time)
