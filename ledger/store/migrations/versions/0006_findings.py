"""Compliance findings and the indexes their rules read (trade documents, code marks), all
rebuildable from entries by ``suyuan reindex``.

Revision ID: 0006
Revises: 0004 (to be re-pointed at 0005, the scans migration, when both are merged)
"""

from alembic import op

from ledger.store import schema

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema.metadata.create_all(
        op.get_bind(), tables=[schema.metadata.tables[t] for t in schema.FINDINGS_TABLES]
    )


def downgrade() -> None:
    bind = op.get_bind()
    for t in reversed(schema.FINDINGS_TABLES):
        schema.metadata.tables[t].drop(bind)
