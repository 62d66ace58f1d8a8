"""the lane's whole day: wash menu, washes and visits, limit refusals, commissions, the upsell credit

Revision ID: 0012
Revises: 0011

Issue 18. New tables: wash_item (packages and extras), plan_wash_item (what a plan includes),
order_line (a single-wash order's lines), receipt (its text or email, sent once), wash (every car through the tunnel: a member's visit or a
paid single wash, one per session, with its dispatch to the tunnel controller), visit_refusal (a
member over the plan's limit), commission and commission_rate.

New columns: plan.visit_limit/visit_period (existing plans get once a day, as our terms say),
sales_order.credit_order_id/credit_cents (the single wash credited to "Join today"), and
lane.auto_dispatch (members' cars go to the tunnel without a key press).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def _now() -> sa.Column:
    return sa.Column("at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False)


def upgrade() -> None:
    op.create_table(
        "wash_item",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False, unique=True),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("price_cents", sa.Integer(), nullable=False),
        sa.Column("tunnel_code", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_table(
        "plan_wash_item",
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plan.id"), primary_key=True),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("wash_item.id"), primary_key=True),
    )
    op.create_index("ix_plan_wash_item_item_id", "plan_wash_item", ["item_id"])
    op.create_table(
        "order_line",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("item_id", sa.Integer(), sa.ForeignKey("wash_item.id"), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
    )
    op.create_index("ix_order_line_order_id", "order_line", ["order_id"])
    op.create_table(
        "wash",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("vehicle_session.id"), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("plate", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), sa.ForeignKey("vehicle.id"), nullable=True),
        sa.Column("customer_id", sa.Integer(), sa.ForeignKey("customer.id"), nullable=True),
        sa.Column("membership_id", sa.Integer(), sa.ForeignKey("membership.id"), nullable=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=True),
        sa.Column("site_id", sa.Integer(), sa.ForeignKey("site.id"), nullable=True),
        sa.Column("lane_id", sa.Integer(), sa.ForeignKey("lane.id"), nullable=True),
        sa.Column("package_code", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
        sa.Column("extras", sa.JSON(), nullable=True),
        _now(),
        sa.Column("dispatch_status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("dispatch_attempts", sa.Integer(), nullable=False),
        sa.Column("dispatch_error", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
        sa.Column("dispatched_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("dispatched_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.UniqueConstraint("session_id", name="uq_wash_session"),
    )
    for column in ("vehicle_id", "customer_id", "membership_id", "order_id", "at", "dispatch_status"):
        op.create_index(f"ix_wash_{column}", "wash", [column])
    op.create_table(
        "receipt",
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), primary_key=True),
        sa.Column("channel", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("to", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=400), nullable=True),
        sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("sent_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_index("ix_receipt_status", "receipt", ["status"])
    op.create_table(
        "visit_refusal",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("session_id", sa.Integer(), sa.ForeignKey("vehicle_session.id"), nullable=False),
        sa.Column("vehicle_id", sa.Integer(), sa.ForeignKey("vehicle.id"), nullable=False),
        sa.Column("membership_id", sa.Integer(), sa.ForeignKey("membership.id"), nullable=False),
        sa.Column("lane_id", sa.Integer(), sa.ForeignKey("lane.id"), nullable=True),
        sa.Column("last_visit_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        _now(),
        sa.UniqueConstraint("session_id", name="uq_visit_refusal_session"),
    )
    op.create_index("ix_visit_refusal_vehicle_id", "visit_refusal", ["vehicle_id"])
    op.create_index("ix_visit_refusal_at", "visit_refusal", ["at"])
    op.create_table(
        "commission",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("order_id", sa.Integer(), sa.ForeignKey("sales_order.id"), nullable=False),
        sa.Column("operator_id", sa.Integer(), sa.ForeignKey("operator.id"), nullable=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("entry", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        _now(),
        sa.UniqueConstraint("order_id", "entry", name="uq_commission_order_entry"),
    )
    op.create_index("ix_commission_operator_id", "commission", ["operator_id"])
    op.create_index("ix_commission_at", "commission", ["at"])
    op.create_table(
        "commission_rate",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
        sa.Column("plan_id", sa.Integer(), sa.ForeignKey("plan.id"), nullable=True),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("set_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.UniqueConstraint("kind", "plan_id", name="uq_commission_rate_kind_plan"),
    )
    every_plan = sa.text("plan_id IS NULL")
    op.create_index("ux_commission_rate_kind_every_plan", "commission_rate", ["kind"], unique=True,
                    sqlite_where=every_plan, postgresql_where=every_plan)

    # Plain ADD COLUMN (and DROP COLUMN going down) on both databases: SQLite rebuilding `plan`,
    # `sales_order` or `lane` would DROP a table other rows point at, which foreign keys refuse on a
    # site with data. So credit_order_id is a plain indexed column: services/upsell.py checks the link.
    op.add_column("plan", sa.Column("visit_limit", sa.Integer(), nullable=True))
    op.add_column("plan", sa.Column("visit_period", sqlmodel.sql.sqltypes.AutoString(length=8), nullable=True))
    op.execute("UPDATE plan SET visit_limit = 1, visit_period = 'day'")
    op.add_column("sales_order", sa.Column("credit_order_id", sa.Integer(), nullable=True))
    op.add_column("sales_order", sa.Column("credit_cents", sa.Integer(), nullable=False, server_default="0"))
    op.create_index("ix_sales_order_credit_order_id", "sales_order", ["credit_order_id"])
    op.add_column("lane", sa.Column("auto_dispatch", sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    op.drop_column("lane", "auto_dispatch")
    op.drop_index("ix_sales_order_credit_order_id", table_name="sales_order")
    op.drop_column("sales_order", "credit_cents")
    op.drop_column("sales_order", "credit_order_id")
    op.drop_column("plan", "visit_period")
    op.drop_column("plan", "visit_limit")
    op.drop_index("ux_commission_rate_kind_every_plan", table_name="commission_rate")
    for table in ("commission_rate", "commission", "visit_refusal", "receipt", "wash", "order_line", "plan_wash_item",
                  "wash_item"):
        op.drop_table(table)
