"""Operator sign-in: PIN check, lockout after repeated failures, shifts (who is signed in where).

The terminal shows a list of operators and a PIN pad: the operator picks their name and types
their 6-digit PIN, so failures count against one operator and lock only that operator out.
Every sign-in, failure, lockout and sign-out writes an audit row.
Support over SSH has no PIN: it is identified by the SSH user (see `start_support`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlmodel import col, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import verify_pin
from db.models import Operator, OperatorShift, Role, utcnow

PIN_LENGTH = 6
# Operators created for SSH support users carry this instead of a PIN hash: it never verifies.
SSH_ONLY = "ssh-only"


class SignInError(Exception):
    """str() tells the person what happened and what to do."""


class WrongPin(SignInError):
    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class LockedOut(SignInError):
    def __init__(self, message: str, until: dt.datetime) -> None:
        super().__init__(message)
        self.until = until


@dataclass(frozen=True)
class LockoutPolicy:
    max_attempts: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=5)


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


def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes: every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _wait_text(delta: dt.timedelta) -> str:
    seconds = max(1, int(delta.total_seconds() + 0.999))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


class OperatorService:
    """Sign-in and shifts for one terminal. `clock` is injectable (tests move time)."""

    def __init__(self, db, terminal: str, *, policy: LockoutPolicy | None = None,  # noqa: ANN001
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = db
        self.terminal = terminal
        self.policy = policy or LockoutPolicy()
        self.clock = clock or utcnow

    @classmethod
    def for_app(cls, app) -> OperatorService:  # noqa: ANN001
        ui = app.settings.ui
        policy = LockoutPolicy(max_attempts=ui.lockout_attempts, lockout=dt.timedelta(seconds=ui.lockout_seconds))
        return cls(app.db, app.boot.terminal_id, policy=policy, clock=app.now)

    # --- sign-in ----------------------------------------------------------------------

    def choices(self) -> list[OperatorChoice]:
        """Operators who can sign in at a terminal (PIN holders), by name."""
        with self.db.read() as s:
            rows = s.exec(select(Operator).where(Operator.active == True, Operator.pin_hash != SSH_ONLY)  # noqa: E712
                          .order_by(Operator.name)).all()
            return [OperatorChoice(o.id, o.name, o.role, as_utc(o.locked_until)) for o in rows]  # type: ignore[arg-type]

    def sign_in(self, operator_id: int, pin: str) -> SignedIn:
        """Check the PIN; on success open a shift at this terminal. Raises WrongPin, LockedOut, SignInError."""
        now = self.clock()
        with self.db.read() as s:
            op = s.get(Operator, operator_id)
            if op is None or not op.active or op.pin_hash == SSH_ONLY:
                raise SignInError("This operator cannot sign in here: pick your name from the list.")
            pin_hash, locked_until = op.pin_hash, as_utc(op.locked_until)
        if locked_until is not None and locked_until > now:
            raise LockedOut(self._locked_message(op.name, locked_until - now), locked_until)
        # scrypt takes a moment: verify outside the write transaction.
        ok = len(pin) == PIN_LENGTH and pin.isdigit() and verify_pin(pin, pin_hash)
        failure: SignInError | None = None
        with self.db.write() as s:
            op = s.get(Operator, operator_id)
            assert op is not None
            who = Actor(op.name, Role(op.role), self.terminal, op.id)
            if not ok:
                failure = self._count_failure(s, op, who, now)
            else:
                before = {"failed_attempts": op.failed_attempts}
                op.failed_attempts, op.locked_until = 0, None
                s.add(op)
                self._close_open_shifts(s, now, "replaced")
                shift = OperatorShift(operator_id=op.id, terminal=self.terminal, signed_in_at=now,  # type: ignore[arg-type]
                                      last_activity_at=now)
                s.add(shift)
                s.flush()
                audit.record(s, who, "operator.sign_in", "operator_shift", shift.id, before=before,
                             after={"operator": op.name, "role": op.role, "terminal": self.terminal})
                signed = SignedIn(who, shift.id)  # type: ignore[arg-type]
        if failure is not None:
            raise failure  # after the commit: the failure count must stick
        return signed

    def _count_failure(self, s, op: Operator, who: Actor, now: dt.datetime) -> SignInError:  # noqa: ANN001
        op.failed_attempts += 1
        audit.record(s, who, "operator.sign_in_failed", "operator", op.id,
                     after={"failed_attempts": op.failed_attempts, "terminal": self.terminal})
        if op.failed_attempts >= self.policy.max_attempts:
            until = now + self.policy.lockout
            op.failed_attempts, op.locked_until = 0, until
            audit.record(s, who, "operator.locked_out", "operator", op.id,
                         after={"locked_until": until.isoformat(), "terminal": self.terminal})
            s.add(op)
            return LockedOut(f"Wrong PIN {self.policy.max_attempts} times: {op.name} is locked out for "
                             f"{_wait_text(self.policy.lockout)}. Try again later, or ask a manager to unlock.", until)
        s.add(op)
        left = self.policy.max_attempts - op.failed_attempts
        return WrongPin(f"Wrong PIN for {op.name}: {left} {'try' if left == 1 else 'tries'} left before a "
                        f"{_wait_text(self.policy.lockout)} lockout.", left)

    def _locked_message(self, name: str, remaining: dt.timedelta) -> str:
        return (f"{name} is locked out after {self.policy.max_attempts} wrong PINs: try again in "
                f"{_wait_text(remaining)}, or ask a manager to unlock.")

    def unlock(self, operator_id: int, by: Actor) -> None:
        """A manager lifts a lockout."""
        if Role(by.role) != Role.MANAGER:
            raise SignInError(f"{by.name} ({by.role}) may not unlock operators: ask a manager.")
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
            shift = OperatorShift(operator_id=op.id, terminal=self.terminal, signed_in_at=now,  # type: ignore[arg-type]
                                  last_activity_at=now)
            s.add(shift)
            s.flush()
            audit.record(s, who, "operator.sign_in", "operator_shift", shift.id,
                         after={"operator": name, "role": Role.SUPPORT, "terminal": self.terminal, "via": "ssh"})
            return SignedIn(who, shift.id)  # type: ignore[arg-type]

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

    def _close_open_shifts(self, s, now: dt.datetime, reason: str) -> None:  # noqa: ANN001
        """One operator per terminal: a shift left open (a crash, a pulled plug) ends at the next sign-in."""
        for shift in s.exec(select(OperatorShift).where(OperatorShift.terminal == self.terminal,
                                                        col(OperatorShift.signed_out_at).is_(None))):
            shift.signed_out_at, shift.signout_reason = now, reason
            s.add(shift)

    def shifts(self, *, open_only: bool = False, since: dt.datetime | None = None) -> list[ShiftRow]:
        """Shifts, newest first: with open_only, who is signed in where right now."""
        with self.db.read() as s:
            q = select(OperatorShift, Operator).join(Operator, Operator.id == OperatorShift.operator_id)
            if open_only:
                q = q.where(col(OperatorShift.signed_out_at).is_(None))
            if since is not None:
                q = q.where((col(OperatorShift.signed_out_at).is_(None)) | (OperatorShift.signed_out_at >= since))
            q = q.order_by(col(OperatorShift.signed_in_at).desc(), col(OperatorShift.id).desc())
            return [ShiftRow(sh.id, op.id, op.name, op.role, sh.terminal, as_utc(sh.signed_in_at),  # type: ignore[arg-type]
                             as_utc(sh.last_activity_at), as_utc(sh.signed_out_at), sh.signout_reason)  # type: ignore[arg-type]
                    for sh, op in s.exec(q)]
