"""Per agent: whether phrases that look personal are cached ("skip", the default, or "cache").

Revision ID: 0014_agent_privacy
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_agent_privacy"
down_revision = "0010"


def upgrade() -> None:
    # recreate="never": rebuilding ``agents`` on SQLite would drop it, and the drop deletes
    # every entry through ON DELETE CASCADE (see 0004).
    with op.batch_alter_table("agents", recreate="never") as batch:
        batch.add_column(
            sa.Column("personal_data", sa.String(8), nullable=False, server_default="skip")
        )


def downgrade() -> None:
    with op.batch_alter_table("agents", recreate="never") as batch:
        batch.drop_column("personal_data")
