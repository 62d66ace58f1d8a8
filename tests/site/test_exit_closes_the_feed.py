"""The change feed's thread ends with the app, whatever the exit skipped (CI hung at exit: asyncio joins its
executor's threads when the loop closes, and a watcher left waiting held the test process open for ever)."""

from __future__ import annotations

import contextlib
import threading

from tests.helpers.ui import make_app, wait_until


def _watchers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.is_alive() and t.name.startswith("asyncio_")]


async def test_the_feed_is_closed_even_when_ending_the_shift_fails_at_exit(settings, db) -> None:
    app = make_app(settings, db)

    def cannot_end(*_args: object, **_kw: object) -> None:
        raise RuntimeError("the shift could not be ended")

    with contextlib.suppress(RuntimeError):
        async with app.run_test(size=(80, 24)) as pilot:
            await wait_until(pilot, lambda: app._feed is not None and any(
                w.group == "change-feed" and w.is_running for w in app.workers), "the change feed's watcher")
            feed = app._feed
            app.operator_session.end_now = cannot_end  # type: ignore[method-assign]
    assert feed is not None and feed.closed
