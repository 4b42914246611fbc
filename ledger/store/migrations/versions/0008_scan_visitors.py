"""Scans name their client by a pseudonym per code (``visitor``), so the counterfeit
signal counts clients, not requests. Scans recorded before have none: each is given its
own, and counts as one client, as it did.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # Migration 0005 creates the scans table from the current schema, column included.
    if "visitor" not in {c["name"] for c in sa.inspect(bind).get_columns("scans")}:
        op.add_column("scans", sa.Column("visitor", sa.String(32), nullable=True))
    op.execute("UPDATE scans SET visitor = 'scan-' || CAST(id AS VARCHAR(20)) WHERE visitor IS NULL")


def downgrade() -> None:
    with op.batch_alter_table("scans") as batch:
        batch.drop_column("visitor")
