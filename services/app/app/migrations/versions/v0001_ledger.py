"""The side-effect ledger and the example's business tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-30
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _business(name: str, *columns: sa.Column[Any]) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False),
        *columns,
    )


def upgrade() -> None:
    op.create_table(
        "side_effects",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("step", sa.String(255), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_side_effects_created_at", "side_effects", ["created_at"])
    _business(
        "reservations",
        sa.Column("order_id", sa.String(255)),
        sa.Column("sku", sa.String(255)),
        sa.Column("qty", sa.Integer, nullable=False),
    )
    _business("payments", sa.Column("order_id", sa.String(255), nullable=False), sa.Column("amount", sa.JSON))
    _business(
        "shipments",
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("shipment_id", sa.String(255), nullable=False),
    )
    _business(
        "cancellations",
        sa.Column("order_id", sa.String(255), nullable=False),
        sa.Column("reason", sa.String(255), nullable=False),
    )


def downgrade() -> None:
    for table in ("cancellations", "shipments", "payments", "reservations", "side_effects"):
        op.drop_table(table)
