"""SQL of the master-data index (``master_data``): the versions a batch adds, the latest
version of some identifiers (the append path's check for an element signed again), and
every version of an identifier (GraphQL). One statement each, whatever the batch's size."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

import orjson
from sqlalchemy.engine import Connection

from ledger.store.driver import rows_in, run_many


class Row(NamedTuple):
    code: str  # the canonical Digital Link of the location or product class
    seq: int
    kind: str  # location | product
    signer: str
    body_hash: str


def write(conn: Connection, rows: Sequence[Row]) -> None:
    """The master-data versions a batch (or a rebuild) adds."""
    run_many(
        conn,
        "INSERT INTO master_data (code, seq, kind, signer, body_hash) "
        "VALUES (:code, :seq, :kind, :signer, :body_hash)",
        rows,
    )


class Latest(NamedTuple):
    row: Row
    statement_hash: bytes  # of the entry it points at


def vocabulary_type(body: object) -> str:
    """The vocabulary an element belongs to (its body's ``type``): one identifier may be
    described in several (GS1's example describes one SGLN as a BusinessLocation and as a
    ReadPoint), and each has its own version in force."""
    t = body.get("type") if isinstance(body, dict) else None
    return t if isinstance(t, str) else ""


def latest(conn: Connection, codes: Collection[str]) -> dict[str, Latest]:
    """The newest version (the highest seq) of each of ``codes`` that has any, in whatever
    vocabulary, with the statement hash of its entry."""
    return {
        code: got for (code, _), got in sorted(in_force(conn, codes).items(), key=lambda kv: kv[1].row.seq)
    }


def in_force(conn: Connection, codes: Collection[str]) -> dict[tuple[str, str], Latest]:
    """The version in force (the highest seq) of each of ``codes`` in each vocabulary it is
    described in, keyed by (code, vocabulary type), with the statement hash of its entry
    (the append path's check for an element signed again)."""
    out: dict[tuple[str, str], Latest] = {}
    for code, seq, kind, signer, digest, st_hash, raw in sorted(
        rows_in(
            conn,
            "SELECT m.code, m.seq, m.kind, m.signer, m.body_hash, e.statement_hash, "
            "e.entry FROM master_data m JOIN entries e ON e.seq = m.seq WHERE m.code IN",
            "m.code",
            sorted(set(codes)),
        ),
        key=lambda r: int(r[1]),
    ):
        body = orjson.loads(bytes(raw)).get("envelope", {}).get("statement", {}).get("body")
        out[(str(code), vocabulary_type(body))] = Latest(
            Row(str(code), int(seq), str(kind), str(signer), str(digest)), bytes(st_hash)
        )
    return out


def versions(conn: Connection, codes: Collection[str]) -> dict[str, list[Row]]:
    """Every version of each of ``codes``, oldest first."""
    out: dict[str, list[Row]] = {}
    for code, seq, kind, signer, digest in sorted(
        rows_in(
            conn,
            "SELECT code, seq, kind, signer, body_hash FROM master_data WHERE code IN",
            "code",
            sorted(set(codes)),
        ),
        key=lambda r: (r[0], r[1]),
    ):
        out.setdefault(str(code), []).append(Row(str(code), int(seq), str(kind), str(signer), str(digest)))
    return out
