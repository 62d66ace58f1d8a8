"""Managing operators: add, list, disable, set a PIN, unlock, and the first manager of a new site.

The CLI (`clarity-tui operators …`) and the manager's screen (screens/operators.py) both call this.
Managers only (the first manager excepted: a site with no PIN operators at all may create one manager
without approval, at the first-run screen or with `operators add NAME --role manager`). Every change
writes an audit row; PINs never appear in one. New PINs go through the PIN policy (pin_check.pin_problem);
the demo data does not (it hashes its PINs directly).

Names identify operators (on the PIN pad, in `--manager`), so two active operators never share a name
(case does not matter). Adds are serialised: BEGIN IMMEDIATE on SQLite, a transaction advisory lock on
PostgreSQL, so "no operators yet" and "name not taken" stay true until the insert commits.
"""

from __future__ import annotations

import datetime as dt
import unicodedata
from dataclasses import dataclass

from sqlalchemy import func, text
from sqlmodel import Session, col, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin
from clarity_tui.services.permissions import Permission, PermissionDenied, require
from clarity_tui.services.pin_check import SSH_ONLY, TerminalService, as_utc, require_good_pin, saved_id
from db.models import Operator, OperatorShift, Role

NAME_MAX = 80
ROLES = (Role.ATTENDANT, Role.MANAGER, Role.SUPPORT, Role.TECHNICIAN)
_ADVISORY_KEY = 0x0C1A_0015  # PostgreSQL: one operator change at a time (pg_advisory_xact_lock)


class OperatorAdminError(UserFacingError):
    """A refused change; str() says what happened and what to do. Nothing was changed."""


class SiteAlreadySetUp(OperatorAdminError):
    """The first-manager form lost a race: the site got its operators meanwhile."""


@dataclass(frozen=True)
class OperatorRow:
    id: int
    name: str
    role: str
    active: bool
    locked_until: dt.datetime | None
    failed_attempts: int
    created_at: dt.datetime | None

    def locked(self, now: dt.datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now

    def status(self, now: dt.datetime) -> str:
        if not self.active:
            return "disabled"
        if self.locked(now):
            return f"locked until {self.locked_until:%H:%M:%S} UTC"
        return "active"


def name_key(name: str) -> str:
    """What two names are compared by: NFKC (full-width and other look-alike forms folded), spaces, case."""
    return " ".join(unicodedata.normalize("NFKC", name).split()).casefold()


def clean_name(name: str) -> str:
    """The operator's name as stored: NFKC, trimmed, single spaces; refused if empty, too long or odd."""
    cleaned = " ".join(unicodedata.normalize("NFKC", name).split())
    if not cleaned or not any(c.isalnum() for c in cleaned):
        raise OperatorAdminError("Give the operator's name (as it should appear on the PIN pad).")
    if len(cleaned) > NAME_MAX:
        raise OperatorAdminError(f"A name is at most {NAME_MAX} characters.")
    if any(unicodedata.category(c).startswith("C") for c in cleaned):
        raise OperatorAdminError("A name cannot contain control characters.")
    if name_key(cleaned).endswith("(ssh)"):
        raise OperatorAdminError("Names ending in '(ssh)' are kept for support sessions over SSH.")
    return cleaned


def parse_role(role: str | Role) -> Role:
    try:
        value = Role(str(role).strip().lower())
    except ValueError:
        value = None
    if value is None or value not in ROLES:
        raise OperatorAdminError(f"Unknown role {role!r}: choose one of {', '.join(r.value for r in ROLES)}.")
    return value


class OperatorAdmin(TerminalService):
    """Operator management for one terminal (the audit rows name it)."""

    # --- reading -------------------------------------------------------------------------------------------

    def needs_first_manager(self) -> bool:
        """No operator with a PIN exists (active or not): the site's first manager may be created."""
        with self.db.read() as s:
            return self._pin_operators(s) == 0

    def list(self, *, include_disabled: bool = True) -> list[OperatorRow]:
        """Operators with a PIN (not the SSH support accounts): active first, then by name."""
        with self.db.read() as s:
            q = select(Operator).where(Operator.pin_hash != SSH_ONLY)
            if not include_disabled:
                q = q.where(col(Operator.active).is_(True))
            rows = s.exec(q.order_by(col(Operator.active).desc(), col(Operator.name), col(Operator.id))).all()
            return [_row(o) for o in rows]

    def find(self, name: str) -> OperatorRow:
        """The active operator with this name (case does not matter)."""
        wanted = name_key(name)
        for row in self.list(include_disabled=False):
            if name_key(row.name) == wanted:
                return row
        raise OperatorAdminError(f"No active operator is named {name!r}: see `clarity-tui operators list`.")

    # --- changes -------------------------------------------------------------------------------------------

    def add(self, by: Actor, name: str, role: str | Role, pin: str) -> OperatorRow:
        """A manager adds an operator with a PIN (the policy applies)."""
        _require_manager(by, "add operators")
        return self._add(name, role, pin, by=by, first=False)

    def add_first_manager(self, name: str, pin: str) -> OperatorRow:
        """The site's first manager, with no approval: only while no operator has a PIN at all."""
        return self._add(name, Role.MANAGER, pin, by=None, first=True)

    def _add(self, name: str, role: str | Role, pin: str, *, by: Actor | None, first: bool) -> OperatorRow:
        cleaned, chosen = clean_name(name), parse_role(role)
        require_good_pin(pin)
        pin_hash = hash_pin(pin)  # scrypt: before the write lock is taken
        with self.db.write() as s:
            self._serialise(s)
            if first and self._pin_operators(s) > 0:
                raise SiteAlreadySetUp("This site already has operators: a manager must add new ones "
                                         "(sign in as a manager, or give --manager).")
            if self._active_named(s, cleaned) is not None:
                raise OperatorAdminError(f"An active operator is already named {cleaned!r}: choose another name "
                                         "(e.g. add an initial).")
            op = Operator(name=cleaned, role=chosen, pin_hash=pin_hash)
            s.add(op)
            s.flush()
            actor = by or Actor(cleaned, chosen, self.terminal, op.id)
            audit.record(s, actor, "operator.created", "operator", op.id,
                         after={"name": cleaned, "role": str(chosen), "terminal": self.terminal,
                                "via": "first-run" if first else "manager"})
            return _row(op)

    def disable(self, by: Actor, operator_id: int) -> OperatorRow:
        """A manager disables an operator: they can no longer sign in; their open shifts end. Their history
        stays. The last active manager cannot be disabled, nor can a manager disable themselves."""
        _require_manager(by, "disable operators")
        now = self.clock()
        with self.db.write() as s:
            self._serialise(s)
            op = self._get(s, operator_id)
            if not op.active:
                raise OperatorAdminError(f"{op.name} is already disabled.")
            if op.id == by.operator_id:
                raise OperatorAdminError("You cannot disable yourself: ask another manager.")
            if Role(op.role) == Role.MANAGER and self._active_managers(s) <= 1:
                raise OperatorAdminError(f"{op.name} is the last active manager: add another manager first.")
            op.active = False
            s.add(op)
            for shift in s.exec(select(OperatorShift).where(OperatorShift.operator_id == op.id,
                                                            col(OperatorShift.signed_out_at).is_(None))):
                shift.signed_out_at, shift.signout_reason = now, "disabled"
                s.add(shift)
            audit.record(s, by, "operator.disabled", "operator", op.id, before={"active": True},
                         after={"active": False, "name": op.name, "terminal": self.terminal})
            return _row(op)

    def set_pin(self, by: Actor, operator_id: int, pin: str) -> OperatorRow:
        """A manager sets an operator's new PIN (the policy applies). It also lifts a lockout."""
        _require_manager(by, "set PINs")
        require_good_pin(pin)
        pin_hash = hash_pin(pin)
        with self.db.write() as s:
            op = self._get(s, operator_id)
            if not op.active:
                raise OperatorAdminError(f"{op.name} is disabled: their PIN cannot be set.")
            before = {"failed_attempts": op.failed_attempts,
                      "locked_until": op.locked_until.isoformat() if op.locked_until else None}
            op.pin_hash, op.failed_attempts, op.locked_until = pin_hash, 0, None
            s.add(op)
            audit.record(s, by, "operator.pin_changed", "operator", op.id, before=before,
                         after={"name": op.name, "locked_until": None, "terminal": self.terminal})
            return _row(op)

    def unlock(self, by: Actor, operator_id: int) -> OperatorRow:
        """A manager lifts a PIN lockout."""
        _require_manager(by, "unlock operators")
        with self.db.write() as s:
            op = self._get(s, operator_id)
            before = {"failed_attempts": op.failed_attempts,
                      "locked_until": op.locked_until.isoformat() if op.locked_until else None}
            op.failed_attempts, op.locked_until = 0, None
            s.add(op)
            audit.record(s, by, "operator.unlocked", "operator", op.id, before=before,
                         after={"locked_until": None, "terminal": self.terminal})
            return _row(op)

    # --- internals ----------------------------------------------------------------------------------------

    def _serialise(self, s: Session) -> None:
        if not self.db.is_sqlite:  # SQLite: db.write() is BEGIN IMMEDIATE already
            s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY})

    @staticmethod
    def _pin_operators(s: Session) -> int:
        return s.exec(select(func.count()).select_from(Operator).where(Operator.pin_hash != SSH_ONLY)).one()

    @staticmethod
    def _active_managers(s: Session) -> int:
        return s.exec(select(func.count()).select_from(Operator).where(
            col(Operator.active).is_(True), Operator.role == Role.MANAGER, Operator.pin_hash != SSH_ONLY)).one()

    @staticmethod
    def _active_named(s: Session, name: str) -> Operator | None:
        wanted = name_key(name)
        for op in s.exec(select(Operator).where(col(Operator.active).is_(True))):
            if name_key(op.name) == wanted:
                return op
        return None

    @staticmethod
    def _get(s: Session, operator_id: int) -> Operator:
        op = s.get(Operator, operator_id)
        if op is None or op.pin_hash == SSH_ONLY:
            raise OperatorAdminError("No such operator (support accounts over SSH are not managed here).")
        return op


def _require_manager(by: Actor, what: str) -> None:
    """Permission.OPERATORS (managers), and a person with an operator row: the audit rows name them."""
    require(by, Permission.OPERATORS)
    if by.operator_id is None:
        raise PermissionDenied(f"{by.name} may not {what} without signing in: a manager signs in, or approves "
                               "with their PIN.")


def _row(op: Operator) -> OperatorRow:
    return OperatorRow(saved_id(op.id), op.name, str(op.role), bool(op.active), as_utc(op.locked_until),
                       op.failed_attempts, as_utc(op.created_at))
