"""Tables: the side-effect ledger and the example's business records. Alembic migrations create them."""

from __future__ import annotations

from sqlalchemy import JSON, Column, DateTime, Integer, MetaData, String, Table

# The newest migration (app/migrations/versions); a test keeps the two equal. Lets the SQLite default skip
# loading Alembic at every start when its file is already up to date.
HEAD_REVISION = "0001"

metadata = MetaData()

# One row per (run, step) that performed a side effect; its primary key is what makes the first writer win.
side_effects = Table(
    "side_effects",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("step", String(255), primary_key=True),
    Column("kind", String(64), nullable=False),
    Column("result", JSON, nullable=True),
    Column("created_at", DateTime(timezone=True), nullable=False, index=True),
)

# The business writes, each committed in the same transaction as its ledger row. No unique constraints on
# purpose: a duplicate here would mean an effect performed twice, and the tests count these rows.
reservations = Table(
    "reservations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("order_id", String(255)),
    Column("sku", String(255)),
    Column("qty", Integer, nullable=False),
)
payments = Table(
    "payments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("order_id", String(255), nullable=False),
    Column("amount", JSON),  # as the payment event carried it
)
shipments = Table(
    "shipments",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("order_id", String(255), nullable=False),
    Column("shipment_id", String(255), nullable=False),
)
cancellations = Table(
    "cancellations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", String(64), nullable=False),
    Column("order_id", String(255), nullable=False),
    Column("reason", String(255), nullable=False),
)
