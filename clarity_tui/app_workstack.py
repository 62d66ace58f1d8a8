"""Work kept for the operator who left it (issue 8), out of app.py: the same operator signing back in finds
their screens as they left them; another operator gets the bare board, and the previous operator's open
session is parked (its order stays open in the database) and reopened when they sign in again."""

from __future__ import annotations

from typing import Any


class WorkStackMixin:
    """ClarityApp mixin: `_stack_owner` and `_parked` are set in ClarityApp.__init__."""

    _stack_owner: int | None
    _parked: dict[int, int]
    # Provided by ClarityApp (an App).
    settings: Any
    db: Any
    screen_stack: Any
    pop_screen: Any
    push_screen: Any
    run_worker: Any
    notify: Any

    def _enter_operator_stack(self, operator_id: int) -> None:
        """The same operator signing back in finds their screens as they left them (the pad only
        covered them). Another operator gets the bare board: the previous operator's open session
        is parked (its order stays open in the database) and reopened when they sign in again."""
        owner = self._stack_owner
        if owner is not None and owner != operator_id and len(self.screen_stack) > 1:
            self._park_work(owner)
        self._stack_owner = operator_id
        parked = self._parked.pop(operator_id, None)
        if parked is not None and len(self.screen_stack) <= 1:
            self.run_worker(self._resume_work(operator_id, parked), group="resume", exit_on_error=False)

    def _park_work(self, owner: int) -> None:
        from clarity_tui.screens.session_detail import SessionDetailScreen

        sessions = [s.session_id for s in self.screen_stack if isinstance(s, SessionDetailScreen)]
        if sessions:
            self._parked[owner] = sessions[-1]
        while len(self.screen_stack) > 1:
            self.pop_screen()

    async def _resume_work(self, operator_id: int, session_id: int) -> None:
        import asyncio

        from clarity_tui.screens.session_detail import SessionDetailScreen

        order = await asyncio.to_thread(self._open_order_of, operator_id, session_id)
        detail = SessionDetailScreen(session_id)
        await self.push_screen(detail)
        if order is not None:
            order_id, kind = order
            if kind == "migration":
                from clarity_tui.screens.migration import start_migration

                start_migration(detail, session_id)
            else:
                from clarity_tui.screens.sale import start_sale

                start_sale(detail, session_id)
            self.notify(f"Your order #{order_id} for this vehicle is back where you left it.", timeout=5)

    def _open_order_of(self, operator_id: int, session_id: int) -> tuple[int, str] | None:
        """This terminal's open order (id, kind) for the session, if this operator started it."""
        from sqlmodel import col, select

        from db.models import OPEN_ORDER_STATES, SalesOrder

        with self.db.read() as s:
            row = s.exec(select(SalesOrder.id, SalesOrder.kind).where(
                SalesOrder.session_id == session_id, SalesOrder.operator_id == operator_id,
                SalesOrder.terminal == self.settings.terminal_id, col(SalesOrder.state).in_(OPEN_ORDER_STATES))).first()
            return (row[0], row[1]) if row else None
