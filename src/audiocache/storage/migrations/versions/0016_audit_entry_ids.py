"""The audit log keeps a bulk delete's removed entries (at most 20 ids, comma-separated):
they are in its answer, not its path.

Revision ID: 0016_audit_entry_ids
Revises: 0015_eviction_order
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_audit_entry_ids"
down_revision = "0015_eviction_order"


def upgrade() -> None:
    # recreate="never": an ALTER TABLE … ADD COLUMN, no copy of a table that may be large.
    with op.batch_alter_table("audit_log", recreate="never") as batch:
        batch.add_column(sa.Column("entry_ids", sa.String(400), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_log", recreate="never") as batch:
        batch.drop_column("entry_ids")
