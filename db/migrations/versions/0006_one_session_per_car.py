"""one session per car: at most one open vehicle session per normalised plate

Revision ID: 0006
Revises: 0005

Databases from before this revision can hold several open sessions for one car (one per lane
it was read in). The newest is kept; the others are closed as abandoned, with an audit row
each, so the unique index can be built.
"""
import datetime as dt

from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

# Kept literal (a migration must not change when the models do): SessionStatus waiting/in_service.
OPEN_SESSION_SQL = "status IN ('waiting', 'in_service')"

# Open sessions with a newer open session for the same plate (newest: latest arrival, then id).
_OLDER_DUPLICATES_SQL = f"""
SELECT older.id FROM vehicle_session older
WHERE older.{OPEN_SESSION_SQL} AND EXISTS (
    SELECT 1 FROM vehicle_session newer
    WHERE newer.plate_normalized = older.plate_normalized AND newer.{OPEN_SESSION_SQL}
      AND (newer.arrived_at > older.arrived_at OR (newer.arrived_at = older.arrived_at AND newer.id > older.id)))
"""


def upgrade() -> None:
    bind = op.get_bind()
    duplicates = list(bind.execute(sa.text(_OLDER_DUPLICATES_SQL)).scalars())
    if duplicates:
        now = dt.datetime.now(dt.UTC)
        close = sa.text(
            "UPDATE vehicle_session SET status = 'abandoned', closed_at = :now, held_by = NULL, held_at = NULL,"
            " version = version + 1 WHERE id IN :ids"
        ).bindparams(
            sa.bindparam("now", now, type_=sqlmodel.sql.sqltypes.UTCDateTime()),
            sa.bindparam("ids", duplicates, expanding=True),
        )
        bind.execute(close)
        audit_log = sa.table(
            "audit_log",
            sa.column("at", sqlmodel.sql.sqltypes.UTCDateTime()),
            sa.column("actor", sa.String()),
            sa.column("action", sa.String()),
            sa.column("entity", sa.String()),
            sa.column("entity_id", sa.String()),
            sa.column("after", sa.JSON()),
        )
        op.bulk_insert(audit_log, [
            {"at": now, "actor": "migration 0006", "action": "session.abandoned", "entity": "vehicle_session",
             "entity_id": str(session_id), "after": {"status": "abandoned", "reason": "a newer open session for the same plate"}}
            for session_id in duplicates
        ])
    op.create_index(
        "ux_vehicle_session_open_plate", "vehicle_session", ["plate_normalized"], unique=True,
        sqlite_where=sa.text(OPEN_SESSION_SQL), postgresql_where=sa.text(OPEN_SESSION_SQL),
    )


def downgrade() -> None:
    op.drop_index("ux_vehicle_session_open_plate", table_name="vehicle_session")
