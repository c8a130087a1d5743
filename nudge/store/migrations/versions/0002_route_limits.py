"""route_pace and route_breaker: route limits shared by every worker (nudge/store/limits.py).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "route_breaker",
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("open_until", sa.Float(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("route"),
    )
    op.create_table(
        "route_pace",
        sa.Column("route", sa.String(length=100), nullable=False),
        sa.Column("tat", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("route"),
    )


def downgrade() -> None:
    op.drop_table("route_pace")
    op.drop_table("route_breaker")
