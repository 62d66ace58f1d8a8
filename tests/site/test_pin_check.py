"""One PIN check (issue 15, item 2): the lockout holds against many terminals at once, and the manager
override goes through the same check (failures counted, lockout honoured, approvals audited)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from sqlmodel import select

from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin
from db.models import AuditLog, Operator, Role
from tests.helpers import forked

pytestmark = pytest.mark.both_databases  # the database matters here (tests/conftest.py)

TERMINALS = 8
GUESSES_EACH = 3
MAX_ATTEMPTS = 5

# The terminals: one process imports the services once (verify_pin patched first, so the count is of real PIN
# checks whichever module does them: one line each into a file, O_APPEND), then forks one process per
# terminal. Each opens its own connection, says it is ready and waits on the start line: a pipe the parent
# closes, which releases every one of them at once. Each then guesses wrong PINs for one operator and
# prints its outcomes. (Forking after the imports spares each terminal a second of start-up; the script itself
# is forked from the warm interpreter of tests/helpers/forked.py, which has not imported the auth services.)
GUESSERS = textwrap.dedent("""
    import os, sys
    url, operator_id, counter, terminals, guesses = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    approve = sys.argv[6] == "approve"
    from clarity_tui.services import pin_check
    from clarity_tui.services.operators import LockoutPolicy, OperatorService, SignInError
    real_verify = pin_check.verify_pin
    def counting_verify(pin, stored):
        fd = os.open(counter, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, b"x\\n")
        finally:
            os.close(fd)
        return real_verify(pin, stored)
    pin_check.verify_pin = counting_verify  # the name the PIN check calls (whatever was imported before)
    from db.engine import Database
    import datetime as dt

    def terminal(n, ready_w, start_r):
        terminal = f"term-{n}"
        db = Database.from_url(url)
        with db.read() as s:  # a warm connection: the race starts at the PIN check, not at connect
            pass
        svc = OperatorService(db, terminal, policy=LockoutPolicy(max_attempts=%d, lockout=dt.timedelta(minutes=5)))
        os.write(ready_w, b"r")
        assert os.read(start_r, 1) == b""  # the parent closed the start line
        outcomes = []
        for i in range(guesses):
            try:
                pin = "%%06d" %% (200000 + i * 7919 + n * 13)
                if approve:  # the manager override's check (pin_check.PinService.approve_manager)
                    svc.pins().approve_manager(operator_id, pin, action="migration.billing_date_override")
                else:
                    svc.sign_in(operator_id, pin)
                outcomes.append("signed-in")
            except SignInError as exc:
                outcomes.append(type(exc).__name__)
        os.write(1, (" ".join(outcomes) + "\\n").encode())
        db.dispose()

    ready_r, ready_w = os.pipe()
    start_r, start_w = os.pipe()
    pids = []
    for n in range(terminals):
        pid = os.fork()
        if pid == 0:
            os.close(ready_r)
            os.close(start_w)
            code = 1
            try:
                terminal(n, ready_w, start_r)
                code = 0
            finally:
                os._exit(code)
        pids.append(pid)
    os.close(ready_w)
    os.close(start_r)
    got = b""
    while len(got) < terminals:  # every terminal is connected and waiting
        chunk = os.read(ready_r, terminals)
        assert chunk, "a terminal died before it was ready"
        got += chunk
    print("ready", flush=True)
    assert sys.stdin.readline().strip() == "go"
    os.close(start_w)  # release them together
    failed = [pid for pid in pids if os.waitpid(pid, 0)[1] != 0]
    sys.exit(1 if failed else 0)
""" % MAX_ATTEMPTS)


def _operator(db, name: str = "Pat Target", role: Role = Role.ATTENDANT, pin: str = "480917") -> int:  # noqa: ANN001
    with db.write() as s:
        op = Operator(name=name, role=role, pin_hash=hash_pin(pin))
        s.add(op)
        s.flush()
        return op.id  # type: ignore[return-value]


@pytest.mark.parametrize("check", ["sign-in", "approve"])
def test_eight_processes_guessing_at_once_check_at_most_the_policys_number_of_pins(db, db_url, tmp_path,  # noqa: ANN001
                                                                                  check: str) -> None:
    """8 real processes released together guess wrong PINs for one operator (at the PIN pad, or as the manager
    approving an override): at most max_attempts PINs are checked (scrypt) before the lockout, on SQLite and
    PostgreSQL, and the operator ends locked out. (Before the one PIN check, sign-in checked 11-12 here.)"""
    op_id = _operator(db, role=Role.MANAGER if check == "approve" else Role.ATTENDANT)
    counter = tmp_path / "checks"
    root = Path(__file__).resolve().parents[2]
    proc = forked.popen(["-c", GUESSERS, db.url, str(op_id), str(counter), str(TERMINALS), str(GUESSES_EACH), check],
                        stdin=forked.PIPE, stdout=forked.PIPE, text=True, cwd=root)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"  # every terminal waits
        out, _ = proc.communicate("go\n", timeout=180)
        assert proc.returncode == 0, out
        outcomes = out.split()
    finally:
        if proc.poll() is None:
            proc.kill()
    checks = len(counter.read_text().splitlines()) if counter.exists() else 0
    with db.read() as s:
        failed_action = "operator.approval_failed" if check == "approve" else "operator.sign_in_failed"
        failed = s.exec(select(AuditLog).where(AuditLog.action == failed_action,
                                               AuditLog.entity_id == str(op_id))).all()
        locked = s.exec(select(AuditLog).where(AuditLog.action == "operator.locked_out",
                                               AuditLog.entity_id == str(op_id))).all()
        op = s.get(Operator, op_id)
        assert op is not None
    assert len(outcomes) == TERMINALS * GUESSES_EACH and "signed-in" not in outcomes
    assert checks <= MAX_ATTEMPTS, f"{checks} PINs were checked against a policy of {MAX_ATTEMPTS}"
    assert 1 <= len(failed) <= MAX_ATTEMPTS and len(failed) == checks  # one audit row per PIN checked
    assert op.locked_until is not None, "the operator must end locked out"
    assert len(locked) == 1


# --- the manager override: one PIN check, with lockout and audit ---------------------------------------------


def _actions(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def test_override_brute_force_locks_the_manager_and_a_locked_out_managers_pin_is_refused(db) -> None:  # noqa: ANN001
    from clarity_tui.services.pin_check import LockedOut, PinService, WrongPin
    from tests.helpers.clock import Clock

    clock = Clock()
    morgan = _operator(db, "Morgan Manager", Role.MANAGER, "654321")
    attendant = Actor("Alex Attendant", Role.ATTENDANT, "lane-1")
    pins = PinService(db, "lane-1", clock=clock)
    approve = lambda pin: pins.approve_manager(  # noqa: E731
        morgan, pin, action="migration.billing_date_override", entity="sales_order", entity_id=42,
        requested_by=attendant)
    for left in (4, 3, 2, 1):
        with pytest.raises(WrongPin, match=f"{left} tr"):
            approve("000000")
    with pytest.raises(LockedOut, match="locked out for 5 min"):
        approve("000000")
    # Locked: even the manager's right PIN is refused (and not checked), and no more failures are counted.
    for _ in range(3):
        with pytest.raises(LockedOut, match="try again in"):
            approve("654321")
    failed = _actions(db, "operator.approval_failed")
    assert len(failed) == MAX_ATTEMPTS
    assert {(a.entity_id, a.after["for"], a.after["entity"], a.after["entity_id"], a.after["requested_by"])
            for a in failed} == {(str(morgan), "migration.billing_date_override", "sales_order", "42", "Alex Attendant")}
    locked = _actions(db, "operator.locked_out")
    assert len(locked) == 1 and locked[0].after["for"] == "migration.billing_date_override"
    assert _actions(db, "operator.approved") == []
    # After the lockout the count starts again, and the approval is audited with the manager's name and id.
    clock.advance(301)
    manager = approve("654321")
    assert (manager.name, manager.role, manager.operator_id, manager.terminal) == ("Morgan Manager", Role.MANAGER,
                                                                                  morgan, "lane-1")
    [approved] = _actions(db, "operator.approved")
    assert (approved.actor, approved.operator_id, approved.entity, approved.entity_id) == (
        "Morgan Manager", morgan, "sales_order", "42")
    assert approved.after["for"] == "migration.billing_date_override" and approved.after["manager"] == "Morgan Manager"
    assert approved.after["requested_by"] == "Alex Attendant"


def test_a_manager_locked_out_at_the_pin_pad_cannot_approve_an_override(db) -> None:  # noqa: ANN001
    from clarity_tui.services.operators import OperatorService
    from clarity_tui.services.pin_check import LockedOut, SignInError

    morgan = _operator(db, "Morgan Manager", Role.MANAGER, "654321")
    pad = OperatorService(db, "lane-2")
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(SignInError):
            pad.sign_in(morgan, "111111")
    with pytest.raises(LockedOut):
        pad.pins().approve_manager(morgan, "654321", action="migration.billing_date_override")
    # ...and the other way round: wrong override PINs count toward the PIN pad's lockout.
    other = _operator(db, "Robin Manager", Role.MANAGER, "583920")
    for _ in range(MAX_ATTEMPTS):
        with pytest.raises(SignInError):
            pad.pins().approve_manager(other, "111111", action="x")
    with pytest.raises(LockedOut):
        pad.sign_in(other, "583920")


def test_only_managers_approve_and_choosing_a_non_manager_costs_no_attempt(db) -> None:  # noqa: ANN001
    from clarity_tui.services.pin_check import NotAManager, PinService, SignInError

    alex = _operator(db, "Alex Attendant", Role.ATTENDANT, "480917")
    pins = PinService(db, "lane-1")
    with pytest.raises(NotAManager):
        pins.approve_manager(alex, "480917", action="migration.billing_date_override")
    with db.read() as s:
        assert s.get(Operator, alex).failed_attempts == 0  # type: ignore[union-attr]
    with pytest.raises(NotAManager, match="No active manager is named"):
        pins.manager_by_name("Alex Attendant")
    with pytest.raises(SignInError, match="cannot sign in"):
        pins.approve_manager(9999, "480917", action="x")
    assert _actions(db, "operator.approved") == [] and _actions(db, "operator.approval_failed") == []


def test_a_right_pin_clears_the_count_and_a_pin_changed_mid_check_does_not_pass(db) -> None:  # noqa: ANN001
    from clarity_tui.services.auth import hash_pin
    from clarity_tui.services.operators import OperatorService
    from clarity_tui.services.pin_check import WrongPin

    op_id = _operator(db)
    svc = OperatorService(db, "lane-1")
    for _ in range(3):
        with pytest.raises(WrongPin):
            svc.sign_in(op_id, "000000")
    svc.sign_in(op_id, "480917")
    with db.read() as s:
        op = s.get(Operator, op_id)
        assert op is not None and (op.failed_attempts, op.locked_until) == (0, None)
    with pytest.raises(WrongPin, match="4 tries left"):
        svc.sign_in(op_id, "000000")

    # The PIN changes (a manager sets a new one) between the reservation and the check: the old PIN does not
    # sign in, even though it matched the hash read at the reservation.
    from clarity_tui.services import pin_check

    real = pin_check.verify_pin

    def verify_then_change(pin: str, stored: str) -> bool:
        with db.write() as s:
            row = s.get(Operator, op_id)
            assert row is not None
            row.pin_hash = hash_pin("630529")
            s.add(row)
        return real(pin, stored)

    pin_check.verify_pin = verify_then_change  # type: ignore[assignment]
    try:
        with pytest.raises(pin_check.SignInError, match="changed just now"):
            svc.sign_in(op_id, "480917")
    finally:
        pin_check.verify_pin = real  # type: ignore[assignment]
    assert svc.sign_in(op_id, "630529").actor.operator_id == op_id


# --- the PIN policy ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pin", ["000000", "999999", "123456", "234567", "456789", "567890", "901234", "654321",
                                 "987654", "210987", "121212", "909090", "123123", "480480", "112233", "147258",
                                 "159753", "12345", "1234567", "12345a", "", "12 345"])
def test_the_policy_refuses_short_and_trivial_pins(pin: str) -> None:
    from clarity_tui.services.pin_check import WeakPin, pin_problem, require_good_pin

    assert pin_problem(pin)
    with pytest.raises(WeakPin):
        require_good_pin(pin)


@pytest.mark.parametrize("pin", ["480917", "375912", "630529", "102938", "582046", "135792"])
def test_the_policy_accepts_ordinary_pins(pin: str) -> None:
    from clarity_tui.services.pin_check import confirm_new_pin, pin_problem

    assert pin_problem(pin) is None
    assert confirm_new_pin(f" {pin}", pin) == pin


def test_a_new_pin_must_be_typed_the_same_twice() -> None:
    from clarity_tui.services.pin_check import WeakPin, confirm_new_pin

    with pytest.raises(WeakPin, match="not the same"):
        confirm_new_pin("480917", "480971")


def test_demo_data_keeps_its_pins(demo_db) -> None:  # noqa: ANN001
    """The demo operators' PINs are trivial on purpose (README): the demo seed does not go through the policy."""
    from clarity_tui.services.operators import OperatorService
    from tests.helpers.signin import PINS

    svc = OperatorService(demo_db, "lane-1")
    by_name = {c.name: c.id for c in svc.choices()}
    for name, pin in PINS.items():
        assert svc.sign_in(by_name[name], pin).actor.name == name


def test_the_pin_services_run_headless_and_the_pin_screens_load_without_the_orm() -> None:
    from tests.helpers.imports import loaded_modules

    assert loaded_modules(["clarity_tui.services.pin_check", "clarity_tui.services.operator_admin",
                    "clarity_tui.cli_operators"], ("textual",)) == []
    assert loaded_modules(["clarity_tui.screens.operators", "clarity_tui.widgets.manager_pin"],
                   ("sqlalchemy", "sqlmodel", "pydantic", "alembic")) == []
