"""Characters plate cameras confuse, and the plate "shape" that folds them: the one map.

Each confusable character maps to a canonical one, so "8OB 1234" and "BOB I234" have the same shape.
Python (clarity_tui.services.plates.plate_shape) and SQL (the expression indexes ix_legacy_member_plate_shape
and ix_vehicle_plate_shape, the lookups that use them, the board's raw probe) are all built from CONFUSIONS.
The SQL is nested replace() calls in the map's order: a query uses an expression index only when it writes
the very same expression. Migrations 0005 and 0010 keep a literal copy (a migration must not change when the
models do); tests/test_one_source_rules.py holds them equal. Light: no SQLAlchemy at import.
"""

from __future__ import annotations

from typing import Any

CONFUSIONS: dict[str, str] = {"O": "0", "Q": "0", "D": "0", "I": "1", "L": "1", "B": "8", "S": "5", "Z": "2",
                              "G": "6"}


def plate_shape_sql(column: Any) -> Any:
    """The shape of a plate column as a SQLAlchemy expression (what the expression indexes are built on)."""
    from sqlalchemy import func

    expr = column
    for old, new in CONFUSIONS.items():
        expr = func.replace(expr, old, new)
    return expr


def plate_shape_sql_text(column: str) -> str:
    """The same expression as SQL text, for the raw queries (services/board_view.py)."""
    expr = column
    for old, new in CONFUSIONS.items():
        expr = f"replace({expr}, '{old}', '{new}')"
    return expr
