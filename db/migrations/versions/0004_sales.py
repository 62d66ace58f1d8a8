"""membership sale: order progress (terms, signature, activation) and one open order per session

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

OPEN_ORDER_SQL = "state IN ('draft', 'checkout', 'terms', 'signed', 'payment_pending', 'paid')"


def upgrade() -> None:
    op.create_table(
        "order_progress",
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("terms_version_id", sa.Integer(), nullable=True),
        sa.Column("terms_accepted_how", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("terms_accepted_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("signature_id", sa.Integer(), nullable=True),
        sa.Column("activated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.ForeignKeyConstraint(["terms_version_id"], ["terms_version.id"]),
        sa.ForeignKeyConstraint(["signature_id"], ["signature.id"]),
        sa.PrimaryKeyConstraint("order_id"),
    )
    op.create_index(
        "ux_sales_order_open_session", "sales_order", ["session_id"], unique=True,
        sqlite_where=sa.text(OPEN_ORDER_SQL), postgresql_where=sa.text(OPEN_ORDER_SQL),
    )


def downgrade() -> None:
    op.drop_index("ux_sales_order_open_session", table_name="sales_order")
    op.drop_table("order_progress")
