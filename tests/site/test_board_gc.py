"""The garbage collector stays off the board's path (issue 17, board latency): a full collection of the
whole heap took ~100 ms about once a second and landed between a commit and its bubble.

- once booted, what lives as long as the app is frozen out of the collector's view, and thawed at exit;
- from a change notice to its paint the collector waits; afterwards it is back on."""

from __future__ import annotations

import gc

import pytest

from clarity_tui.screens.board import BoardScreen
from clarity_tui.services.actor import Actor
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.sessions import SessionService
from hardware.plate_reader import PlateEvent
from tests.helpers.ui import bubble_ids, make_app, wait_until

pytestmark = pytest.mark.both_databases


async def test_the_long_lived_heap_is_frozen_once_booted_and_thawed_at_exit(demo_db, settings) -> None:
    gc.unfreeze()
    app = make_app(settings, demo_db)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen) and gc.get_freeze_count() > 0,
                         "the frozen heap")
    assert gc.get_freeze_count() == 0
    assert gc.isenabled()


async def test_no_collection_runs_between_a_change_notice_and_its_paint(demo_db, settings) -> None:
    other = open_database(settings)  # another terminal: its commits reach the board through the change feed
    camera = SessionService(other)
    painted: list[frozenset[int]] = []

    def hook(message: object) -> None:
        if isinstance(message, BoardScreen.Painted):
            painted.append(message.session_ids)

    app = make_app(settings, demo_db)
    try:
        async with app.run_test(size=(120, 40), message_hook=hook) as pilot:
            await wait_until(pilot, lambda: bool(painted), "the first board")
            at_notice: list[bool] = []
            # Subscribed after the board: runs as soon as the board has heard of the change.
            app.db_changed.subscribe(app, lambda _: at_notice.append(gc.isenabled()), immediate=True)
            sid = camera.record_plate_read(PlateEvent(plate="GCH-001", lane="Lane 1"), Actor.system("camera"))
            await wait_until(pilot, lambda: any(sid in ids for ids in painted), "the new bubble painted")
            assert sid in bubble_ids(app)
            assert at_notice and not any(at_notice), "the collector was on while the change was on its way"
            # Painted, nothing else on its way: the collector is back on.
            await wait_until(pilot, gc.isenabled, "the collector enabled again")
    finally:
        other.dispose()
