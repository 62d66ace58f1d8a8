"""membership lifecycle: paid_through and the gateway's status, gateway events, the sync cursor and
leader, renewal payments, dunning messages, sales tax on orders

Revision ID: 0009
Revises: 0008

Existing memberships are paid through their next billing date (or their expiry): until the sync
reconciles them, that is what we know.
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("membership") as batch:
        batch.add_column(sa.Column("paid_through", sa.Date(), nullable=True))
        batch.add_column(sa.Column("gateway_status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True))
        batch.add_column(sa.Column("resumes_on", sa.Date(), nullable=True))
    op.execute("UPDATE membership SET paid_through = COALESCE(next_billing_on, expires_on)")
    with op.batch_alter_table("sales_order") as batch:
        batch.add_column(sa.Column("tax_cents", sa.Integer(), nullable=False, server_default="0"))

    op.create_table(
        "gateway_event",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=255), primary_key=True),
        sa.Column("type", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("object_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("received_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("outcome", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
    )
    op.create_index("ix_gateway_event_type", "gateway_event", ["type"])
    op.create_index("ix_gateway_event_received_at", "gateway_event", ["received_at"])

    op.create_table(
        "billing_sync",
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=32), primary_key=True),
        sa.Column("cursor", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_event_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("last_event_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_success_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("leader", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("leader_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    )

    op.create_table(
        "membership_payment",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("membership_id", sa.Integer(), sa.ForeignKey("membership.id"), nullable=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id"), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("gateway_object_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("invoice_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("payment_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("tax_cents", sa.Integer(), nullable=False),
        sa.Column("currency", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("occurred_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "gateway_object_id", name="ux_membership_payment_kind_object"),
    )
    op.create_index("ix_membership_payment_membership_id", "membership_payment", ["membership_id"])
    op.create_index("ix_membership_payment_customer_id", "membership_payment", ["customer_id"])
    op.create_index("ix_membership_payment_invoice_id", "membership_payment", ["invoice_id"])
    op.create_index("ix_membership_payment_occurred_at", "membership_payment", ["occurred_at"])

    op.create_table(
        "dunning_message",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("membership_id", sa.Integer(), sa.ForeignKey("membership.id"), nullable=False),
        sa.Column("invoice_id", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("sent_on", sa.Date(), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("phone", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("link_url", sa.Text(), nullable=True),
        sa.Column("terminal", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.UniqueConstraint("invoice_id", "step", name="ux_dunning_invoice_step"),
        sa.UniqueConstraint("invoice_id", "sent_on", name="ux_dunning_invoice_day"),
    )
    op.create_index("ix_dunning_message_membership_id", "dunning_message", ["membership_id"])


def downgrade() -> None:
    op.drop_index("ix_dunning_message_membership_id", table_name="dunning_message")
    op.drop_table("dunning_message")
    for name in ("occurred_at", "invoice_id", "customer_id", "membership_id"):
        op.drop_index(f"ix_membership_payment_{name}", table_name="membership_payment")
    op.drop_table("membership_payment")
    op.drop_table("billing_sync")
    op.drop_index("ix_gateway_event_received_at", table_name="gateway_event")
    op.drop_index("ix_gateway_event_type", table_name="gateway_event")
    op.drop_table("gateway_event")
    with op.batch_alter_table("sales_order") as batch:
        batch.drop_column("tax_cents")
    with op.batch_alter_table("membership") as batch:
        batch.drop_column("resumes_on")
        batch.drop_column("gateway_status")
        batch.drop_column("paid_through")
