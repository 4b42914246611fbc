"""Tables of the ledger and the triggers that make the log's own tables append-only.

``entries``, ``merkle_nodes`` and ``checkpoints`` are the log: triggers refuse UPDATE and
DELETE on them (and TRUNCATE on PostgreSQL), and on SQLite an INSERT that would replace a
row (REPLACE, INSERT OR REPLACE). Every other table is a projection that
``suyuan reindex`` can rebuild from entries. The same DDL serves ``create_all`` (through
``after_create`` listeners) and the Alembic migrations (through ``append_only_ddl``).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    event,
)
from sqlalchemy.engine import Connection

metadata = MetaData()

entries = Table(
    "entries",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("leaf_hash", LargeBinary(32), nullable=False),
    Column("statement_hash", LargeBinary(32), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("signer", String(64), nullable=False),
    Column("entry", LargeBinary, nullable=False),
    Index("entries_statement_hash", "statement_hash", unique=True),
    Index("entries_signer", "signer", "seq"),
    # The page's read of a product prefix's delegations (store/pagedb.py) picks the few
    # ``prefix.delegate`` entries by kind; without it PostgreSQL scans every entry.
    Index("entries_kind_signer", "kind", "signer"),
)

# One integer key per complete subtree, ``level << 56 | index`` (see node_key): an IN list
# of plain integers is a primary-key lookup on every database, where SQLite scans the
# table for an IN list of (level, idx) row values.
merkle_nodes = Table(
    "merkle_nodes",
    metadata,
    Column("node", BigInteger, primary_key=True, autoincrement=False),
    Column("hash", LargeBinary(32), nullable=False),
)

NODE_LEVEL_SHIFT = 56


def node_key(level: int, idx: int) -> int:
    return (level << NODE_LEVEL_SHIFT) | idx


def node_id(key: int) -> tuple[int, int]:
    return key >> NODE_LEVEL_SHIFT, key & ((1 << NODE_LEVEL_SHIFT) - 1)


checkpoints = Table(
    "checkpoints",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("root", LargeBinary(32), nullable=False),
    Column("note", Text, nullable=False),
    Column("time", String(40), nullable=False),
)

# --- projections -------------------------------------------------------------------------

parties = Table(
    "parties",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", Text, nullable=False),
    Column("roles", Text, nullable=False),  # comma-separated role names
    Column("registered_seq", BigInteger, nullable=False),
    Column("name_en", Text),  # the registered English name, if given (migration 0013)
)

party_keys = Table(
    "party_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("party", String(64), nullable=False, index=True),
    Column("public_key", LargeBinary(32), nullable=False),
    Column("valid_from", BigInteger, nullable=False),
    Column("valid_until", BigInteger),
    Column("ended_by", String(16)),
)

log_meta = Table(
    "log_meta",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", Text, nullable=False),
)

# Regulators' lists (migration 0004), rebuilt from list.update statements like the rest.
negative_list = Table(
    "negative_list",
    metadata,
    Column("party", String(64), primary_key=True),
    Column("since_seq", BigInteger, nullable=False),
    Column("reason", Text, nullable=False),
)

positive_list = Table(
    "positive_list",
    metadata,
    Column("hs_code", String(10), primary_key=True),
    Column("since_seq", BigInteger, nullable=False),
)

# GS1 company prefixes the parties' registrations name, and the holders' delegations of
# them (migration 0007): looked up by prefix for every batch that makes or recalls goods.
gs1_prefixes = Table(
    "gs1_prefixes",
    metadata,
    Column("prefix", String(12), primary_key=True),
    Column("party", String(64), nullable=False, index=True),
    Column("since_seq", BigInteger, nullable=False),
)

# Customs codes (海关注册编码 or USCC) the parties' registrations name (migration 0012): looked
# up by code when a customs message is imported and for the batches that name one.
customs_codes = Table(
    "customs_codes",
    metadata,
    Column("code", String(18), primary_key=True),
    Column("party", String(64), nullable=False, index=True),
    Column("since_seq", BigInteger, nullable=False),
)

prefix_delegations = Table(
    "prefix_delegations",
    metadata,
    Column("prefix", String(12), primary_key=True),
    Column("party", String(64), primary_key=True),
    Column("since_seq", BigInteger, nullable=False),
    Column("until", String(32)),  # UTC, as entries write ledger time; NULL: no end
)

# --- traceability projections (migration 0002) ----------------------------------------

events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("type", String(32), nullable=False),
    Column("event_time", String(40), nullable=False),  # as signed, with its offset
    Column("event_time_utc", String(32), nullable=False),  # sortable
    Column("stage", String(16), nullable=False),
    Column("activity", String(40), nullable=False),
    Column("biz_step", Text),
    Column("disposition", Text),
    Column("action", String(8)),
    Column("signer", String(64), nullable=False),
    Column("read_point", Text),
    Column("biz_location", Text),
    Index("events_stage", "stage", "seq"),
)

# Every identifier an event names, in which part of the event.
ident_entries = Table(
    "ident_entries",
    metadata,
    Column("code", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("part", String(16), primary_key=True),
)

# Aggregation: ``child`` was inside ``parent`` from an ADD until a DELETE (or still).
containment = Table(
    "containment",
    metadata,
    Column("child", Text, primary_key=True),
    Column("parent", Text, primary_key=True),
    Column("start_seq", BigInteger, primary_key=True, autoincrement=False),
    Column("start_utc", String(32), nullable=False),
    Column("end_seq", BigInteger),
    Column("end_utc", String(32)),
    Index("containment_parent", "parent", "start_seq"),
)

# Lineage edges: transformations (inputs -> outputs) and lot membership (lot -> item).
lineage = Table(
    "lineage",
    metadata,
    Column("src", Text, primary_key=True),
    Column("dst", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # transformation | lot
    Column("src_quantity", Text),
    Column("dst_quantity", Text),
    Index("lineage_dst", "dst", "seq"),
)

biz_transactions = Table(
    "biz_transactions",
    metadata,
    Column("type", Text, primary_key=True),
    Column("id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

current_state = Table(
    "current_state",
    metadata,
    Column("code", Text, primary_key=True),
    Column("disposition", Text),
    Column("owner", Text),  # an owning party as the event names it: any URI (migration 0007)
    Column("location", Text),
    Column("sold", Integer, nullable=False, default=0),
    Column("last_seq", BigInteger, nullable=False),
    Column("last_utc", String(32), nullable=False),
)

# Private data lives outside the chain: the statement holds only the salted commitment,
# so a blob can be erased (crypto-shredding) without touching any hash or proof.
private_blobs = Table(
    "private_blobs",
    metadata,
    Column("commitment", String(71), primary_key=True),
    Column("blob", LargeBinary),  # JCS of {"salt", "data"}; NULL once shredded
    Column("seq", BigInteger, nullable=False),
    Column("shredded", String(32)),
)

# Which statement each private commitment belongs to: the first that committed to it
# (migration 0007). A projection: every statement, with or without its blob, is in it.
private_commitments = Table(
    "private_commitments",
    metadata,
    Column("commitment", String(71), primary_key=True),
    Column("seq", BigInteger, nullable=False),
)

# Witnesses' cosignatures of checkpoints: evidence gathered from outside, kept beside the
# log (not derivable from entries, so not a projection; added to, never changed).
cosignatures = Table(
    "cosignatures",
    metadata,
    Column("size", BigInteger, primary_key=True, autoincrement=False),
    Column("witness", String(200), primary_key=True),
    Column("line", Text, nullable=False),  # the note signature line, as the witness sent it
    Column("received", String(32), nullable=False),
)

# --- compliance findings (migration 0006) ------------------------------------------------

# Findings raised by the rules of ledger/compliance/findings.py. ``source`` is "entry" for those the
# append path raises (rebuilt by reindex) and "scan" for those raised from scans, which
# live outside the ledger and are kept across a rebuild. JSON columns hold sorted lists.
findings = Table(
    "findings",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("source", String(8), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the entry that raised it
    Column("rule", String(40), nullable=False),
    Column("severity", String(8), nullable=False),
    Column("time", String(32), nullable=False),
    Column("seqs", Text, nullable=False),
    Column("parties", Text, nullable=False),
    Column("codes", Text, nullable=False),
    Column("message_zh", Text, nullable=False),
    Column("message_en", Text, nullable=False),
    Column("details", Text, nullable=False),
    Index("findings_seq", "seq"),
    Index("findings_rule", "rule", "seq"),
)

finding_parties = Table(
    "finding_parties",
    metadata,
    Column("finding", String(64), primary_key=True),
    Column("party", Text, primary_key=True),  # any URI an order names as its seller (0007)
    Index("finding_parties_party", "party"),
)

finding_codes = Table(
    "finding_codes",
    metadata,
    Column("finding", String(64), primary_key=True),
    Column("code", Text, primary_key=True),
    Index("finding_codes_code", "code"),
)

# Every version of each trade document (order, payment, waybill, declaration) the rules
# match; ``doc`` is the JSON the rules need (cited documents, amounts, procedure, HS code).
trade_documents = Table(
    "trade_documents",
    metadata,
    Column("type", String(20), primary_key=True),
    Column("id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("signer", String(64), nullable=False),
    Column("order_id", Text),
    Column("buyer", String(80)),
    Column("year", Integer),
    Column("value", String(24)),
    Column("doc", Text, nullable=False),
    Index("trade_documents_order", "order_id"),
    Index("trade_documents_buyer", "buyer", "year"),
)

# The first event that marked a code imported, declared, released, recalled, ended or shipped.
code_marks = Table(
    "code_marks",
    metadata,
    Column("code", Text, primary_key=True),
    Column("mark", String(10), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("utc", String(32), nullable=False),
    Index("code_marks_mark", "mark"),
)

# Consumer scans of item codes (migration 0005): outside the ledger. Not evidence anyone
# signed, not derivable from entries (so not a projection: reindex leaves it alone), and
# not append-only: rows older than the retention period, or beyond a cap per code, are
# deleted (see ledger/queries/scans.py).
scans = Table(
    "scans",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("code", Text, nullable=False),
    Column("time", String(32), nullable=False),  # UTC, microseconds, 'Z': sorts as text
    Column("region", String(64), nullable=False),
    Column("client", String(8), nullable=False),  # browser | app | bot
    # Who scanned, as a pseudonym per code (migration 0008): one client counts once.
    Column("visitor", String(32), nullable=True),
    Index("scans_code_time", "code", "time"),
    Index("scans_time", "time"),
)

# --- idempotent capture (migration 0009) -------------------------------------------------

# Each event's capture key: its eventID, or its CBV 2.0 event hash when it has none. The
# append path looks a batch's keys up here in one statement and does not append an event
# its signer already has on the ledger (see ledger/epcis/event_hash.py and README).
# Looked up by ``key_id``, the key's SHA-256 cut to 64 bits (``capturedb.key_id``), then by
# the key itself: the index holds 8 bytes a row where the key is about 90 characters, and
# each append's keys are random, so the index's size is the pages a batch dirties (migration
# 0015; the event hash had an index no statement used).
event_keys = Table(
    "event_keys",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("event_key", Text, nullable=False),
    Column("key_id", BigInteger, nullable=False),
    Column("signer", String(64), nullable=False),
    Column("event_hash", String(96), nullable=False),
    Column("declared", Integer, nullable=False),  # 1: the event carries an errorDeclaration
    Index("event_keys_key_id", "key_id"),
)


# Named EPCIS queries of ``/epcis/queries`` (migration 0011): outside the ledger like scans.
# A client's saved view on events, not evidence and not derivable from entries, so reindex
# leaves it alone; ``owner`` is the party whose token created it.
epcis_queries = Table(
    "epcis_queries",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("query", Text, nullable=False),  # the EPCIS query, JSON
    Column("owner", String(64), nullable=False),
    Column("created", String(32), nullable=False),
    Index("epcis_queries_owner", "owner"),
)


# --- master data (migration 0013) ---------------------------------------------------------

# Every version of the master data of each identifier (a location's or product class's
# canonical Digital Link): the latest seq is the one in force, the earlier ones are kept.
# The consumer page reads the entry the latest row points at and verifies its bytes.
master_data = Table(
    "master_data",
    metadata,
    Column("code", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("kind", String(16), nullable=False),  # location | product
    Column("signer", String(64), nullable=False),
    Column("body_hash", String(64), nullable=False),  # hex SHA-256 of JCS(body)
    Index("master_data_signer", "signer"),
)

LOG_TABLES = ("entries", "merkle_nodes", "checkpoints")
REGISTRY_TABLES = (
    "parties",
    "party_keys",
    "log_meta",
    "negative_list",
    "positive_list",
    "gs1_prefixes",
    "prefix_delegations",
    "customs_codes",
)
PRIVATE_TABLES = ("private_commitments",)
TRACE_TABLES = ("events", "ident_entries", "containment", "lineage", "biz_transactions", "current_state")
FINDINGS_TABLES = ("findings", "finding_parties", "finding_codes", "trade_documents", "code_marks")
CAPTURE_TABLES = ("event_keys",)
MASTERDATA_TABLES = ("master_data",)
PROJECTION_TABLES = (
    REGISTRY_TABLES + TRACE_TABLES + FINDINGS_TABLES + PRIVATE_TABLES + CAPTURE_TABLES + MASTERDATA_TABLES
)


# The unique keys of each log table. SQLite's REPLACE conflict resolution (REPLACE INTO,
# INSERT OR REPLACE, and UPDATE OR REPLACE on a unique index) deletes the row holding the
# key without firing DELETE triggers, so an INSERT that meets an existing key on any of
# them is refused before it happens. PostgreSQL has no REPLACE: its upsert (ON CONFLICT DO
# UPDATE) and MERGE fire the UPDATE and DELETE triggers, so it needs no INSERT trigger
# (and the COPY of every append pays for none).
LOG_KEYS: dict[str, tuple[str, ...]] = {
    "entries": ("seq", "statement_hash"),
    "merkle_nodes": ("node",),
    "checkpoints": ("size",),
}


def sqlite_no_replace_ddl(table: str) -> str:
    """The SQLite trigger refusing an INSERT over an existing key of ``table``
    (idempotent: migration 0007 adds it to ledgers created before it)."""
    exists = " OR ".join(f"EXISTS (SELECT 1 FROM {table} WHERE {c} = NEW.{c})" for c in LOG_KEYS[table])
    return (
        f"CREATE TRIGGER IF NOT EXISTS {table}_no_replace BEFORE INSERT ON {table} "
        f"WHEN {exists} BEGIN SELECT RAISE(ABORT, 'append-only: INSERT over an existing "
        f"row of {table} is refused'); END"
    )


def _sqlite_ddl(table: str) -> list[str]:
    return [
        f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, 'append-only: {op} on {table} is refused'); END"
        for op in ("UPDATE", "DELETE")
    ] + [sqlite_no_replace_ddl(table)]


_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION suyuan_refuse_change() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'append-only: %% on %% is refused', TG_OP, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def _pg_ddl(table: str) -> list[str]:
    return [
        _PG_FUNCTION,
        f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION suyuan_refuse_change()",
        f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
        "FOR EACH STATEMENT EXECUTE FUNCTION suyuan_refuse_change()",
    ]


def append_only_ddl(dialect: str, table: str) -> list[str]:
    """The statements that make ``table`` append-only on ``dialect``."""
    if dialect == "sqlite":
        return _sqlite_ddl(table)
    if dialect == "postgresql":
        return _pg_ddl(table)
    raise ValueError(f"no append-only triggers for dialect {dialect}")


def drop_append_only_ddl(dialect: str, table: str) -> list[str]:
    """Inverse of ``append_only_ddl`` (for downgrades and for tamper tests)."""
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete", "replace")]
    return [
        f"DROP TRIGGER IF EXISTS {table}_no_change ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
    ]


def install_append_only(conn: Connection, table: str) -> None:
    for stmt in append_only_ddl(conn.dialect.name, table):
        conn.exec_driver_sql(stmt)


def _listen(table: Table) -> None:
    def after_create(target: Table, connection: Connection, **_: object) -> None:
        install_append_only(connection, target.name)

    event.listen(table, "after_create", after_create)


for _t in (entries, merkle_nodes, checkpoints):
    _listen(_t)
