"""look-alike plates of current customers: expression index on the shape of vehicle plates

Revision ID: 0010
Revises: 0009

The same index as the legacy plates' (0005), on the site's own vehicles: a misread of a member's
plate (RMK-323I for RMK-3231) is found by equality on the shape, without scanning the table.
"""
from alembic import op
import sqlalchemy as sa


revision = "0010"
down_revision = "0009"
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
    op.create_index("ix_vehicle_plate_shape", "vehicle", [_shape(sa.column("plate_normalized"))])


def downgrade() -> None:
    op.drop_index("ix_vehicle_plate_shape", table_name="vehicle")
