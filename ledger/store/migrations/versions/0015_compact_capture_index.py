"""The capture index looked up by a 64-bit id of each key instead of the key's text, and
without the event-hash index no statement used: each batch's keys are random, so every
key the batch adds dirties a page of each index on it, and the 90-character keys made
those indexes many pages. Measured on 10,000 appends to a 50,000-entry SQLite ledger,
the commit and inserts fell by about 10 µs a statement, under the sequencer's lock.

A ledger made before this revision has its ``event_keys`` built again from the entries,
as migration 0009 built it (and ``suyuan reindex`` would).

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.epcis.event_hash import statement_capture_key
from ledger.store import capturedb, schema

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # Migration 0009 creates the table from the current schema, key_id included.
    if "key_id" in {c["name"] for c in sa.inspect(bind).get_columns("event_keys")}:
        return
    op.drop_table("event_keys")
    schema.metadata.create_all(bind, tables=[schema.event_keys])
    capturedb.fill(bind, statement_capture_key)


# The table as revisions 0009 to 0014 had it.
_old = sa.MetaData()
_old_event_keys = sa.Table(
    "event_keys",
    _old,
    sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("event_key", sa.Text, nullable=False),
    sa.Column("signer", sa.String(64), nullable=False),
    sa.Column("event_hash", sa.String(96), nullable=False),
    sa.Column("declared", sa.Integer, nullable=False),
    sa.Index("event_keys_key", "event_key", "signer"),
    sa.Index("event_keys_hash", "event_hash"),
)


def _write_old(bind: sa.engine.Connection, rows: Sequence[capturedb.Row]) -> None:
    if rows:
        bind.execute(
            _old_event_keys.insert(),
            [
                {
                    "seq": r.seq,
                    "event_key": r.event_key,
                    "signer": r.signer,
                    "event_hash": r.event_hash,
                    "declared": r.declared,
                }
                for r in rows
            ],
        )


def downgrade() -> None:
    bind = op.get_bind()
    op.drop_table("event_keys")
    _old.create_all(bind, tables=[_old_event_keys])
    capturedb.fill(bind, statement_capture_key, put=_write_old)
