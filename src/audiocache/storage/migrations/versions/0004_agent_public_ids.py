"""Agent ids are per account: a public id unique within its account, beside the internal id.

Existing agents keep their internal id (so their cache keys stay the same) and get it as
their public id. A new agent whose public id is already some agent's internal id (another
account's, say) gets a generated internal id instead.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    # recreate="never": rebuilding ``agents`` on SQLite would drop the table, and with
    # foreign keys on, that drop deletes every entry through ON DELETE CASCADE.
    with op.batch_alter_table("agents", recreate="never") as batch:
        batch.add_column(sa.Column("public_id", sa.String(128), nullable=False, server_default=""))
    op.execute("UPDATE agents SET public_id = id")
    op.create_index(
        "uq_agents_account_public_id", "agents", ["account_id", "public_id"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_agents_account_public_id", table_name="agents")
    with op.batch_alter_table("agents", recreate="never") as batch:
        batch.drop_column("public_id")
