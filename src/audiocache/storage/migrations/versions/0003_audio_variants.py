"""Audio variants: converted copies of blobs, by (source blob, output format).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    op.create_table(
        "audio_variants",
        sa.Column("source_sha256", sa.String(64), primary_key=True),
        sa.Column("format", sa.String(32), primary_key=True),
        sa.Column("variant_sha256", sa.String(64), nullable=False, index=True),
        sa.Column("size_bytes", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("audio_variants")
