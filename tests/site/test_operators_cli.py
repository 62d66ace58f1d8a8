"""`clarity-tui operators add|list|disable|set-pin|unlock` on SQLite (issue 15, item 1).

Through click's CliRunner on the real root command: the same parsing, prompts and one-line errors as a
person gets. Every refusal is one line on stderr with exit code 2, never a traceback."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner, Result
from sqlmodel import select

from clarity_tui.cli import cli
from clarity_tui.services.operators import OperatorService, SignInError
from db.models import AuditLog, Operator

PAT_PIN = "480917"
KIM_PIN = "375912"


def run(db_url: str, *args: str, input: str | None = None, **env: str) -> Result:  # noqa: A002
    return CliRunner().invoke(cli, ["--db", db_url, "operators", *args], input=input, env=env or None)


def refused(result: Result, text: str) -> None:
    """Exit 2, one line on stderr that says `text`, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and text in lines[0], result.stderr
    assert "Traceback" not in result.output


def _op(db, name: str) -> Operator:  # noqa: ANN001
    with db.read() as s:
        return s.exec(select(Operator).where(Operator.name == name)).one()


def _audit(db, action: str) -> list[AuditLog]:  # noqa: ANN001
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def _first_manager(db_url: str) -> None:
    result = run(db_url, "add", "Pat Lee", "--role", "manager", input=f"{PAT_PIN}\n{PAT_PIN}\n")
    assert result.exit_code == 0, result.output
    assert "Added Pat Lee (manager): the site's first manager." in result.stdout


def test_a_new_site_has_no_operators_and_its_first_manager_needs_no_approval(db, db_url: str) -> None:  # noqa: ANN001
    listed = run(db_url, "list")
    assert listed.exit_code == 0 and "No operators yet" in listed.stdout
    # The first operator must be a manager (someone has to be able to add the others).
    refused(run(db_url, "add", "Kim Ray", "--role", "attendant", "--pin", KIM_PIN), "add its first manager first")
    # The PIN is prompted twice, hidden; a mismatch asks again.
    result = run(db_url, "add", "Pat Lee", "--role", "manager", input=f"{PAT_PIN}\n{PAT_PIN}0\n{PAT_PIN}\n{PAT_PIN}\n")
    assert result.exit_code == 0, result.output
    assert PAT_PIN not in result.output  # hidden input
    assert "Added Pat Lee (manager): the site's first manager." in result.stdout
    created = _audit(db, "operator.created")
    assert [(a.actor, a.after["via"]) for a in created] == [("Pat Lee", "first-run")]
    assert PAT_PIN not in json.dumps(created[0].after)
    pat = _op(db, "Pat Lee")
    assert pat.pin_hash.startswith("scrypt$") and OperatorService(db, "t").sign_in(pat.id, PAT_PIN).actor.name == "Pat Lee"
    # Now there is an operator: a second "first manager" needs a manager's approval like any add.
    refused(run(db_url, "add", "Eve Intruder", "--role", "manager", "--pin", KIM_PIN), "needs a manager")
    with db.read() as s:
        assert [o.name for o in s.exec(select(Operator))] == ["Pat Lee"]


def test_add_list_set_pin_disable_unlock_with_a_managers_pin(db, db_url: str) -> None:  # noqa: ANN001
    _first_manager(db_url)
    # A wrong manager PIN is refused and counts toward Pat's lockout, like the PIN pad.
    refused(run(db_url, "add", "Kim Ray", "--role", "attendant", "--pin", KIM_PIN, "--manager", "Pat Lee",
                CLARITY_MANAGER_PIN="913846"), "Wrong PIN for Pat Lee: 4 tries left")
    assert _op(db, "Pat Lee").failed_attempts == 1
    refused(run(db_url, "add", "Kim Ray", "--role", "attendant", "--pin", KIM_PIN, "--manager", "Nobody"),
            "No active manager is named 'Nobody'")
    # The right PIN (from the environment, or prompted) adds the operator; the count starts again.
    result = run(db_url, "add", "Kim Ray", "--role", "attendant", "--manager", "pat lee",
                 CLARITY_MANAGER_PIN=PAT_PIN, CLARITY_NEW_PIN=KIM_PIN)
    assert result.exit_code == 0 and "Added Kim Ray (attendant)." in result.stdout, result.output
    assert _op(db, "Pat Lee").failed_attempts == 0
    refused(run(db_url, "add", "KIM  ray", "--role", "technician", "--pin", "529174", "--manager", "Pat Lee",
                CLARITY_MANAGER_PIN=PAT_PIN), "already named 'KIM ray'")
    # An attendant cannot approve.
    refused(run(db_url, "add", "Lou Tech", "--role", "technician", "--pin", "529174", "--manager", "Kim Ray",
                CLARITY_MANAGER_PIN=KIM_PIN), "No active manager is named 'Kim Ray'")

    listed = run(db_url, "list")
    assert listed.exit_code == 0
    assert [line.split()[1:] for line in listed.stdout.splitlines()] == [
        ["Kim", "Ray", "attendant", "active"], ["Pat", "Lee", "manager", "active"]]

    # set-pin: the new PIN prompted twice; the old one stops working, the new one signs in.
    result = run(db_url, "set-pin", "Kim Ray", "--manager", "Pat Lee", input="630529\n630529\n",
                 CLARITY_MANAGER_PIN=PAT_PIN)
    assert result.exit_code == 0 and "New PIN set for Kim Ray." in result.stdout, result.output
    kim = _op(db, "Kim Ray")
    svc = OperatorService(db, "lane-1")
    with pytest.raises(SignInError):
        svc.sign_in(kim.id, KIM_PIN)
    assert svc.sign_in(kim.id, "630529").actor.name == "Kim Ray"

    # unlock: a locked-out operator is unlocked by a manager.
    for _ in range(5):
        with pytest.raises(SignInError):
            svc.sign_in(kim.id, "000000")
    assert "locked until" in run(db_url, "list").stdout
    result = run(db_url, "unlock", "Kim Ray", "--manager", "Pat Lee", CLARITY_MANAGER_PIN=PAT_PIN)
    assert result.exit_code == 0 and "Unlocked Kim Ray." in result.stdout, result.output
    assert svc.sign_in(kim.id, "630529").actor.name == "Kim Ray"

    # disable: they can no longer sign in; the list hides them unless --all; the last manager stays.
    refused(run(db_url, "disable", "Pat Lee", "--manager", "Pat Lee", CLARITY_MANAGER_PIN=PAT_PIN),
            "cannot disable yourself")
    result = run(db_url, "disable", "Kim Ray", "--manager", "Pat Lee", CLARITY_MANAGER_PIN=PAT_PIN)
    assert result.exit_code == 0 and "Disabled Kim Ray" in result.stdout, result.output
    with pytest.raises(SignInError, match="cannot sign in"):
        svc.sign_in(kim.id, "630529")
    assert "Kim Ray" not in run(db_url, "list").stdout
    everyone = json.loads(run(db_url, "list", "--all", "--json").stdout)
    assert [(o["name"], o["active"]) for o in everyone] == [("Pat Lee", True), ("Kim Ray", False)]
    refused(run(db_url, "set-pin", "Kim Ray", "--pin", "529174", "--manager", "Pat Lee", CLARITY_MANAGER_PIN=PAT_PIN),
            "No active operator is named 'Kim Ray'")

    # Every change is audited with the approving manager, and never with a PIN.
    assert [a.after["name"] for a in _audit(db, "operator.created")] == ["Pat Lee", "Kim Ray"]
    for action in ("operator.pin_changed", "operator.unlocked", "operator.disabled"):
        rows = _audit(db, action)
        assert len(rows) == 1 and rows[0].actor == "Pat Lee" and rows[0].entity_id == str(kim.id), action
    approvals = _audit(db, "operator.approved")
    # (an approval is recorded when the PIN checks out, also when the service then refuses the change)
    assert [a.after["for"] for a in approvals] == ["operators.add", "operators.add", "operators.set_pin",
                                                   "operators.unlock", "operators.disable", "operators.disable"]
    assert all(a.actor == "Pat Lee" and a.operator_id == _op(db, "Pat Lee").id for a in approvals)
    assert [a.after["for"] for a in _audit(db, "operator.approval_failed")] == ["operators.add"]
    with db.read() as s:
        dump = json.dumps([[a.before, a.after] for a in s.exec(select(AuditLog))])
    assert all(pin not in dump for pin in (PAT_PIN, KIM_PIN, "630529"))


@pytest.mark.parametrize("pin", ["000000", "111111", "123456", "654321", "890123", "121212", "123123", "112233",
                                 "12345", "1234567", "abcdef", "12 456",
                                 # digits no PIN pad can type: superscript, full-width, Arabic-Indic
                                 "\u00b282917", "\uff14\uff18\uff12\uff19\uff11\uff18", "\u0664\u0668\u0662\u0669\u0661\u0667"])
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_short_and_trivial_pins_are_refused_in_one_line(db, db_url: str, pin: str) -> None:  # noqa: ANN001
    result = run(db_url, "add", "Pat Lee", "--role", "manager", "--pin", pin)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith("Error: ") and ("PIN" in result.stderr) and "Traceback" not in result.output
    with db.read() as s:
        assert s.exec(select(Operator)).all() == []


def test_trivial_pins_are_refused_for_set_pin_too_before_the_managers_pin_is_checked(db, db_url: str) -> None:  # noqa: ANN001
    _first_manager(db_url)
    refused(run(db_url, "set-pin", "Pat Lee", "--pin", "999999", "--manager", "Pat Lee",
                CLARITY_MANAGER_PIN="000000"), "one digit repeated")
    assert _op(db, "Pat Lee").failed_attempts == 0  # no manager PIN was spent on it
    assert _audit(db, "operator.approval_failed") == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_bad_names_and_roles_are_one_line(db, db_url: str) -> None:  # noqa: ANN001
    refused(run(db_url, "add", "   ", "--role", "manager", "--pin", PAT_PIN), "Give the operator's name")
    refused(run(db_url, "add", "Pat\x1b[31mLee", "--role", "manager", "--pin", PAT_PIN), "control characters")
    refused(run(db_url, "add", "x" * 81, "--role", "manager", "--pin", PAT_PIN), "at most 80 characters")
    refused(run(db_url, "add", "bob (ssh)", "--role", "manager", "--pin", PAT_PIN), "support sessions over SSH")
    refused(run(db_url, "add", "Morgan\uff08ssh\uff09", "--role", "manager", "--pin", PAT_PIN), "support sessions over SSH")
    refused(run(db_url, "add", "\u0301", "--role", "manager", "--pin", PAT_PIN), "Give the operator's name")
    result = run(db_url, "add", "Pat Lee", "--role", "owner", "--pin", PAT_PIN)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and "owner" in result.stderr


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_look_alike_of_an_active_operators_name_is_the_same_name(db, db_url: str) -> None:  # noqa: ANN001
    _first_manager(db_url)
    # Full-width letters (NFKC folds them): the pad and the audit would show two "Pat Lee".
    refused(run(db_url, "add", "\uff30at  LEE", "--role", "manager", "--pin", KIM_PIN, "--manager", "Pat Lee",
                CLARITY_MANAGER_PIN=PAT_PIN), "already named")
    listed = run(db_url, "list")
    assert listed.exit_code == 0 and listed.stdout.count("Pat Lee") == 1, listed.output


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_pin_prompt_whose_input_ends_is_one_line_and_exit_2(db, db_url: str) -> None:  # noqa: ANN001
    result = run(db_url, "add", "Pat Lee", "--role", "manager", input="")  # stdin closed before the PIN
    refused(result, "aborted, nothing was changed")
    with db.read() as s:
        assert s.exec(select(Operator)).all() == []
