"""family plans and plan changes: a hard vehicle limit, scheduled downgrades, a plan change's old plan

Revision ID: 0008
Revises: 0007

A plan whose extra vehicles cost money gets a limit (5, or its included vehicles if more): such a
plan is never unlimited.
"""
from alembic import op
import sqlalchemy as sa


revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

# Kept literal (a migration must not change when the code does): plan_pricing.DEFAULT_VEHICLE_LIMIT.
DEFAULT_LIMIT = 5


def upgrade() -> None:
    with op.batch_alter_table("plan") as batch:
        batch.add_column(sa.Column("vehicle_limit", sa.Integer(), nullable=True))
    op.execute(f"UPDATE plan SET vehicle_limit = CASE WHEN max_vehicles > {DEFAULT_LIMIT} THEN max_vehicles "
               f"ELSE {DEFAULT_LIMIT} END WHERE extra_vehicle_price_cents > 0")
    with op.batch_alter_table("membership") as batch:
        batch.add_column(sa.Column("scheduled_plan_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("scheduled_plan_on", sa.Date(), nullable=True))
        batch.create_foreign_key("fk_membership_scheduled_plan_id_plan", "plan", ["scheduled_plan_id"], ["id"])
    with op.batch_alter_table("sales_order") as batch:
        batch.add_column(sa.Column("from_plan_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_sales_order_from_plan_id_plan", "plan", ["from_plan_id"], ["id"])


def downgrade() -> None:
    with op.batch_alter_table("sales_order") as batch:
        batch.drop_constraint("fk_sales_order_from_plan_id_plan", type_="foreignkey")
        batch.drop_column("from_plan_id")
    with op.batch_alter_table("membership") as batch:
        batch.drop_constraint("fk_membership_scheduled_plan_id_plan", type_="foreignkey")
        batch.drop_column("scheduled_plan_on")
        batch.drop_column("scheduled_plan_id")
    with op.batch_alter_table("plan") as batch:
        batch.drop_column("vehicle_limit")
