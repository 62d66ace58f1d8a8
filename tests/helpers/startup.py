"""What the start-up tests need to know of a database before they start the real command line on it."""

from __future__ import annotations

import datetime as dt


def lane_count(url: str) -> int:
    from clarity_tui.services.board_view import read_board
    from db.rawconnect import connect_raw, is_sqlite_url

    conn = connect_raw(url)
    try:
        return len(read_board(conn, is_sqlite_url(url), dt.datetime.now(dt.UTC)))
    finally:
        conn.close()
