"""Finding listings: the findings raised so far, filtered, and their counts (the rules that
raise them are ``ledger.compliance.findings``; the SQL is ``ledger.store.findingsdb``)."""

from __future__ import annotations

from typing import Any

from ledger.compliance.findings import RULES, SEVERITIES, Finding
from ledger.core.errors import MalformedInput
from ledger.epcis.projection import normalise_code
from ledger.store import findingsdb
from ledger.store.db import Store


def list_findings(
    store: Store,
    *,
    rule: str | None = None,
    party: str | None = None,
    code: str | None = None,
    severity: str | None = None,
    since_seq: int | None = None,
    limit: int | None = None,
) -> list[Finding]:
    """Findings in the order they were raised, filtered: by rule code, by a party involved,
    by a product code (any spelling ``ids.index_key`` reads), by severity, raised at or
    after ``since_seq``; at most ``limit``."""
    if rule is not None and rule not in RULES:
        raise MalformedInput(f"unknown finding rule {rule!r}; rules are {', '.join(RULES)}")
    if severity is not None and severity not in SEVERITIES:
        raise MalformedInput(f"severity is one of {', '.join(SEVERITIES)}, not {severity!r}")
    if limit is not None and limit < 0:
        raise MalformedInput("limit must not be negative")
    with store.reading() as conn:
        return findingsdb.query_findings(
            conn,
            rule=rule,
            party=party,
            code=None if code is None else normalise_code(code),
            severity=severity,
            since_seq=since_seq,
            limit=limit,
        )


def findings_summary(store: Store) -> dict[str, Any]:
    """Counts: total, by rule, by severity, by party, and by rule and party together."""
    with store.reading() as conn:
        return findingsdb.summary(conn)
