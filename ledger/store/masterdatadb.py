"""SQL of the master-data index (``master_data``): the versions a batch adds, the latest
version of some identifiers (the append path's check for an element signed again), and
every version of an identifier (GraphQL). One statement each, whatever the batch's size."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import NamedTuple

from sqlalchemy.engine import Connection

from ledger.store.driver import cursor, placeholders, rows_in


class Row(NamedTuple):
    code: str  # the canonical Digital Link of the location or product class
    seq: int
    kind: str  # location | product
    signer: str
    body_hash: str


def write(conn: Connection, rows: Sequence[Row]) -> None:
    """The master-data versions a batch (or a rebuild) adds."""
    if rows:
        with cursor(conn) as cur:
            cur.executemany(placeholders(
                conn, "INSERT INTO master_data (code, seq, kind, signer, body_hash) "
                "VALUES (?,?,?,?,?)"), [tuple(r) for r in rows])


class Latest(NamedTuple):
    row: Row
    statement_hash: bytes  # of the entry it points at


def latest(conn: Connection, codes: Collection[str]) -> dict[str, Latest]:
    """The version in force (the highest seq) of each of ``codes`` that has any, with the
    statement hash of its entry."""
    out: dict[str, Latest] = {}
    for code, seq, kind, signer, digest, st_hash in rows_in(
            conn, "SELECT m.code, m.seq, m.kind, m.signer, m.body_hash, e.statement_hash "
            "FROM master_data m JOIN entries e ON e.seq = m.seq "
            "WHERE m.seq = (SELECT MAX(n.seq) FROM master_data n WHERE n.code = m.code) "
            "AND m.code IN", "m.code", sorted(set(codes))):
        out[str(code)] = Latest(Row(str(code), int(seq), str(kind), str(signer), str(digest)),
                                bytes(st_hash))
    return out


def versions(conn: Connection, codes: Collection[str]) -> dict[str, list[Row]]:
    """Every version of each of ``codes``, oldest first."""
    out: dict[str, list[Row]] = {}
    for code, seq, kind, signer, digest in sorted(rows_in(
            conn, "SELECT code, seq, kind, signer, body_hash FROM master_data WHERE code IN",
            "code", sorted(set(codes))), key=lambda r: (r[0], r[1])):
        out.setdefault(str(code), []).append(
            Row(str(code), int(seq), str(kind), str(signer), str(digest)))
    return out
