"""The capture index: each event's eventID (or CBV 2.0 event hash) and event hash, so an event
its signer already has on the ledger is not appended again. Filled from the entries already
there, as ``suyuan reindex`` would.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

from ledger.epcis.event_hash import statement_capture_key
from ledger.store import capturedb, schema

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    schema.metadata.create_all(bind, tables=[schema.metadata.tables[t] for t in schema.CAPTURE_TABLES])
    capturedb.fill(bind, statement_capture_key)


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(schema.CAPTURE_TABLES):
        schema.metadata.tables[t].drop(bind)
