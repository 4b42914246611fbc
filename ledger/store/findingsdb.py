"""SQL of the compliance findings: the bulk reads their rules make, writing a batch's
findings and index rows, and the queries regulators run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from ledger.core.records import CodeMark, Document, Finding
from ledger.store.driver import rows_in, run, run_many
from ledger.store.schema import finding_codes, finding_parties, findings

_DOC_COLUMNS = "type, id, seq, signer, order_id, buyer, year, value, doc"


class DbReads:
    """The bulk reads the findings batch (``ledger.compliance.findings_batch.Reads``) makes
    of what earlier batches stored."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def marks(self, codes: Sequence[str]) -> dict[str, dict[str, tuple[int, str]]]:
        out: dict[str, dict[str, tuple[int, str]]] = {}
        for code, mark, seq, utc in rows_in(
            self.conn, "SELECT code, mark, seq, utc FROM code_marks WHERE code IN", "code", codes
        ):
            out.setdefault(code, {})[mark] = (int(seq), utc)
        return out

    def recalled(self) -> dict[str, tuple[int, str]]:
        rows = run(self.conn, "SELECT code, seq, utc FROM code_marks WHERE mark = 'recalled'")
        return {code: (int(seq), utc) for code, seq, utc in rows}

    def lots(self, codes: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for dst, src in rows_in(
            self.conn, "SELECT dst, src FROM lineage WHERE kind = 'lot' AND dst IN", "dst", codes
        ):
            out.setdefault(dst, set()).add(src)
        return out

    def parents(self, codes: Sequence[str]) -> dict[str, set[str]]:
        out: dict[str, set[str]] = {}
        for child, parent in rows_in(
            self.conn, "SELECT child, parent FROM containment WHERE child IN", "child", codes
        ):
            out.setdefault(child, set()).add(parent)
        return out

    def documents(self, keys: Sequence[tuple[str, str]]) -> list[Document]:
        wanted = set(keys)
        rows = rows_in(
            self.conn,
            f"SELECT {_DOC_COLUMNS} FROM trade_documents WHERE id IN",
            "id",
            sorted({i for _, i in keys}),
        )
        return [document_from_row(r) for r in rows if (r[0], r[1]) in wanted]

    def citing(self, orders: Sequence[str]) -> list[Document]:
        rows = rows_in(
            self.conn,
            f"SELECT {_DOC_COLUMNS} FROM trade_documents WHERE type <> 'cbec:order' AND order_id IN",
            "order_id",
            orders,
        )
        return [document_from_row(r) for r in rows]

    def buyer_orders(self, pairs: Sequence[tuple[str, int]]) -> list[Document]:
        wanted = set(pairs)
        rows = rows_in(
            self.conn,
            f"SELECT {_DOC_COLUMNS} FROM trade_documents WHERE type = 'cbec:order' AND buyer IN",
            "buyer",
            sorted({b for b, _ in pairs}),
        )
        return [document_from_row(r) for r in rows if (r[5], r[6]) in wanted]

    def positive(self, hs_codes: Sequence[str]) -> set[str]:
        return {
            r[0]
            for r in rows_in(
                self.conn, "SELECT hs_code FROM positive_list WHERE hs_code IN", "hs_code", hs_codes
            )
        }


def _dumps(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def document_row(d: Document) -> tuple[Any, ...]:
    """A document's ``trade_documents`` row (``_DOC_COLUMNS``)."""
    doc: dict[str, Any] = {
        "links": dict(d.links),
        "info": dict(d.info),
        "procedure": d.procedure,
        "hsCode": d.hs_code,
        "seller": d.seller,
    }
    # Written only when set, so that every other document's row stays as it was.
    if d.withdrawn:
        doc["withdrawn"] = True
    if d.customs:
        doc["customs"] = True
    return (d.type, d.id, d.seq, d.signer, d.order, d.buyer, d.year, d.value, _dumps(doc))


def document_from_row(row: Sequence[Any]) -> Document:
    type_, id_, seq, signer, order, buyer, year, value, doc = row
    d = orjson.loads(doc)
    return Document(
        type=type_,
        id=id_,
        seq=int(seq),
        signer=signer,
        links=d["links"],
        info=d["info"],
        procedure=d["procedure"],
        hs_code=d["hsCode"],
        order=order,
        buyer=buyer,
        year=None if year is None else int(year),
        value=value,
        seller=d["seller"],
        withdrawn=bool(d.get("withdrawn")),
        customs=bool(d.get("customs")),
    )


def finding_row(f: Finding) -> tuple[Any, ...]:
    return (
        f.id,
        f.source,
        f.seq,
        f.rule,
        f.severity,
        f.time,
        _dumps(list(f.seqs)),
        _dumps(list(f.parties)),
        _dumps(list(f.codes)),
        f.message_zh,
        f.message_en,
        _dumps(dict(f.details)),
    )


def _insert(table: str, columns: str) -> str:
    names = [c.strip() for c in columns.split(",")]
    return f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"


_INSERT_FINDING = _insert(
    "findings", "id, source, seq, rule, severity, time, seqs, parties, codes, message_zh, message_en, details"
)
_INSERT_DOCUMENT = _insert("trade_documents", _DOC_COLUMNS)


def _insert_findings(conn: Connection, found: Sequence[Finding]) -> None:
    run_many(conn, _INSERT_FINDING, [finding_row(f) for f in found])
    run_many(
        conn,
        "INSERT INTO finding_parties (finding, party) VALUES (:finding, :party)",
        [(f.id, p) for f in found for p in f.parties],
    )
    run_many(
        conn,
        "INSERT INTO finding_codes (finding, code) VALUES (:finding, :code)",
        [(f.id, c) for f in found for c in f.codes],
    )


def write_findings(
    conn: Connection,
    *,
    found: Sequence[Finding],
    documents: Sequence[Document],
    marks: Sequence[CodeMark],
) -> None:
    """Insert one batch's findings, trade documents and code marks (append transaction)."""
    _insert_findings(conn, found)
    run_many(conn, _INSERT_DOCUMENT, [document_row(d) for d in documents])
    run_many(conn, "INSERT INTO code_marks (code, mark, seq, utc) VALUES (:code, :mark, :seq, :utc)", marks)


def save_scan_findings(conn: Connection, found: Sequence[Finding]) -> None:
    """Store findings raised from scans (outside the ledger; kept across a rebuild, which
    clears only findings whose source is ``entry``). The caller checks them with
    ``ledger.compliance.findings.record_scan_findings``; what the store itself relies on
    is checked here all the same: a finding of an entry would be dropped by a rebuild, and
    an id outside ``scan-…`` could take the id of one a rebuild raises."""
    for f in found:
        if f.source != "scan" or not f.id.startswith("scan-"):
            raise ValueError("scan findings have source 'scan' and an id starting with 'scan-'")
    _insert_findings(conn, found)


def _finding(r: Any) -> Finding:
    return Finding(
        id=r.id,
        seq=int(r.seq),
        rule=r.rule,
        severity=r.severity,
        time=r.time,
        seqs=tuple(orjson.loads(r.seqs)),
        parties=tuple(orjson.loads(r.parties)),
        codes=tuple(orjson.loads(r.codes)),
        message_zh=r.message_zh,
        message_en=r.message_en,
        details=orjson.loads(r.details),
        source=r.source,
    )


def query_findings(
    conn: Connection,
    *,
    rule: str | None = None,
    party: str | None = None,
    code: str | None = None,
    severity: str | None = None,
    since_seq: int | None = None,
    limit: int | None = None,
) -> list[Finding]:
    q = select(findings)
    if rule is not None:
        q = q.where(findings.c.rule == rule)
    if severity is not None:
        q = q.where(findings.c.severity == severity)
    if since_seq is not None:
        q = q.where(findings.c.seq >= since_seq)
    if party is not None:
        q = q.where(
            findings.c.id.in_(select(finding_parties.c.finding).where(finding_parties.c.party == party))
        )
    if code is not None:
        q = q.where(findings.c.id.in_(select(finding_codes.c.finding).where(finding_codes.c.code == code)))
    q = q.order_by(findings.c.seq, func.length(findings.c.id), findings.c.id)
    if limit is not None:
        q = q.limit(limit)
    return [_finding(r) for r in conn.execute(q)]


def summary(conn: Connection) -> dict[str, Any]:
    by_rule: Counter[str] = Counter()
    by_severity: Counter[str] = Counter()
    for rule, severity, n in conn.execute(
        select(findings.c.rule, findings.c.severity, func.count()).group_by(
            findings.c.rule, findings.c.severity
        )
    ):
        by_rule[rule] += int(n)
        by_severity[severity] += int(n)
    pairs = conn.execute(
        select(findings.c.rule, finding_parties.c.party, func.count())
        .join(finding_parties, finding_parties.c.finding == findings.c.id)
        .group_by(findings.c.rule, finding_parties.c.party)
    ).all()
    by_party: Counter[str] = Counter()
    for _, party, n in pairs:
        by_party[party] += int(n)
    return {
        "total": sum(by_rule.values()),
        "byRule": dict(sorted(by_rule.items())),
        "bySeverity": dict(sorted(by_severity.items())),
        "byParty": dict(sorted(by_party.items())),
        "byRuleAndParty": [{"rule": r, "party": p, "count": int(n)} for r, p, n in sorted(pairs)],
    }
