"""Operator sign-in: PIN check, lockout after repeated failures, shifts (who is signed in where).

The terminal shows a list of operators and a PIN pad: the operator picks their name and types
their 6-digit PIN, so failures count against one operator and lock only that operator out.
Every sign-in, failure, lockout and sign-out writes an audit row. The PIN check itself, with its
lockout counted atomically in the database, is services/pin_check.py: the one check every PIN goes through.
Support over SSH has no PIN: it is identified by the SSH user (see `start_support`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlmodel import col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.pin_check import (  # noqa: F401 - re-exported: callers import them from here
    PIN_LENGTH,
    SSH_ONLY,
    LockedOut,
    LockoutPolicy,
    PinService,
    Purpose,
    SignInError,
    TerminalService,
    WrongPin,
    as_utc,
    saved_id,
)
from db.models import Operator, OperatorShift, Role


@dataclass(frozen=True)
class OperatorChoice:
    id: int
    name: str
    role: str
    locked_until: dt.datetime | None


@dataclass(frozen=True)
class SignedIn:
    actor: Actor
    shift_id: int

    @property
    def operator_id(self) -> int:
        assert self.actor.operator_id is not None
        return self.actor.operator_id


@dataclass(frozen=True)
class ShiftRow:
    shift_id: int
    operator_id: int
    operator: str
    role: str
    terminal: str
    signed_in_at: dt.datetime
    last_activity_at: dt.datetime
    signed_out_at: dt.datetime | None
    signout_reason: str | None


class OperatorService(TerminalService):
    """Sign-in and shifts for one terminal."""

    # --- sign-in ----------------------------------------------------------------------

    def choices(self) -> list[OperatorChoice]:
        """Operators who can sign in at a terminal (PIN holders), by name."""
        with self.db.read() as s:
            rows = s.exec(select(Operator).where(col(Operator.active).is_(True), Operator.pin_hash != SSH_ONLY)
                          .order_by(col(Operator.name))).all()
            return [OperatorChoice(saved_id(o.id), o.name, o.role, as_utc(o.locked_until)) for o in rows]

    def sign_in(self, operator_id: int, pin: str) -> SignedIn:
        """Check the PIN (services/pin_check: one lockout for every PIN check); on success open a shift at this
        terminal, in the transaction that clears the failure count. Raises WrongPin, LockedOut, SignInError."""
        now = self.clock()

        def open_shift(s, who: Actor) -> int:
            self._close_open_shifts(s, now, "replaced")
            shift = OperatorShift(operator_id=operator_id, terminal=self.terminal, signed_in_at=now,
                                  last_activity_at=now)
            s.add(shift)
            s.flush()
            audit.record(s, who, "operator.sign_in", "operator_shift", shift.id,
                         after={"operator": who.name, "role": who.role, "terminal": self.terminal})
            return saved_id(shift.id)

        who, shift_id = self.pins().verify(operator_id, pin, purpose=Purpose.sign_in(), then=open_shift)
        assert shift_id is not None
        return SignedIn(who, shift_id)

    def pins(self) -> PinService:
        """The one PIN check, with this terminal's lockout policy and clock."""
        return PinService(self.db, self.terminal, policy=self.policy, clock=self.clock)

    def unlock(self, operator_id: int, by: Actor) -> None:
        """A manager lifts a lockout (operator.manage, as in Operators)."""
        from clarity_tui.services.permissions import Permission, PermissionDenied, require

        try:
            require(by, Permission.OPERATORS)
        except PermissionDenied as exc:
            raise SignInError(str(exc)) from None
        with self.db.write() as s:
            op = s.get(Operator, operator_id)
            if op is None:
                raise SignInError("No such operator.")
            before = {"failed_attempts": op.failed_attempts,
                      "locked_until": op.locked_until.isoformat() if op.locked_until else None}
            op.failed_attempts, op.locked_until = 0, None
            s.add(op)
            audit.record(s, by, "operator.unlocked", "operator", op.id, before=before, after={"locked_until": None})

    # --- support over SSH --------------------------------------------------------------

    def start_support(self, ssh_user: str) -> SignedIn:
        """Support is identified by its SSH user, not a PIN: a support operator row is kept for it."""
        now = self.clock()
        name = f"{ssh_user} (ssh)"
        with self.db.write() as s:
            op = s.exec(select(Operator).where(Operator.name == name, Operator.pin_hash == SSH_ONLY)).first()
            if op is None:
                op = Operator(name=name, role=Role.SUPPORT, pin_hash=SSH_ONLY)
                s.add(op)
                s.flush()
                audit.record(s, Actor(name, Role.SUPPORT, self.terminal, op.id), "operator.created", "operator",
                             op.id, after={"name": name, "role": Role.SUPPORT, "via": "ssh"})
            who = Actor(name, Role.SUPPORT, self.terminal, op.id)
            shift = OperatorShift(operator_id=saved_id(op.id), terminal=self.terminal, signed_in_at=now,
                                  last_activity_at=now)
            s.add(shift)
            s.flush()
            audit.record(s, who, "operator.sign_in", "operator_shift", shift.id,
                         after={"operator": name, "role": Role.SUPPORT, "terminal": self.terminal, "via": "ssh"})
            return SignedIn(who, saved_id(shift.id))

    # --- shifts --------------------------------------------------------------------------

    def sign_out(self, shift_id: int, reason: str = "signout") -> None:
        """End a shift (reason: signout, idle, exit). Signing out twice is harmless."""
        now = self.clock()
        with self.db.write() as s:
            shift = s.get(OperatorShift, shift_id)
            if shift is None or shift.signed_out_at is not None:
                return
            op = s.get(Operator, shift.operator_id)
            shift.signed_out_at, shift.signout_reason = now, reason
            s.add(shift)
            who = Actor(op.name if op else "?", Role(op.role) if op else Role.ATTENDANT, shift.terminal, shift.operator_id)
            audit.record(s, who, "operator.sign_out", "operator_shift", shift.id,
                         after={"reason": reason, "terminal": shift.terminal})

    def touch(self, shift_id: int, when: dt.datetime | None = None) -> None:
        """Record activity (the app calls this at most once a minute)."""
        with self.db.write() as s:
            shift = s.get(OperatorShift, shift_id)
            if shift is not None and shift.signed_out_at is None:
                shift.last_activity_at = when or self.clock()
                s.add(shift)

    def open_order_of(self, operator_id: int, session_id: int) -> tuple[int, str] | None:
        """This terminal's open order (id, kind) for the session, if this operator started it: the work
        an operator left when another signed in, reopened when they are back."""
        from db.models import OPEN_ORDER_STATES, SalesOrder

        with self.db.read() as s:
            row = s.exec(select(SalesOrder.id, SalesOrder.kind).where(
                SalesOrder.session_id == session_id, SalesOrder.operator_id == operator_id,
                SalesOrder.terminal == self.terminal, col(SalesOrder.state).in_(OPEN_ORDER_STATES))).first()
            return (row[0], row[1]) if row is not None and row[0] is not None else None

    def _close_open_shifts(self, s, now: dt.datetime, reason: str) -> None:
        """One operator per terminal: a shift left open (a crash, a pulled plug) ends at the next sign-in."""
        for shift in s.exec(select(OperatorShift).where(OperatorShift.terminal == self.terminal,
                                                        col(OperatorShift.signed_out_at).is_(None))):
            shift.signed_out_at, shift.signout_reason = now, reason
            s.add(shift)

    def shifts(self, *, open_only: bool = False, since: dt.datetime | None = None) -> list[ShiftRow]:
        """Shifts, newest first: with open_only, who is signed in where right now."""
        with self.db.read() as s:
            q = select(OperatorShift, Operator).join(Operator, col(Operator.id) == col(OperatorShift.operator_id))
            if open_only:
                q = q.where(col(OperatorShift.signed_out_at).is_(None))
            if since is not None:
                q = q.where(col(OperatorShift.signed_out_at).is_(None) | (col(OperatorShift.signed_out_at) >= since))
            q = q.order_by(col(OperatorShift.signed_in_at).desc(), col(OperatorShift.id).desc())
            return [ShiftRow(saved_id(sh.id), saved_id(op.id), op.name, op.role, sh.terminal, as_utc(sh.signed_in_at),
                             as_utc(sh.last_activity_at), as_utc(sh.signed_out_at), sh.signout_reason)
                    for sh, op in s.exec(q)]
