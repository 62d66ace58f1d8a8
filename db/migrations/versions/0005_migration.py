"""legacy migration: expression index on the look-alike shape of legacy plates

Revision ID: 0005
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# Same collapse as db.models.plate_shape_sql / services.plates.plate_shape (kept literal:
# a migration must not change when the models do).
PLATE_SHAPE_MAP = (("O", "0"), ("Q", "0"), ("D", "0"), ("I", "1"), ("L", "1"), ("B", "8"), ("S", "5"),
                   ("Z", "2"), ("G", "6"))


def _shape(column: sa.ColumnElement) -> sa.ColumnElement:
    expr = column
    for old, new in PLATE_SHAPE_MAP:
        expr = sa.func.replace(expr, old, new)
    return expr


def upgrade() -> None:
    op.create_index("ix_legacy_member_plate_shape", "legacy_member_plate",
                    [_shape(sa.column("plate_normalized"))])


def downgrade() -> None:
    op.drop_index("ix_legacy_member_plate_shape", table_name="legacy_member_plate")
