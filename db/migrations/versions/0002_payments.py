"""payments: the simulated gateway's object store and idempotency records

Revision ID: 0002
Revises: 0001
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sim_gateway_object",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
        sa.Column("customer", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("updated_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("sim_gateway_object", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_sim_gateway_object_kind"), ["kind"], unique=False)
        batch_op.create_index(batch_op.f("ix_sim_gateway_object_customer"), ["customer"], unique=False)

    op.create_table(
        "sim_gateway_request",
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
        sa.Column("operation", sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
        sa.Column("request_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key"),
    )


def downgrade() -> None:
    op.drop_table("sim_gateway_request")
    with op.batch_alter_table("sim_gateway_object", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_sim_gateway_object_customer"))
        batch_op.drop_index(batch_op.f("ix_sim_gateway_object_kind"))
    op.drop_table("sim_gateway_object")
