"""One PIN check: every operator PIN typed anywhere is checked here, with one lockout and one audit trail.

Callers: sign-in at the PIN pad (OperatorService.sign_in), a manager approving something in place
(`approve_manager`: the migration's billing-date override, the ManagerPinModal, the CLI's `--manager`),
and the first-manager set-up. The PIN policy for new PINs lives here too (`pin_problem`).

How one check goes, so N terminals guessing at once check at most `policy.max_attempts` PINs:

1. **Reserve an attempt** before any scrypt: one conditional UPDATE, committed on its own,
       failed_attempts = failed_attempts + 1 (1 after an expired lockout),
       locked_until    = now + lockout when that makes max_attempts (else NULL)
       WHERE id = :id AND active AND (locked_until IS NULL OR locked_until <= :now) ... RETURNING
   The database serialises the increments (a row lock on PostgreSQL; BEGIN IMMEDIATE on SQLite), so
   the k-th concurrent guess sees k, and the one that reaches max_attempts locks the operator in the
   same statement: every later guess matches no row and is refused without a PIN check.
2. **Verify** the PIN (scrypt) outside any transaction.
3. **Success**: the count and the lock are cleared in the same transaction as the caller's work (the
   shift, the approval row); only if the PIN hash checked is still the operator's and they are
   still active. **Failure**: an audit row for the failed attempt and, for the attempt that locked,
   a `operator.locked_out` row. A process killed between 1 and 3 leaves the attempt counted: the
   safe side.

A locked-out operator's PIN is refused for every purpose, the override included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Self, TypeVar, overload

from sqlalchemy import Table, case, literal, null, or_, true, update
from sqlalchemy import inspect as sa_inspect
from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import verify_pin
from db.models import Operator, Role, utcnow

if TYPE_CHECKING:
    from clarity_tui.wiring import Services
    from db.engine import Database

PIN_LENGTH = 6
# Operators created for SSH support users carry this instead of a PIN hash: it never verifies.
SSH_ONLY = "ssh-only"

T = TypeVar("T")


# --- errors --------------------------------------------------------------------------------------------


class SignInError(UserFacingError):
    """A refused PIN check; str() tells the person what happened and what to do."""


class WrongPin(SignInError):
    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class LockedOut(SignInError):
    def __init__(self, message: str, until: dt.datetime) -> None:
        super().__init__(message)
        self.until = until


class NotAManager(SignInError):
    """The chosen operator may not approve manager-only actions (no attempt was counted)."""


class WeakPin(UserFacingError, ValueError):
    """A new PIN the policy refuses; str() says why and what to choose instead."""


# --- policies --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LockoutPolicy:
    max_attempts: int = 5
    lockout: dt.timedelta = dt.timedelta(minutes=5)

    @classmethod
    def from_settings(cls, settings: Any) -> LockoutPolicy:
        ui = settings.ui
        return cls(max_attempts=ui.lockout_attempts, lockout=dt.timedelta(seconds=ui.lockout_seconds))


# PINs people pick first (beyond the patterns pin_problem finds on its own): keypad shapes, dates, words.
COMMON_PINS = frozenset({
    "112233", "111222", "222333", "123321", "321123", "102030", "101010", "147258", "258369", "369258",
    "159753", "753159", "147852", "258147", "789456", "456789", "654987", "963852", "852963", "741852",
    "123654", "147369", "100000", "200000", "007007", "131313", "696969", "420420", "112211", "121121",
    "000007", "123000", "000123", "199999", "999000", "110110", "520520", "314159", "271828", "789789",
})


def is_pin_shape(pin: str) -> bool:
    """PIN_LENGTH ASCII digits: what the pad can type (str.isdigit alone takes ², ４ and ٤)."""
    return len(pin) == PIN_LENGTH and pin.isascii() and pin.isdigit()


def pin_problem(pin: str) -> str | None:
    """Why a new PIN is refused, or None when it is acceptable.

    PINs are PIN_LENGTH digits (the pad takes exactly that many). Refused: one digit repeated
    (000000, 111111), runs up or down (123456, 654321, 890123), short repeats (121212, 123123),
    and a short list of common ones. Demo data does not go through this (it hashes its PINs directly)."""
    if not is_pin_shape(pin):
        return f"A PIN is {PIN_LENGTH} digits (0-9)."
    digits = [int(c) for c in pin]
    steps = {(b - a) % 10 for a, b in pairwise(digits)}
    if steps == {0}:
        return "That PIN is one digit repeated: choose one that is hard to guess."
    if steps in ({1}, {9}):
        return "That PIN is a run of digits (like 123456 or 654321): choose one that is hard to guess."
    for period in (2, 3):
        if pin == pin[:period] * (PIN_LENGTH // period):
            return "That PIN repeats a short pattern (like 121212): choose one that is hard to guess."
    if pin in COMMON_PINS:
        return "That PIN is one of the most common: choose one that is hard to guess."
    return None


def require_good_pin(pin: str) -> None:
    """Raises WeakPin when the policy refuses the new PIN."""
    problem = pin_problem(pin)
    if problem:
        raise WeakPin(problem)


def confirm_new_pin(pin: str, again: str) -> str:
    """A new PIN typed twice (screens): the same both times, and one the policy accepts. Raises WeakPin."""
    pin, again = pin.strip(), again.strip()
    if pin != again:
        raise WeakPin("The two PINs are not the same: type the new PIN twice.")
    require_good_pin(pin)
    return pin


# --- helpers -----------------------------------------------------------------------------------------------


@overload
def as_utc(value: dt.datetime) -> dt.datetime: ...
@overload
def as_utc(value: None) -> None: ...
@overload
def as_utc(value: dt.datetime | None) -> dt.datetime | None: ...
def as_utc(value: dt.datetime | None) -> dt.datetime | None:
    """SQLite hands back naive datetimes: every stored time is UTC."""
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def saved_id(value: int | None) -> int:
    """The id of a row read from the database or flushed to it: set by then."""
    assert value is not None, "a row read or flushed has its id"
    return value


def wait_text(delta: dt.timedelta) -> str:
    seconds = max(1, int(delta.total_seconds() + 0.999))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes} min {secs:02d} s" if minutes else f"{secs} s"


@dataclass(frozen=True)
class Purpose:
    """What a PIN check is for: the audit actions it writes and the words it uses."""

    failed_action: str  # one row per failed attempt
    what: str  # "sign in", "approve …": for messages

    @classmethod
    def sign_in(cls) -> Purpose:
        return cls("operator.sign_in_failed", "sign in")

    @classmethod
    def approval(cls, action: str) -> Purpose:
        return cls("operator.approval_failed", f"approve {action}")


@dataclass(frozen=True)
class _Reserved:
    attempt: int
    name: str
    role: str
    pin_hash: str
    locks: bool  # this attempt reached max_attempts: the operator is locked unless the PIN is right


def _operators_table() -> Table:
    """The operator table, for the conditional UPDATEs that count attempts in the database."""
    table = sa_inspect(Operator).local_table
    assert isinstance(table, Table)
    return table


class TerminalService:
    """The shape of the operator services (PinService, OperatorService, OperatorAdmin): the database, the
    terminal their audit rows name, the PIN lockout policy and a clock (injectable: tests move time)."""

    def __init__(self, db: Database, terminal: str, *, policy: LockoutPolicy | None = None,
                 clock: Callable[[], dt.datetime] | None = None) -> None:
        self.db = db
        self.terminal = terminal
        self.policy = policy or LockoutPolicy()
        self.clock = clock or utcnow

    @classmethod
    def from_services(cls, services: Services) -> Self:
        return cls(services.db, services.terminal, policy=LockoutPolicy.from_settings(services.settings),
                   clock=services.clock)


class PinService(TerminalService):
    """Checks operator PINs for one terminal."""

    # --- the check ------------------------------------------------------------------------------------------

    def verify(self, operator_id: int, pin: str, *, purpose: Purpose, roles: frozenset[Role] | None = None,
               detail: dict[str, Any] | None = None,
               then: Callable[[Session, Actor], T] | None = None) -> tuple[Actor, T | None]:
        """Check `pin` for the operator; on success run `then(session, actor)` in the transaction that clears
        the failure count, and return (the operator as an Actor at this terminal, what `then` returned).

        `roles`: only these roles may pass (others are refused with NotAManager, no attempt counted).
        `detail` goes on the failure audit rows. Raises WrongPin, LockedOut, NotAManager, SignInError."""
        now = self.clock()
        reserved = self._reserve(operator_id, now, roles)
        # scrypt takes a moment: outside any transaction. Malformed PINs cost an attempt but no scrypt.
        ok = is_pin_shape(pin) and verify_pin(pin, reserved.pin_hash)
        who = Actor(reserved.name, Role(reserved.role), self.terminal, operator_id)
        if ok:
            t = _operators_table()
            with self.db.write() as s:
                cleared = s.execute(
                    update(t).where(t.c.id == operator_id, t.c.active == true(), t.c.pin_hash == reserved.pin_hash)
                    .values(failed_attempts=0, locked_until=None).returning(t.c.id)).first()
                if cleared is None:  # disabled, or the PIN changed, while it was checked
                    raise SignInError(f"{reserved.name}'s PIN or status changed just now: try again.")
                result = then(s, who) if then is not None else None
            return who, result
        raise self._failed(who, reserved, now, purpose, detail or {})

    def _reserve(self, operator_id: int, now: dt.datetime, roles: frozenset[Role] | None) -> _Reserved:
        t = _operators_table()
        max_attempts = max(1, self.policy.max_attempts)
        until = literal(now + self.policy.lockout, t.c.locked_until.type)
        # After an expired lockout the count starts again at 1 (SET expressions see the old row).
        attempt = case((t.c.locked_until.is_(None), t.c.failed_attempts + 1), else_=1)
        conditions = [t.c.id == operator_id, t.c.active == true(), t.c.pin_hash != SSH_ONLY,
                      or_(t.c.locked_until.is_(None), t.c.locked_until <= now)]
        if roles is not None:
            conditions.append(t.c.role.in_([str(r) for r in roles]))
        stmt = (update(t).where(*conditions)
                .values(failed_attempts=attempt, locked_until=case((attempt >= max_attempts, until), else_=null()))
                .returning(t.c.failed_attempts, t.c.name, t.c.role, t.c.pin_hash))
        for _ in range(3):
            with self.db.write() as s:
                row = s.execute(stmt).first()
                if row is not None:
                    return _Reserved(row[0], row[1], row[2], row[3], row[0] >= max_attempts)
                op = s.get(Operator, operator_id)
                if op is None or not op.active or op.pin_hash == SSH_ONLY:
                    raise SignInError("This operator cannot sign in here: pick a name from the list.")
                if roles is not None and Role(op.role) not in roles:
                    raise NotAManager(f"{op.name} is not a manager: a manager must enter their own PIN.")
                locked_until = as_utc(op.locked_until)
                if locked_until is not None and locked_until > now:
                    raise LockedOut(self._locked_message(op.name, locked_until - now), locked_until)
            # Unlocked by a manager between the UPDATE and the read (PostgreSQL, READ COMMITTED): again.
        raise SignInError("The PIN could not be checked just now: try again.")

    def _failed(self, who: Actor, reserved: _Reserved, now: dt.datetime, purpose: Purpose,
                detail: dict[str, Any]) -> SignInError:
        with self.db.write() as s:
            audit.record(s, who, purpose.failed_action, "operator", who.operator_id,
                         after={**detail, "attempt": reserved.attempt, "terminal": self.terminal})
            if reserved.locks:
                until = now + self.policy.lockout
                audit.record(s, who, "operator.locked_out", "operator", who.operator_id,
                             after={**detail, "locked_until": until.isoformat(), "terminal": self.terminal,
                                    "while": purpose.what})
        if reserved.locks:
            return LockedOut(f"Wrong PIN {self.policy.max_attempts} times: {who.name} is locked out for "
                             f"{wait_text(self.policy.lockout)}. Try again later, or ask a manager to unlock.",
                             now + self.policy.lockout)
        left = max(0, self.policy.max_attempts - reserved.attempt)
        return WrongPin(f"Wrong PIN for {who.name}: {left} {'try' if left == 1 else 'tries'} left before a "
                        f"{wait_text(self.policy.lockout)} lockout.", left)

    def _locked_message(self, name: str, remaining: dt.timedelta) -> str:
        return (f"{name} is locked out after {self.policy.max_attempts} wrong PINs: try again in "
                f"{wait_text(remaining)}, or ask a manager to unlock.")

    # --- a manager approves in place --------------------------------------------------------------------------

    def managers(self) -> list[tuple[int, str, dt.datetime | None]]:
        """Active managers who have a PIN: (id, name, locked_until), by name."""
        with self.db.read() as s:
            rows = s.exec(select(Operator).where(col(Operator.active).is_(True), Operator.role == Role.MANAGER,
                                                 Operator.pin_hash != SSH_ONLY).order_by(col(Operator.name))).all()
            return [(saved_id(o.id), o.name, as_utc(o.locked_until)) for o in rows]

    def approve_manager(self, manager_id: int, pin: str, *, action: str, entity: str | None = None,
                        entity_id: Any = None, requested_by: Actor | None = None) -> Actor:
        """A manager approves `action` (on entity/entity_id) with their own PIN: returns them as an Actor.

        Audited either way: `operator.approval_failed` per wrong PIN (counting toward that manager's
        lockout, like the PIN pad), `operator.locked_out`, and `operator.approved` with the manager's name
        and id, the action, the entity and who asked. A locked-out manager is refused."""
        detail = {"for": action, "entity": entity, "entity_id": None if entity_id is None else str(entity_id),
                  "requested_by": requested_by.name if requested_by else None}

        def approved(s: Session, manager: Actor) -> None:
            audit.record(s, manager, "operator.approved", entity or "operator", entity_id,
                         after={**detail, "manager": manager.name, "manager_operator_id": manager.operator_id,
                                "terminal": self.terminal})

        manager, _ = self.verify(manager_id, pin, purpose=Purpose.approval(action), roles=frozenset({Role.MANAGER}),
                                 detail=detail, then=approved)
        return manager

    def manager_by_name(self, name: str) -> int:
        """The id of the active manager with this name (as on the PIN pad; case does not matter)."""
        wanted = name.strip().casefold()
        for op_id, op_name, _ in self.managers():
            if op_name.casefold() == wanted:
                return op_id
        raise NotAManager(f"No active manager is named {name!r}: use the name shown on the PIN pad.")
