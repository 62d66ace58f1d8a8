"""customer search indexes and web-login password resets

Revision ID: 0003
Revises: 0002

Search uses prefix ranges (`col >= 'zoom' AND col < 'zoon'`) on folded keys. On
SQLite the BINARY-collation indexes serve them. On PostgreSQL an index follows the
database collation (e.g. en_US), whose order is not byte order, so the queries
compare under COLLATE "C" and the search indexes are rebuilt COLLATE "C" here
(same names and columns, so the models still describe them).
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Existing single-column indexes rebuilt under COLLATE "C" on PostgreSQL: (name, table, column).
PG_REBUILT = [
    ("ix_customer_search_last", "customer", "search_last"),
    ("ix_customer_search_first", "customer", "search_first"),
    ("ix_customer_email_lower", "customer", "email_lower"),
    ("ix_customer_phone_rev", "customer", "phone_rev"),
    ("ix_vehicle_plate_normalized", "vehicle", "plate_normalized"),
]
# New indexes: (name, columns).
NEW = [
    ("ix_customer_last_first", ["search_last", "search_first"]),
    ("ix_customer_first_last", ["search_first", "search_last"]),
    ("ix_customer_number_prefix", ["customer_number"]),
]


def upgrade() -> None:
    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("web_login_id", sa.Integer(), nullable=False),
        sa.Column("token_sha256", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("sent_to", sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
        sa.Column("expires_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column("used_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
        sa.Column("created_at", sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["web_login_id"], ["web_login.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_sha256"),
    )
    with op.batch_alter_table("password_reset", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_password_reset_web_login_id"), ["web_login_id"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in PG_REBUILT:
            op.execute(f"DROP INDEX IF EXISTS {name}")
            op.execute(f'CREATE INDEX {name} ON {table} ({column} COLLATE "C")')
        for name, columns in NEW:
            keys = ", ".join(f'{c} COLLATE "C"' for c in columns)
            op.execute(f"CREATE INDEX {name} ON customer ({keys})")
    else:
        for name, columns in NEW:
            op.create_index(name, "customer", columns)


def downgrade() -> None:
    for name, _columns in NEW:
        op.drop_index(name, table_name="customer")
    if op.get_bind().dialect.name == "postgresql":
        for name, table, column in PG_REBUILT:
            op.execute(f"DROP INDEX IF EXISTS {name}")
            op.execute(f"CREATE INDEX {name} ON {table} ({column})")
    with op.batch_alter_table("password_reset", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_password_reset_web_login_id"))
    op.drop_table("password_reset")
