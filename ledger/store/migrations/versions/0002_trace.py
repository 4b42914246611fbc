"""Traceability projections: events, identifiers, containment, lineage, business
transactions and current state, all rebuildable from entries by ``suyuan reindex``; and
the private data blobs kept outside the chain.

Revision ID: 0002
Revises: 0001
"""

from alembic import op

from ledger.store import schema

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.create_all(
        op.get_bind(),
        tables=[schema.metadata.tables[t] for t in (*schema.TRACE_TABLES, "private_blobs")],
    )


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed((*schema.TRACE_TABLES, "private_blobs")):
        schema.metadata.tables[t].drop(bind)
