"""money exactly once: outbox leases and backoff, vehicle claims, card-present orders, refunds

Revision ID: 0007
Revises: 0006
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

# Kept literal (a migration must not change when the models do): the statuses that make a
# membership current, as services.membership_rules.CURRENT_STATUSES.
CURRENT = "('active', 'past_due', 'paused')"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("claimed_by", sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True))
        batch.add_column(sa.Column("claimed_until", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("next_attempt_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("key_poisoned", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("sales_order") as batch:
        batch.add_column(sa.Column("card_present", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch.add_column(sa.Column("refunded_cents", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "vehicle_claim",
        sa.Column("vehicle_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("membership_id", sa.Integer(), nullable=True),
        sa.Column("terminal", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("holder", sqlmodel.sql.sqltypes.AutoString(length=160), nullable=False),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["vehicle_id"], ["vehicle.id"]),
        sa.ForeignKeyConstraint(["order_id"], ["sales_order.id"]),
        sa.ForeignKeyConstraint(["membership_id"], ["membership.id"]),
        sa.PrimaryKeyConstraint("vehicle_id"),
    )
    op.create_index("ix_vehicle_claim_order_id", "vehicle_claim", ["order_id"])
    op.create_index("ix_vehicle_claim_membership_id", "vehicle_claim", ["membership_id"])
    # Every vehicle on a current membership is claimed by it (the oldest, if a past race left two).
    op.execute(
        "INSERT INTO vehicle_claim (vehicle_id, membership_id, holder, created_at) "
        "SELECT mv.vehicle_id, MIN(m.id), '', CURRENT_TIMESTAMP FROM membership_vehicle mv "
        f"JOIN membership m ON m.id = mv.membership_id WHERE m.status IN {CURRENT} GROUP BY mv.vehicle_id"
    )


def downgrade() -> None:
    op.drop_index("ix_vehicle_claim_membership_id", table_name="vehicle_claim")
    op.drop_index("ix_vehicle_claim_order_id", table_name="vehicle_claim")
    op.drop_table("vehicle_claim")
    with op.batch_alter_table("sales_order") as batch:
        batch.drop_column("refunded_cents")
        batch.drop_column("card_present")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("key_poisoned")
        batch.drop_column("next_attempt_at")
        batch.drop_column("claimed_until")
        batch.drop_column("claimed_by")
