"""Billing: top-up orders (one per Checkout Session), what Stripe said about each payment's
refunds and dispute, and the Stripe events already processed (de-duplication by event id).

Revision ID: 0004_billing
Revises: 0003_guards
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_billing"
down_revision = "0003_guards"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "topup_orders",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("workspace_id", sa.String(length=32), nullable=False),
        sa.Column("member_id", sa.String(length=32), nullable=True),
        sa.Column("pack_id", sa.String(length=32), nullable=False),
        sa.Column("credits_ucr", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.String(length=255), nullable=True),
        sa.Column("checkout_url", sa.Text(), nullable=True),
        sa.Column("payment_intent_id", sa.String(length=255), nullable=True),
        sa.Column("grant_id", sa.Integer(), nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("dispute_status", sa.String(length=16), nullable=True),
        sa.Column("clawed_back_ucr", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("credits_ucr > 0", name="ck_orders_credits_positive"),
        sa.CheckConstraint("amount_cents >= 0", name="ck_orders_amount_nonneg"),
        sa.CheckConstraint("refunded_cents >= 0", name="ck_orders_refunded_nonneg"),
        sa.CheckConstraint(
            "clawed_back_ucr >= 0 AND clawed_back_ucr <= credits_ucr",
            name="ck_orders_clawed_back_range",
        ),
        sa.ForeignKeyConstraint(["workspace_id"], ["workspaces.id"]),
        sa.ForeignKeyConstraint(["grant_id"], ["grants.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id"),
    )
    op.create_index("ix_orders_workspace_created", "topup_orders", ["workspace_id", "created_at"])
    op.create_index("ix_orders_payment_intent", "topup_orders", ["payment_intent_id"])
    op.create_table(
        "stripe_payments",
        sa.Column("payment_intent_id", sa.String(length=255), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("charge_id", sa.String(length=255), nullable=True),
        sa.Column("amount_cents", sa.BigInteger(), nullable=True),
        sa.Column("refunded_cents", sa.BigInteger(), nullable=False),
        sa.Column("dispute_id", sa.String(length=255), nullable=True),
        sa.Column("dispute_status", sa.String(length=16), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("payment_intent_id"),
    )
    op.create_index("ix_stripe_payments_order", "stripe_payments", ["order_id"])
    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=64), nullable=False),
        sa.Column("order_id", sa.String(length=32), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )


def downgrade() -> None:
    op.drop_table("stripe_events")
    op.drop_index("ix_stripe_payments_order", table_name="stripe_payments")
    op.drop_table("stripe_payments")
    op.drop_index("ix_orders_payment_intent", table_name="topup_orders")
    op.drop_index("ix_orders_workspace_created", table_name="topup_orders")
    op.drop_table("topup_orders")
