"""No crash reaches the attendant (issue 14, item 1): opening a screen twice, the Related search,
a crash in a screen or a worker (logged, calm screen, back to the board)."""

from __future__ import annotations

from textual.widgets import DataTable, TabbedContent

from clarity_tui.screens.customer_record import CustomerRecordScreen
from clarity_tui.screens.customer_search import CustomerSearchScreen
from clarity_tui.screens.session_detail import SessionDetailScreen
from clarity_tui.widgets.customer_forms import FormDialog
from clarity_tui.widgets.bubble import SessionBubble
from tests.helpers.burst import burst
from tests.helpers.lanes import arrive
from tests.helpers.ui import bubble_ids, make_app, open_focused_session, wait_until


async def test_enter_twice_on_the_board_opens_one_session(demo_db, settings) -> None:  # noqa: ANN001
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent

    SessionService(demo_db).record_plate_read(PlateEvent(plate="DBL-001", lane="Lane 1"), Actor.system("test"))
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        burst(pilot, ["enter", "enter"])
        await pilot.pause()
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "the session")
        await pilot.pause()
        # One session screen. (The second Enter may reach it, as it would typed slowly: type-ahead.)
        assert _stack(app)[:2] == ["board", "session-detail"] and _stack(app).count("session-detail") == 1
    _still_fine(app)


def _still_fine(app) -> None:  # noqa: ANN001
    """The app ended normally, and nothing was logged as a crash (the log's text is the failure message)."""
    from clarity_tui.crash_log import crash_log_path

    path = crash_log_path()
    text = path.read_text() if path.exists() else ""
    # Errors while the test's app shuts down are logged too, but are not what these tests are about.
    during_use = [e for e in text.split("=== ")[1:] if "while the app was closing" not in e.splitlines()[0]]
    assert app.return_code in (0, None) and not during_use, text or "no crash log"


def _stack(app) -> list[str]:  # noqa: ANN001
    return [s.id or type(s).__name__ for s in app.screen_stack]


async def _search(pilot, term: str) -> None:  # noqa: ANN001
    app = pilot.app
    await pilot.press("f7")
    await wait_until(pilot, lambda: isinstance(app.screen, CustomerSearchScreen), "the search")
    await pilot.press(*term)
    await wait_until(pilot, lambda: app.screen.result is not None and app.screen.result.term == term
                     and bool(app.screen.result.hits), f"results for {term}")


async def test_enter_twice_on_search_results_opens_one_record(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _search(pilot, "C100005")
        burst(pilot, ["enter", "enter"])
        await pilot.pause()
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None,
                         "the record")
        await pilot.pause()
        assert _stack(app)[:3] == ["board", "customer-search", "customer-record"]
        assert _stack(app).count("customer-record") == 1
    _still_fine(app)


async def test_escape_then_enter_together_reopens_the_session(demo_db, settings) -> None:  # noqa: ANN001
    """The first detail is still being removed when the second is asked for: it opens once the first is gone."""
    from clarity_tui.services.actor import Actor
    from clarity_tui.services.sessions import SessionService
    from hardware.plate_reader import PlateEvent

    SessionService(demo_db).record_plate_read(PlateEvent(plate="DBL-002", lane="Lane 1"), Actor.system("test"))
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "the session")
        for _ in range(3):
            before = app.screen
            burst(pilot, ["escape", "enter"])
            await pilot.pause()
            await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and app.screen is not before,
                             "the session again")
            await pilot.pause()
            assert _stack(app) == ["board", "session-detail"]
        # The closed screen is removed after the pop returns: the new one waits for it, then opens.
        session_id = app.screen.session_id
        app.pop_screen()
        app.push_screen(SessionDetailScreen(session_id))
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "the session reopened")
        await pilot.pause()
        assert _stack(app) == ["board", "session-detail"]
    _still_fine(app)


async def test_related_search_from_a_record_opened_by_f7_picks_a_customer(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _search(pilot, "C100000")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen) and app.screen.record is not None,
                         "the record")
        record = app.screen
        while record.query_one(TabbedContent).active != "tab-related":
            await pilot.press("f6")
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog), "the related form")
        await pilot.click("#form-extra-0")  # Search
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerSearchScreen) and app.screen.pick, "the picker")
        assert _stack(app) == ["board", "customer-search", "customer-record", "FormDialog", "customer-pick"]
        await pilot.press(*"C100005")
        await wait_until(pilot, lambda: app.screen.result is not None and bool(app.screen.result.hits), "pick results")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, FormDialog) and app.screen.values()["other"] == "C100005",
                         "the number filled in")
        await pilot.press("f2")
        await wait_until(pilot, lambda: app.screen is record and record.query_one("#related-table", DataTable).row_count == 1,
                         "the related row")
    _still_fine(app)


async def test_f7_over_a_record_from_the_search_says_where_the_search_is(demo_db, settings) -> None:  # noqa: ANN001
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await _search(pilot, "C100000")
        burst(pilot, ["enter", "f7"])
        await pilot.pause()
        await wait_until(pilot, lambda: isinstance(app.screen, CustomerRecordScreen), "the record")
        await pilot.press("f7")
        await pilot.pause()
        assert _stack(app) == ["board", "customer-search", "customer-record"]
        assert any("Esc goes back to it" in str(n.message) for n in app._notifications)
    _still_fine(app)


# --- a crash in a screen or a worker: logged, a calm screen, back to the board ----------------------

CARD = "4242424242424242"


async def _calm_screen_then_board(pilot) -> str:  # noqa: ANN001
    """The error screen names the log; Enter goes back to a working board. Returns the log's text."""
    from clarity_tui.crash_log import crash_log_path
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.screens.error_screen import ErrorScreen

    app = pilot.app
    await wait_until(pilot, lambda: isinstance(app.screen, ErrorScreen), "the calm error screen")
    shown = str(app.screen.query_one("#error-text").render())
    assert "Something went wrong. It was logged to" in shown and "Press Enter to return to the board." in shown
    assert str(crash_log_path()) in shown.replace("\n", "")
    await pilot.press("enter")
    await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen) and len(app.screen_stack) == 1, "the board")
    assert app.is_running and app.return_code in (0, None)
    return crash_log_path().read_text()


async def test_a_crashing_action_is_logged_and_the_board_comes_back(demo_db, settings, monkeypatch) -> None:  # noqa: ANN001
    def broken(self) -> None:  # noqa: ANN001
        raise RuntimeError(f"boom in an action (card {CARD})")

    monkeypatch.setattr(SessionDetailScreen, "action_done", broken)
    arrive(demo_db, "CRS-001")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_focused_session(pilot)
        await pilot.press("f6")
        text = await _calm_screen_then_board(pilot)
        # The lane goes on: the same session opens again.
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble again")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen), "the session again")
    assert "Traceback (most recent call last)" in text and "RuntimeError: boom in an action" in text
    assert "action_done" in text or "broken" in text
    assert CARD not in text and "[number removed]" in text


async def test_a_crashing_screen_handler_stops_the_board_and_a_new_board_replaces_it(demo_db, settings,  # noqa: ANN001
                                                                                      monkeypatch) -> None:
    """The board's own message handler raises (Textual stops that screen's message loop)."""
    from clarity_tui.screens.board import BoardScreen

    def broken(self, session_id: int) -> None:  # noqa: ANN001
        raise RuntimeError("boom in the board's OpenSession handler")

    monkeypatch.setattr(SessionDetailScreen, "__init__", broken)
    sid = arrive(demo_db, "CRS-002")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        old_board = app.screen
        await pilot.press("enter")
        text = await _calm_screen_then_board(pilot)
        assert app.screen is not old_board and isinstance(app.screen, BoardScreen)
        # The new board is live: it shows the car and a new arrival.
        await wait_until(pilot, lambda: sid in bubble_ids(app), "the car on the new board")
        later = arrive(demo_db, "CRS-003")
        await wait_until(pilot, lambda: later in bubble_ids(app), "a new arrival on the new board")
    assert "RuntimeError: boom in the board's OpenSession handler" in text


async def test_a_crashing_worker_is_logged_and_the_board_comes_back(demo_db, settings, monkeypatch) -> None:  # noqa: ANN001
    from clarity_tui.services.sessions import SessionService

    def broken(self, session_id: int):  # noqa: ANN001, ANN202
        raise KeyError(f"boom in a worker {CARD[:4]} {CARD[4:8]} {CARD[8:12]} {CARD[12:]}")

    monkeypatch.setattr(SessionService, "detail", broken)
    arrive(demo_db, "CRS-004")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        await pilot.press("enter")
        text = await _calm_screen_then_board(pilot)
    assert "KeyError" in text and "boom in a worker" in text and "SessionDetailScreen" in text
    assert "4242 4242" not in text and "[number removed]" in text


def test_doctor_names_the_crash_log_and_counts_what_it_holds(tmp_path, monkeypatch) -> None:  # noqa: ANN001
    import json

    from click.testing import CliRunner

    from clarity_tui.cli import cli
    from clarity_tui.crash_log import crash_log_path, record_crash

    monkeypatch.setenv("CLARITY_DATABASE_URL", f"sqlite:///{tmp_path / 'site.db'}")
    assert CliRunner().invoke(cli, ["db", "upgrade"]).exit_code == 0

    def crash_line() -> dict:
        done = CliRunner().invoke(cli, ["doctor", "--json"])
        return next(c for c in json.loads(done.stdout)["checks"] if c["name"] == "crash log")

    before = crash_line()
    assert before["ok"] and not before["warning"]
    assert before["detail"] == f"{crash_log_path()}: no crash logged"
    try:
        raise ValueError(f"card {CARD} declined")
    except ValueError as exc:
        record_crash(exc, "a test")
    after = crash_line()
    assert after["ok"] and after["warning"]
    assert after["detail"].startswith(f"{crash_log_path()}: 1 crash logged, the last at ")
    assert CARD not in crash_log_path().read_text()


async def test_a_worker_that_answers_after_its_screen_closed_is_not_a_crash(demo_db, settings, monkeypatch) -> None:  # noqa: ANN001
    """Mark done or Esc while the session screen still loads: the late answer finds no widgets, and the
    board stays (found in CI: the calm error screen replaced the board after Mark done)."""
    import threading

    from clarity_tui import typeahead
    from clarity_tui.screens import session_lookalike
    from clarity_tui.screens.error_screen import ErrorScreen
    from clarity_tui.screens.board import BoardScreen

    started, release, answered = threading.Event(), threading.Event(), threading.Event()
    real = session_lookalike.session_lookalikes

    def slow_lookalikes(db, session_id: int):  # noqa: ANN001, ANN202
        started.set()
        release.wait(60)
        try:
            return real(db, session_id)
        finally:
            answered.set()

    monkeypatch.setattr(session_lookalike, "session_lookalikes", slow_lookalikes)
    # The Esc below waits in the type-ahead gate for the look-alike worker the Enter started (that worker
    # gates keys, by design) until the gate gives up after MAX_HOLD and lets it go. The same path, with
    # the gate giving up after 1 s instead of 15: nothing else in this test waits in the gate.
    monkeypatch.setattr(typeahead, "MAX_HOLD", 1.0)
    arrive(demo_db, "LTE-001")
    app = make_app(settings, demo_db)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_until(pilot, lambda: isinstance(app.focused, SessionBubble), "a focused bubble")
        await pilot.press("enter")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionDetailScreen) and started.is_set(),
                         "the session screen, still looking for look-alikes")
        await pilot.press("escape")
        await wait_until(pilot, lambda: isinstance(app.screen, BoardScreen), "back on the board")
        release.set()
        await wait_until(pilot, lambda: answered.is_set() and not any(
            w.name == "load_lookalike" and w.is_running for w in app.workers), "the late answer")
        await pilot.pause()
        await pilot.pause()
        assert isinstance(app.screen, BoardScreen) and not any(isinstance(s, ErrorScreen) for s in app.screen_stack)
    _still_fine(app)
