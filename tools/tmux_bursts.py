#!/usr/bin/env python3
"""Drive the real app in tmux with keys sent as bursts (issue 14's "Done when").

    python tools/tmux_bursts.py [--size 80x24] [--size 120x40] [--only NAME,...] [--runs N] [--keep]

Each run: a fresh temp data dir (XDG_DATA/CONFIG/STATE/CACHE_HOME under /tmp, never the user's), the demo
seeded once (`clarity-tui --simulate demo seed`) and copied, known cars put on the lanes through the
sessions service (a quiet scenario: no random arrivals), then `clarity-tui --simulate --scenario quiet.toml`
in a detached tmux session at the given size with TEXTUAL_COLOR_SYSTEM=standard TERM=linux. Keys go in as
bursts (one `tmux send-keys` call, no pauses); between steps the driver polls `tmux capture-pane -p`
until a screen condition holds or a deadline passes (no fixed sleeps). After each scenario: no traceback
on the pane, the process alive, and the database (sqlite3, read-only) holds exactly the expected rows.

A crash is: "Traceback", "DuplicateIds", a Python exception line, the calm error screen ("Something went
wrong"), the process gone, or a new entry in the app's crash.log (XDG_STATE_HOME/clarity-tui/log). A scenario
that fails is recorded with the keys sent, the pane and the rows, and the app is restarted (fresh data dir)
for the next one. Exit code: 0 when every scenario passed, 1 otherwise. Writes only under /tmp.

    BURSTS_STEP_TIMEOUT=45   seconds a step may wait for its screen
    BURSTS_BOOTS=5           starts in fast_boot (`clarity-tui --simulate`, no scenario: the fast boot path)
    --code DIR               run another copy of the code (e.g. `git archive HEAD | tar -x -C DIR`) with this
                             venv, to check that the driver catches the old defects
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = REPO / ".venv" / "bin"
CLI = str(VENV_BIN / "clarity-tui")
PY = str(VENV_BIN / "python")
EXIT_MARK = "__APP_EXITED__"
STEP_TIMEOUT = float(os.environ.get("BURSTS_STEP_TIMEOUT", "45"))
CODE_ENV: dict[str, str] = {}  # --code DIR: run another checkout's clarity_tui (PYTHONPATH) with this venv
WALKUP_PLATE = "XQZ-4417"
WALKUP2_PLATE = "KJW-2210"
DOUBLE_PLATE = "HPN-7731"
DUP_PLATE = "ZNT-5582"

QUIET = """name = "quiet"
initial_vehicles = 0
dwell_minutes = 240
[arrivals]
per_minute = 0
misread_rate = 0
seed = 1
"""

INJECT = r"""
import json, sys
from clarity_tui.config import load_settings
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.sessions import SessionService
from clarity_tui.services.actor import Actor
from hardware.plate_reader.base import PlateEvent
settings = load_settings(None, simulate=True)
db = open_database(settings)
svc = SessionService(db)
actor = Actor.system("plate-camera", settings.terminal_id)
for plate, lane, make, model, colour in json.loads(sys.argv[1]):
    svc.record_plate_read(PlateEvent(plate=plate, lane=lane, region="US-TX", make=make, model=model,
                                     colour=colour), actor)
"""


class StepFailed(Exception):
    pass


class AppDied(StepFailed):
    pass


# ---------------------------------------------------------------------------------------------- tmux


def keys_for(*parts: str | list[str]) -> list[str]:
    """Key names as tmux knows them; a list item is literal text, split into characters."""
    out: list[str] = []
    for p in parts:
        if isinstance(p, list):
            for text in p:
                for ch in text:
                    out.append({" ": "Space", ";": "\\;"}.get(ch, ch))
        else:
            out.append(p)
    return out


def T(text: str) -> list[str]:
    return [text]


class Tmux:
    def __init__(self, socket: str, size: tuple[int, int]) -> None:
        self.socket = socket
        self.size = size
        self.bursts = 0
        self.log: list[str] = []

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=check)

    def start(self, cmd: str, env: dict[str, str], cwd: str) -> None:
        cols, rows = self.size
        envs = " ".join(f"{k}={sh(v)}" for k, v in env.items())
        wrapped = f"cd {sh(cwd)} && env {envs} {cmd}; echo {EXIT_MARK} rc=$?; sleep 100000"
        self.run("kill-server", check=False)
        deadline = time.monotonic() + 15
        while True:  # the old server may still be going away: retry until the socket takes a new one
            r = self.run("new-session", "-d", "-s", "app", "-x", str(cols), "-y", str(rows), wrapped, check=False)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise StepFailed(f"tmux new-session failed: {r.stderr.strip()}")
            self.run("kill-server", check=False)
            time.sleep(0.2)
        self.run("set-option", "-t", "app", "history-limit", "5000", check=False)

    def burst(self, *parts: str | list[str]) -> None:
        ks = keys_for(*parts)
        self.bursts += 1
        self.log.append(" ".join(ks))
        self.run("send-keys", "-t", "app", *ks)

    def screen(self) -> str:
        return self.run("capture-pane", "-p", "-t", "app", check=False).stdout

    def history(self) -> str:
        return self.run("capture-pane", "-p", "-S", "-5000", "-t", "app", check=False).stdout

    def kill(self) -> None:
        self.run("kill-server", check=False)


def sh(s: str) -> str:
    return "'" + s.replace("'", "'\"'\"'") + "'"


# ---------------------------------------------------------------------------------------------- one app


BAD_MARKERS = ("Traceback", EXIT_MARK, "DuplicateIds", "Something went wrong")
ERROR_LINE = re.compile(r"(?m)^\W*[A-Za-z_.]+(Error|Exception): ")  # a Python exception line ("KeyError: ...")


class App:
    """One running app in tmux, on its own temp data dir."""

    def __init__(self, template_db: Path, size: tuple[int, int], cars: list[tuple], keep: bool) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="tmux_bursts_"))
        self.env = {
            "XDG_DATA_HOME": str(self.root / "data"), "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_STATE_HOME": str(self.root / "state"), "XDG_CACHE_HOME": str(self.root / "cache"),
            "HOME": str(self.root / "home"),
        }
        for v in self.env.values():
            Path(v).mkdir(parents=True, exist_ok=True)
        self.db_path = self.root / "data" / "clarity-tui" / "simulator.db"
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(template_db, self.db_path)
        (self.root / "quiet.toml").write_text(QUIET)
        env = {**os.environ, **self.env, **CODE_ENV}
        subprocess.run([PY, "-c", INJECT, json.dumps(cars)], env=env, cwd=str(self.root), check=True,
                       capture_output=True, text=True)
        self.tmux = Tmux(f"tb{os.getpid()}x{self.root.name[-6:]}", size)
        self.keep = keep
        self.errors_seen: list[str] = []
        self.crash_seen = 0

    def start(self) -> None:
        env = {**self.env, **CODE_ENV, "TEXTUAL_COLOR_SYSTEM": "standard", "TERM": "linux"}
        self.tmux.start(f"{sh(CLI)} --simulate --scenario {sh(str(self.root / 'quiet.toml'))}", env, str(self.root))

    def crash_log(self) -> Path:
        return self.root / "state" / "clarity-tui" / "log" / "crash.log"

    def check_alive(self, screen: str | None = None) -> None:
        screen = self.tmux.screen() if screen is None else screen
        log = self.crash_log()
        if log.exists() and log.stat().st_size > self.crash_seen:
            text = log.read_text(errors="replace")
            self.crash_seen = len(text.encode())
            raise AppDied(f"the app logged a crash ({log}):\n" + "\n".join(text.rstrip().splitlines()[-14:]))
        for bad in BAD_MARKERS:
            if bad in screen:
                hist = self.tmux.history()
                raise AppDied(f"'{bad}' on the pane:\n{excerpt(hist, bad)}")
        m = ERROR_LINE.search(screen)
        if m:
            raise AppDied(f"an exception line on the pane:\n{excerpt(screen, m.group(0).strip())}")

    def wait(self, what: str, pred, timeout: float = STEP_TIMEOUT) -> str:
        """Poll the pane until pred(screen) is true; fail on a traceback or exit."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.tmux.screen()
            self.check_alive(screen)
            if pred(screen):
                return screen
            time.sleep(0.1)
        raise StepFailed(f"timed out ({timeout:.0f}s) waiting for {what}; last keys: "
                         f"{self.tmux.log[-1] if self.tmux.log else '-'}\n--- pane ---\n{screen.rstrip()}")

    def wait_text(self, *texts: str, timeout: float = STEP_TIMEOUT) -> str:
        return self.wait(" or ".join(repr(t) for t in texts), lambda s: any(t in s for t in texts), timeout)

    def sign_in(self) -> None:
        self.wait_text("PIN for Alex Attendant", timeout=90)
        self.tmux.burst(T("123456"))
        self.wait_board()

    def wait_board(self, timeout: float = STEP_TIMEOUT) -> str:
        return self.wait("the lanes board", lambda s: "— Lanes" in s and "Sign in" not in s and "PIN" not in s, timeout)

    def to_board(self) -> None:
        """Esc until the board shows (a confirm-discard prompt gets its discard key)."""
        for _ in range(8):
            s = self.tmux.screen()
            self.check_alive(s)
            if "— Lanes" in s and "Sign in" not in s:
                return
            if "Discard" in s or "discard" in s:
                self.tmux.burst("d")
            self.tmux.burst("Escape")
            try:
                self.wait("a screen change", lambda x, s=s: x != s, timeout=6)
            except StepFailed:
                pass
        self.wait_board(timeout=10)

    def db(self) -> sqlite3.Connection:
        con = sqlite3.connect(f"file:{self.db_path}?mode=ro", uri=True, timeout=10)
        con.row_factory = sqlite3.Row
        return con

    def q(self, sql: str, *args) -> list[dict]:
        con = self.db()
        try:
            return [dict(r) for r in con.execute(sql, args).fetchall()]
        finally:
            con.close()

    def wait_db(self, what: str, sql: str, args: tuple, pred, timeout: float = STEP_TIMEOUT) -> list[dict]:
        deadline = time.monotonic() + timeout
        rows: list[dict] = []
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                rows = self.q(sql, *args)
            except sqlite3.OperationalError:
                rows = []
            if pred(rows):
                return rows
            time.sleep(0.2)
        raise StepFailed(f"database never showed {what}: {rows}")

    def stop(self) -> None:
        self.tmux.kill()
        if not self.keep:
            shutil.rmtree(self.root, ignore_errors=True)


def excerpt(text: str, mark: str, before: int = 5, after: int = 30) -> str:
    lines = text.rstrip().splitlines()
    idx = next((i for i, line in enumerate(lines) if mark in line), len(lines) - 1)
    return "\n".join(lines[max(0, idx - before): idx + after])


# ---------------------------------------------------------------------------------------------- data


@dataclass
class Cast:
    """Who is who in the seeded demo (read from the template, not hard-coded)."""

    ivana: dict = field(default_factory=dict)       # returning customer with a saved card, no membership
    ivana_plate: str = ""
    second: dict = field(default_factory=dict)      # another returning customer with a card, no membership
    second_plate: str = ""
    legacy: dict = field(default_factory=dict)      # an active legacy member
    legacy_plate: str = ""
    legacy2: dict = field(default_factory=dict)
    legacy2_plate: str = ""
    legacy3: dict = field(default_factory=dict)
    legacy3_plate: str = ""
    related: dict = field(default_factory=dict)     # a customer to relate to Ivana
    third: dict = field(default_factory=dict)       # a customer with no membership (the duplicate-phone walk-up)
    member: dict = field(default_factory=dict)      # a current member whose plate has a 1 (misread as I)
    member_plate: str = ""
    misread_plate: str = ""
    max_customer_id: int = 0                        # customers above this one were created by the scenarios

    def cars(self) -> list[tuple]:
        return [
            (self.ivana_plate, "Lane 1", None, None, None),
            (self.legacy_plate, "Pre-Gate", None, None, None),
            (WALKUP_PLATE, "Lane 2", "Toyota", "Camry", "Blue"),
            (self.second_plate, "Lane 3", None, None, None),
            (WALKUP2_PLATE, "Lane 2", "Honda", "Civic", "Red"),
            (DOUBLE_PLATE, "Lane 3", "Ford", "Focus", "White"),
            (DUP_PLATE, "Lane 1", "Kia", "Soul", "Green"),
            (self.legacy2_plate, "Pre-Gate", None, None, None),
            (self.legacy3_plate, "Pre-Gate", None, None, None),
            (self.misread_plate, "Lane 1", None, None, None),
        ]


CAST = Cast()


def load_cast(db_path: Path) -> Cast:
    con = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    con.row_factory = sqlite3.Row
    q = lambda sql, *a: [dict(r) for r in con.execute(sql, a).fetchall()]  # noqa: E731
    c = Cast()
    no_member_with_card = q(
        "select c.* from customer c where exists (select 1 from payment_method p where p.customer_id=c.id and p.is_default)"
        " and not exists (select 1 from membership m where m.customer_id=c.id)"
        " and (select count(*) from vehicle v where v.customer_id=c.id)=1 order by c.id")
    c.ivana = next(r for r in no_member_with_card if r["customer_number"] == "C100000")
    c.second = next(r for r in no_member_with_card if r["id"] != c.ivana["id"]
                    and r["last_name"] != c.ivana["last_name"])
    c.third = next(r for r in no_member_with_card if r["id"] not in (c.ivana["id"], c.second["id"]))
    c.ivana_plate = q("select plate from vehicle where customer_id=?", c.ivana["id"])[0]["plate"]
    c.second_plate = q("select plate from vehicle where customer_id=?", c.second["id"])[0]["plate"]
    legacies = q("select l.*, p.plate_raw from legacy_member l join legacy_member_plate p on p.legacy_member_id=l.id"
                 " where l.status='active' and l.migrated_at is null and l.phone_e164 is not null order by l.id")
    prefixes = {p.split("-")[0] for p in (c.ivana_plate, c.second_plate, WALKUP_PLATE, WALKUP2_PLATE, DOUBLE_PLATE,
                                          DUP_PLATE)}
    picked = []
    for lm in legacies:  # plates whose first letters are unique on the board (the '/' jump types them)
        pre = lm["plate_raw"].split("-")[0]
        if pre not in prefixes and not any(ch in "hjkl" for ch in pre.lower()[:1]):
            prefixes.add(pre)
            picked.append(lm)
        if len(picked) == 3:
            break
    members = q("select v.plate, c.* from vehicle v join vehicle_claim vc on vc.vehicle_id=v.id join membership m on "
                "m.id=vc.membership_id join customer c on c.id=v.customer_id where m.status='active' order by v.id")
    for mb in members:
        pre, digits = mb["plate"].split("-", 1) if "-" in mb["plate"] else ("", "")
        if pre and "1" in digits and pre not in prefixes and pre[0].lower() not in "hjkl":
            prefixes.add(pre)
            c.member, c.member_plate = mb, mb["plate"]
            i = digits.rindex("1")
            c.misread_plate = f"{pre}-{digits[:i]}I{digits[i + 1:]}"
            break
    c.legacy, c.legacy2, c.legacy3 = picked
    c.legacy_plate, c.legacy2_plate, c.legacy3_plate = (x["plate_raw"] for x in picked)
    c.related = q("select * from customer where id not in (?, ?, ?) order by id limit 1", c.ivana["id"], c.second["id"],
                  c.third["id"])[0]
    c.max_customer_id = q("select max(id) m from customer")[0]["m"]
    con.close()
    return c


def prep_template(workdir: Path) -> Path:
    env = {**os.environ, "XDG_DATA_HOME": str(workdir / "data"), "XDG_CONFIG_HOME": str(workdir / "config"),
           "XDG_STATE_HOME": str(workdir / "state"), "XDG_CACHE_HOME": str(workdir / "cache"),
           "HOME": str(workdir / "home"), **CODE_ENV}
    for k in ("XDG_DATA_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "HOME"):
        Path(env[k]).mkdir(parents=True, exist_ok=True)
    r = subprocess.run([CLI, "--simulate", "demo", "seed"], env=env, cwd=str(REPO), capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"demo seed failed: {r.stdout}{r.stderr}")
    return workdir / "data" / "clarity-tui" / "simulator.db"


# ---------------------------------------------------------------------------------------------- checks


def expect(cond: bool, msg: str, problems: list[str]) -> None:
    if not cond:
        problems.append(msg)


def sig_points(app: App, customer_id: int) -> list[tuple[int, int]]:
    out = []
    for row in app.q("select strokes from signature where customer_id=? order by id", customer_id):
        strokes = json.loads(row["strokes"] or "[]")
        out.append((len(strokes), sum(len(s) for s in strokes)))
    return out


def open_on_board(app: App, plate: str) -> list:
    """The burst that opens a plate's session from the board: '/' then the plate's first letters."""
    return ["/", T(plate.split("-")[0]), "Enter"]


def finish_signature_and_agree(app: App, done_title: str) -> None:
    """On the signature screen: wait for the pad to finish ("Signed."), Agree, wait for the done screen."""
    s = app.wait_text("Signed.", done_title)
    if done_title not in s:
        app.tmux.burst("F5")
        app.wait_text(done_title)


def leave_done(app: App) -> None:
    """Done (Enter) on the confirmation returns to the session; then Esc to the board."""
    app.tmux.burst("Enter")
    app.wait("the confirmation closed", lambda x: "complete" not in x.splitlines()[0] if x else False)
    app.to_board()


# ---------------------------------------------------------------------------------------------- scenarios


def sc_sale_returning_burst(app: App, cast: Cast) -> list[str]:
    """Seed 000: Ivana Zoom's sale from the board as one burst: / DMV Enter F2 2 Enter Enter F2 F5."""
    problems: list[str] = []
    app.tmux.burst(*open_on_board(app, cast.ivana_plate), "F2", "2", "Enter", "Enter", "F2", "F5")
    s = app.wait_text("Sale complete", "Signed.", "Customer signature")
    if "Sale complete" not in s:
        finish_signature_and_agree(app, "Sale complete")
    ms = app.q("select m.*, p.code from membership m join plan p on p.id=m.plan_id where customer_id=?", cast.ivana["id"])
    expect(len(ms) == 1, f"memberships for {cast.ivana['first_name']} {cast.ivana['last_name']}: {ms}", problems)
    if ms:
        expect(ms[0]["code"] == "DELUXE" and ms[0]["status"] == "active" and ms[0]["source"] == "sale",
               f"membership row: plan {ms[0]['code']} status {ms[0]['status']} source {ms[0]['source']}", problems)
    sig = sig_points(app, cast.ivana["id"])
    expect(len(sig) == 1 and sig[0][1] >= 40, f"signature (strokes, points): {sig}", problems)
    cust = app.q("select first_name,last_name,phone_e164,email from customer where id=?", cast.ivana["id"])[0]
    expect(cust == {k: cast.ivana[k] for k in cust}, f"customer changed: {cust}", problems)
    leave_done(app)
    return problems


def sc_walkup_new_customer(app: App, cast: Cast) -> list[str]:
    """Seed 000 for an unknown car: the quick customer form typed as one burst (Jo Enter Smith Enter ...)."""
    problems: list[str] = []
    app.tmux.burst(*open_on_board(app, WALKUP_PLATE), "F2", "1")
    app.wait_text("First name")
    app.tmux.burst(T("Jo"), "Enter", T("Smith"), "Enter", T("5125550199"), "Enter", T("jo.smith@example.com"), "Enter")
    app.wait_text("Payment method")
    app.tmux.burst("r")
    app.wait_text("Visa", "Mastercard", "Amex")
    app.tmux.burst("Enter")
    app.wait_text("Checkout summary")
    app.tmux.burst("Enter")
    app.wait_text("Membership terms", "Customer signature")
    app.tmux.burst("F2")
    app.wait_text("Customer signature")
    finish_signature_and_agree(app, "Sale complete")
    rows = app.q("select id,first_name,last_name,phone_e164,email from customer where id > ? and (phone_e164="
                 "'+15125550199' or lower(email)='jo.smith@example.com' or first_name like 'Jo%' or last_name like"
                 " '%Smith%')", cast.max_customer_id)
    expect(len(rows) == 1, f"customers like Jo Smith: {rows}", problems)
    if rows:
        r = rows[0]
        expect((r["first_name"], r["last_name"], r["phone_e164"], r["email"]) ==
               ("Jo", "Smith", "+15125550199", "jo.smith@example.com"), f"customer fields: {r}", problems)
        vs = app.q("select plate_normalized from vehicle where customer_id=?", r["id"])
        expect([v["plate_normalized"] for v in vs] == [WALKUP_PLATE.replace("-", "")], f"vehicles: {vs}", problems)
        ms = app.q("select m.status, p.code from membership m join plan p on p.id=m.plan_id where customer_id=?", r["id"])
        expect(ms == [{"status": "active", "code": "BASIC"}], f"memberships: {ms}", problems)
    leave_done(app)
    return problems


def check_migrated(app: App, lm: dict, email: str, problems: list[str]) -> None:
    rows = app.q("select id,first_name,last_name,phone_e164,email from customer where id > ? and (first_name=? and "
                 "last_name=? or lower(email)=? or phone_e164=?)", CAST.max_customer_id, lm["first_name"],
                 lm["last_name"], email, lm["phone_e164"])
    expect(len(rows) == 1, f"customers for the legacy member: {rows}", problems)
    if rows:
        r = rows[0]
        expect((r["first_name"], r["last_name"], r["phone_e164"], r["email"]) ==
               (lm["first_name"], lm["last_name"], lm["phone_e164"], email), f"customer fields: {r}", problems)
        ms = app.q("select status, source, next_billing_on, legacy_member_id from membership where customer_id=?", r["id"])
        expect(len(ms) == 1 and ms[0]["source"] == "migration" and ms[0]["next_billing_on"] == lm["next_bill_on"]
               and ms[0]["legacy_member_id"] == lm["id"], f"memberships: {ms} (legacy next bill {lm['next_bill_on']})",
               problems)


def sc_migrate_legacy(app: App, cast: Cast) -> list[str]:
    """Seed 001: That's Me and the typed email as one burst (F5 then the email then F5), card, checkout, sign."""
    problems: list[str] = []
    lm = cast.legacy
    email = f"{lm['first_name']}.{lm['last_name']}.mig@example.com".lower()
    app.tmux.burst(*open_on_board(app, cast.legacy_plate), "F3")
    app.wait_text("That's Me")
    app.wait_text(lm["last_name"])
    app.tmux.burst("F5", T(email), "F5")
    s = app.wait_text("Card on file", "Contact details")
    if "Card on file" not in s:
        # the email's Confirm may be waiting: show where the keys went
        s = app.wait_text("Card on file", timeout=15)
    app.tmux.burst("r")
    app.wait_text("Card: Visa", "Card: Master", "Card: Amex")
    app.tmux.burst("F5")
    app.wait_text("Checkout summary")
    app.tmux.burst("Enter")
    app.wait_text("Membership terms")
    app.tmux.burst("F2")
    app.wait_text("Customer signature")
    finish_signature_and_agree(app, "Migration complete")
    check_migrated(app, lm, email, problems)
    leave_done(app)
    return problems


def sc_search_record_edit(app: App, cast: Cast) -> list[str]:
    """Seed 002: F7 and the keyword typed at once, then the record's General tab edited in one burst."""
    problems: list[str] = []
    c = cast.second
    app.tmux.burst("F7", T(c["email"]), "Enter")
    app.wait_text(f"#{c['customer_number']}")
    app.wait_text(c["email"])
    app.tmux.burst("Tab", "Tab", "End", "C-u", T("5125550123"), "Tab", "End", "C-u", T("new.mail@example.com"), "F2")
    app.wait_db("the record saved", "select phone_e164, email from customer where id=?", (c["id"],),
                lambda rows: rows and rows[0]["phone_e164"] != c["phone_e164"], timeout=20)
    row = app.q("select first_name,last_name,phone_e164,email from customer where id=?", c["id"])[0]
    want = {"first_name": c["first_name"], "last_name": c["last_name"], "phone_e164": "+15125550123",
            "email": "new.mail@example.com"}
    expect(row == want, f"record saved as {row}, wanted {want}", problems)
    app.to_board()
    return problems


def sc_f7_type_immediately(app: App, cast: Cast) -> list[str]:
    """F7 then the keyword at once: every key reaches the search field (results for it show)."""
    problems: list[str] = []
    c = cast.ivana
    app.tmux.burst("F7", T(c["customer_number"]))
    name = f"{c['first_name']} {c['last_name']}"
    s = app.wait("the search with its result", lambda x: "Customer search" in x and (name in x or "No customer" in x
                 or "No match" in x), timeout=20)
    expect(name in s, f"search after F7 did not find the typed customer number:\n{s.rstrip()}", problems)
    expect(c["customer_number"] in s.split("Name")[0], f"typed text not (all) in the search field:\n{s.rstrip()}",
           problems)
    app.to_board()
    return problems


def sc_double_enter_board(app: App, cast: Cast) -> list[str]:
    """Enter Enter on a board bubble: one session screen, no DuplicateIds; Esc returns to the board."""
    problems: list[str] = []
    app.tmux.burst("/", T(DOUBLE_PLATE.split("-")[0]), "Enter", "Enter")
    app.wait_text(f"· {DOUBLE_PLATE}")
    app.tmux.burst("Escape")
    s = app.wait_board(timeout=20)
    expect("— Lanes" in s, "Esc after Enter Enter did not return to the board", problems)
    for _ in range(2):  # and again, quicker: the bubble keeps focus
        app.tmux.burst("Enter", "Enter", "Enter")
        app.wait_text(f"· {DOUBLE_PLATE}")
        app.tmux.burst("Escape")
        app.wait_board(timeout=20)
    return problems


def sc_double_enter_search(app: App, cast: Cast) -> list[str]:
    """Enter Enter on search results: one record, Esc back to the results, no DuplicateIds."""
    problems: list[str] = []
    app.tmux.burst("F7")
    app.wait_text("Customer search")
    app.tmux.burst(T(cast.ivana["last_name"]))
    app.wait_text(f"{cast.ivana['first_name']} {cast.ivana['last_name']}")
    app.tmux.burst("Down", "Enter", "Enter")
    app.wait_text("General  Related")
    app.wait_text("#C")
    app.tmux.burst("Escape")
    s = app.wait_text("Customer search", "— Lanes", timeout=20)
    expect("Customer search" in s, "Esc from the record did not return to the search", problems)
    app.to_board()
    return problems


def sc_related_search(app: App, cast: Cast) -> list[str]:
    """Seed 002 Related tab, record opened via F7: Ctrl+N, the dialog's Search, pick a customer, save."""
    problems: list[str] = []
    c, other = cast.ivana, cast.related
    app.tmux.burst("F7", T(c["email"]), "Enter")
    app.wait_text(f"#{c['customer_number']}")
    app.tmux.burst("F6", "C-n")
    app.wait_text("Add a related customer")
    # the dialog's Search button: focus order is the relationship select, Customer #, Save, Search
    app.tmux.burst("Tab", "Tab", "Tab", "Enter")
    s = app.wait_text("Customer search", "Pick a customer", timeout=20)
    app.tmux.burst(T(other["customer_number"]))
    app.wait_text(f"{other['first_name']} {other['last_name']}")
    app.tmux.burst("Down", "Enter")
    app.wait_text(other["customer_number"])
    app.wait_text("Add a related customer")
    app.tmux.burst("F2")
    app.wait_db("the relationship", "select * from customer_relationship where customer_id=? or related_customer_id=?",
                (c["id"], c["id"]), lambda rows: len(rows) >= 1, timeout=20)
    rel = app.q("select customer_id, related_customer_id, kind from customer_relationship where customer_id=? or "
                "related_customer_id=?", c["id"], c["id"])
    expect(len(rel) == 1 and {rel[0]["customer_id"], rel[0]["related_customer_id"]} == {c["id"], other["id"]},
           f"relationships: {rel}", problems)
    # and F7 from inside the record (a second search screen while one is on the stack)
    app.tmux.burst("F7")
    s = app.wait_text("Customer search")
    app.to_board()
    return problems


def sc_agree_early(app: App, cast: Cast) -> list[str]:
    """The signature's Agree key pressed as the signature screen opens (F2 F5 F5 in one burst): the sale must
    not complete on an unfinished signature; Clear (F3) then signs again."""
    problems: list[str] = []
    c = cast.second
    app.tmux.burst(*open_on_board(app, cast.second_plate), "F2", "1", "Enter", "Enter")
    app.wait_text("Membership terms")
    app.tmux.burst("F2", "F5", "F5")
    seen_signed = False
    deadline = time.monotonic() + STEP_TIMEOUT
    s = ""
    while time.monotonic() < deadline:
        s = app.tmux.screen()
        app.check_alive(s)
        seen_signed = seen_signed or "Signed." in s
        if "Sale complete" in s or "Signed." in s:
            break
        time.sleep(0.05)
    if "Sale complete" in s:
        expect(seen_signed, "Sale complete before the pad reported a finished signature (Agree accepted early)", problems)
    else:
        app.tmux.burst("F3")  # Clear: the simulated pad must sign again
        app.wait("the pad cleared", lambda x: "Signed." not in x, timeout=15)
        app.wait_text("Signed.", timeout=30)
        app.tmux.burst("F5")
        app.wait_text("Sale complete")
    sig = sig_points(app, c["id"])
    expect(len(sig) == 1 and sig[0][1] >= 40, f"signature (strokes, points): {sig}", problems)
    ms = app.q("select status from membership where customer_id=?", c["id"])
    expect(ms == [{"status": "active"}], f"memberships: {ms}", problems)
    leave_done(app)
    return problems


def sc_legacy_purchase_offer(app: App, cast: Cast) -> list[str]:
    """Purchase (F2) on a LEGACY bubble offers Migrate first (issue 14, 4)."""
    problems: list[str] = []
    app.tmux.burst(*open_on_board(app, cast.legacy2_plate))
    before = app.wait_text(f"· {cast.legacy2_plate}")
    app.tmux.burst("F2")
    # the plans (a failure if they come with no word of migrating) or an offer to migrate ("migrat" in lower
    # case: the session screen itself only has the capitalised button and footer "Migrate")
    s = app.wait("the plans or a migrate offer", lambda x: "Choose a plan" in x or "Legacy member" in x or "migrat" in x,
                 timeout=20)
    expect("Choose a plan" not in s or "migrat" in s.lower(),
           "F2 on a LEGACY session went straight to the plans with no word about migrating:\n" + s.rstrip(), problems)
    app.to_board()
    return problems


def check_customer(app: App, where: str, args: tuple, want: dict, problems: list[str]) -> dict | None:
    rows = app.q(f"select id,first_name,last_name,phone_e164,email from customer where id > ? and ({where})",
                 CAST.max_customer_id, *args)
    expect(len(rows) == 1, f"customers matching {want}: {rows}", problems)
    if len(rows) != 1:
        return None
    got = {k: rows[0][k] for k in want}
    expect(got == want, f"customer saved as {got}, wanted {want}", problems)
    return rows[0]


def sc_walkup_one_burst(app: App, cast: Cast) -> list[str]:
    """The walk-up sale from the board to the payment screen as ONE burst, across four screens:
    / KJW Enter F2 1 Al Enter Baker Enter 5125550177 Enter al.baker@example.com Enter."""
    problems: list[str] = []
    app.tmux.burst(*open_on_board(app, WALKUP2_PLATE), "F2", "1", T("Al"), "Enter", T("Baker"), "Enter",
                   T("5125550177"), "Enter", T("al.baker@example.com"), "Enter")
    s = app.wait_text("Payment method", timeout=30)
    r = check_customer(app, "phone_e164='+15125550177' or lower(email)='al.baker@example.com' or first_name like 'Al%'"
                       " or last_name like 'Baker%'", (), {"first_name": "Al", "last_name": "Baker",
                       "phone_e164": "+15125550177", "email": "al.baker@example.com"}, problems)
    if r:
        vs = app.q("select plate_normalized from vehicle where customer_id=?", r["id"])
        expect([v["plate_normalized"] for v in vs] == [WALKUP2_PLATE.replace("-", "")], f"vehicles: {vs}", problems)
    expect("Basic Wash Club" in s, "payment screen is not for plan 1 (Basic)", problems)
    app.to_board()
    return problems


def sc_migrate_one_burst(app: App, cast: Cast) -> list[str]:
    """Seed 001 from the board to the card step as ONE burst: / XXX Enter F3 F5 <email> F5, then R, F5, Enter,
    F2, (Signed.) F5."""
    problems: list[str] = []
    lm = cast.legacy3
    email = f"{lm['first_name']}.{lm['last_name']}.one@example.com".lower().replace("'", "")
    app.tmux.burst(*open_on_board(app, cast.legacy3_plate), "F3", "F5", T(email), "F5")
    app.wait_text("Card on file", timeout=40)
    app.tmux.burst("r")
    app.wait_text("Card: Visa", "Card: Master", "Card: Amex")
    app.tmux.burst("F5", "Enter", "F2")
    app.wait_text("Customer signature", timeout=40)
    finish_signature_and_agree(app, "Migration complete")
    check_migrated(app, lm, email, problems)
    leave_done(app)
    return problems


def sc_record_edit_one_burst(app: App, cast: Cast) -> list[str]:
    """Seed 002 as ONE burst before the record has loaded: F7 <email> Enter Tab Tab End ^U <phone> Tab End ^U
    <email> F2."""
    problems: list[str] = []
    c = cast.related
    app.tmux.burst("F7", T(c["email"]), "Enter", "Tab", "Tab", "End", "C-u", T("5125550166"), "Tab", "End", "C-u",
                   T("one.burst@example.com"), "F2")
    app.wait_text(f"#{c['customer_number']}", timeout=30)
    try:
        app.wait_db("the record saved", "select phone_e164 from customer where id=?", (c["id"],),
                    lambda rows: rows and rows[0]["phone_e164"] != c["phone_e164"], timeout=20)
    except AppDied:
        raise
    except StepFailed:
        pass
    row = app.q("select first_name,last_name,phone_e164,email from customer where id=?", c["id"])[0]
    want = {"first_name": c["first_name"], "last_name": c["last_name"], "phone_e164": "+15125550166",
            "email": "one.burst@example.com"}
    if row != want:
        problems.append(f"record saved as {row}, wanted {want}\n--- pane ---\n{app.tmux.screen().rstrip()}")
    app.to_board()
    return problems


def sc_lookalike_member(app: App, cast: Cast) -> list[str]:
    """A misread of a current member's plate (…1 read as …I): the session says "Looks like <plate> (<name>…)",
    Purchase asks first, and F5 corrects the session's plate (no second vehicle)."""
    problems: list[str] = []
    m = cast.member
    app.tmux.burst(*open_on_board(app, cast.misread_plate))
    app.wait_text(f"· {cast.misread_plate}")
    try:
        s = app.wait_text(f"Looks like {cast.member_plate}", timeout=15)
        expect(m["last_name"] in s, f"the look-alike hint does not name {m['first_name']} {m['last_name']}", problems)
    except AppDied:
        raise
    except StepFailed as exc:
        problems.append(f"no 'Looks like {cast.member_plate}' on the session of {cast.misread_plate}: {exc}")
    app.tmux.burst("F2")
    s = app.wait("the plans or a question", lambda x: "Choose a plan" in x or "member's car" in x
                 or "looks like" in x, timeout=20)
    expect("Choose a plan" not in s, f"Purchase on a look-alike of {cast.member_plate} went straight to the plans", problems)
    if "Choose a plan" in s:
        app.tmux.burst("Escape")
    else:
        app.tmux.burst("b")
    app.wait("the session again", lambda x: f"· {cast.misread_plate}" in x.splitlines()[0] if x else False, timeout=20)
    app.tmux.burst("F5")
    try:
        app.wait_db("the corrected plate", "select plate from vehicle_session where plate=? and status not in ('done')",
                    (cast.member_plate,), lambda rows: len(rows) >= 1, timeout=20)
    except AppDied:
        raise
    except StepFailed as exc:
        problems.append(f"F5 did not correct the session's plate: {exc}")
    vs = app.q("select plate from vehicle where plate_normalized=?", cast.misread_plate.replace("-", ""))
    expect(not vs, f"a vehicle with the misread plate exists: {vs}", problems)
    app.to_board()
    return problems


def sc_double_keys(app: App, cast: Cast) -> list[str]:
    """Every opening key twice in one burst: F4 F4 on a session, F7 F7, F2 F2; each opens one screen (one Esc
    goes back), never a DuplicateIds."""
    problems: list[str] = []
    app.tmux.burst(*open_on_board(app, cast.ivana_plate), "F4", "F4")
    app.wait_text(f"#{cast.ivana['customer_number']}")
    app.wait_text("General  Related")
    app.tmux.burst("Escape")
    s = app.wait("leaving the record", lambda x: "General  Related" not in x, timeout=20)
    expect(f"· {cast.ivana_plate}" in s.splitlines()[0], f"one Esc after F4 F4 is not back on the session:\n{s}",
           problems)
    app.to_board()
    app.tmux.burst("F7", "F7", "C-f")
    app.wait_text("Customer search")
    app.tmux.burst("Escape")
    s = app.wait("leaving the search", lambda x: "Customer search" not in x, timeout=20)
    expect("— Lanes" in s, f"one Esc after F7 F7 ^F is not back on the board:\n{s}", problems)
    app.to_board()
    app.tmux.burst(*open_on_board(app, DOUBLE_PLATE), "F2", "F2", "p")
    app.wait_text("Choose a plan")
    app.tmux.burst("Escape")
    s = app.wait("leaving the plans", lambda x: "Choose a plan" not in x, timeout=20)
    expect(f"· {DOUBLE_PLATE}" in s.splitlines()[0], f"one Esc after F2 F2 p is not back on the session:\n{s}",
           problems)
    app.to_board()
    return problems


def sc_unsaved_edit_prompt(app: App, cast: Cast) -> list[str]:
    """Esc with an unsaved edit on the General tab asks (Unsaved changes); Discard (d) leaves nothing saved."""
    problems: list[str] = []
    c = cast.second
    app.tmux.burst("F7", T(c["customer_number"]), "Enter")
    app.wait_text(f"#{c['customer_number']}")
    app.wait_text(c["first_name"])
    app.tmux.burst("End", T("zz"), "Escape")
    s = app.wait("a prompt or the screen gone", lambda x: "Unsaved changes" in x or f"#{c['customer_number']}" not in x,
                 timeout=20)
    expect("Unsaved changes" in s, "Esc dropped an unsaved edit with no prompt", problems)
    if "Unsaved changes" in s:
        app.tmux.burst("d")
        app.wait("the record closed", lambda x: "Unsaved changes" not in x and f"#{c['customer_number']}" not in x)
    row = app.q("select first_name from customer where id=?", c["id"])[0]
    expect(row["first_name"] == c["first_name"], f"first name saved as {row['first_name']!r}", problems)
    app.to_board()
    return problems


def sc_ctrl_p_palette(app: App, cast: Cast) -> list[str]:
    """Ctrl+P on the board opens the command palette (README)."""
    problems: list[str] = []
    app.tmux.burst("C-p")
    try:
        app.wait("the palette", lambda x: "Search for commands" in x or "command" in x.lower() and "— Lanes" not in x,
                 timeout=15)
    except AppDied:
        raise
    except StepFailed as exc:
        problems.append(f"Ctrl+P did not open the palette: {exc}")
    app.tmux.burst("Escape")
    app.to_board()
    return problems


def pin_burst_opens(app: App, when: str, problems: list[str]) -> None:
    """On the PIN pad: the PIN and '/ HPN Enter' in one burst must sign in and open HPN-7731's session."""
    app.wait_text("PIN for Alex Attendant", timeout=90)
    app.tmux.burst(T("123456"), *open_on_board(app, DOUBLE_PLATE))
    s = app.wait("the session or the board", lambda x: f"· {DOUBLE_PLATE}" in x or "— Lanes" in x and "PIN" not in x
                 or bool(re.search(r"Clarity — .+ · [A-Z0-9]+-[A-Z0-9]+", x.splitlines()[0] if x else "")), timeout=30)
    other = re.search(r"Clarity — .+ · ([A-Z0-9]+-[A-Z0-9]+)", s.splitlines()[0] if s else "")
    if other and other.group(1) != DOUBLE_PLATE:
        problems.append(f"{when}: keys typed with the PIN opened the WRONG session ({other.group(1)}, not "
                        f"{DOUBLE_PLATE}):\n{s.rstrip()}")
    elif f"· {DOUBLE_PLATE}" not in s:
        try:
            app.wait_text(f"· {DOUBLE_PLATE}", timeout=10)
        except AppDied:
            raise
        except StepFailed:
            problems.append(f"{when}: keys typed with the PIN were lost ({DOUBLE_PLATE} did not open):\n{s.rstrip()}")
    app.to_board()


def sc_signin_burst(app: App, cast: Cast) -> list[str]:
    """The PIN and the first board keys in one burst (123456 / HPN Enter): on a fresh start, after Ctrl+O, and
    after the app is killed and restarted on the same data (a terminal rebooted)."""
    problems: list[str] = []
    pin_burst_opens(app, "fresh start", problems)
    app.tmux.burst("C-o")
    pin_burst_opens(app, "after Ctrl+O", problems)
    app.tmux.kill()
    app.start()
    pin_burst_opens(app, "after a restart", problems)
    return problems


BOOTS = int(os.environ.get("BURSTS_BOOTS", "5"))


def sc_fast_boot(app: App, cast: Cast) -> list[str]:
    """`clarity-tui --simulate` with no scenario (the fast boot path, as `./dev demo`) started BOOTS times: each
    reaches the PIN pad, no traceback (the import race of issue 14)."""
    problems: list[str] = []
    env = {**app.env, **CODE_ENV, "TEXTUAL_COLOR_SYSTEM": "standard", "TERM": "linux"}
    ok = 0
    for i in range(BOOTS):
        app.tmux.start(f"{sh(CLI)} --simulate", env, str(app.root))
        try:
            app.wait_text("PIN for Alex Attendant", timeout=90)
            app.tmux.burst(T("123456"))
            app.wait("the board with its devices", lambda x: "— Lanes" in x and "camera" in x and "PIN" not in x,
                     timeout=60)
            app.check_alive()
            ok += 1
        except StepFailed as exc:
            problems.append(f"start {i + 1}/{BOOTS}: {exc}")
    print(f"    fast boot: {ok}/{BOOTS} starts reached the board with no crash", flush=True)
    app.tmux.kill()
    app.start()  # leave a running app behind, as the runner expects
    try:
        app.sign_in()
    except StepFailed as exc:
        problems.append(f"the last start: {exc}")
    return problems


FRESH = {"signin_burst", "fast_boot"}  # scenarios that start their own app and sign in themselves


def sc_walkup_duplicate_phone(app: App, cast: Cast) -> list[str]:
    """A walk-up typed with an existing customer's phone (one burst) is offered that customer ("Existing
    customer"); Use that customer (F5) links them: no second customer with that phone."""
    problems: list[str] = []
    c = cast.third
    digits = c["phone_e164"][-10:]
    app.tmux.burst(*open_on_board(app, DUP_PLATE), "F2", "1")
    app.wait_text("First name")
    app.tmux.burst(T("Pat"), "Enter", T("Dupe"), "Enter", T(digits), "Enter", T("pat.dupe@example.com"), "Enter")
    s = app.wait("an existing-customer offer or the payment", lambda x: "Existing customer" in x or "Payment method" in x,
                 timeout=30)
    expect("Existing customer" in s, f"no existing-customer offer for phone {c['phone_e164']}:\n{s.rstrip()}", problems)
    if "Existing customer" in s:
        app.tmux.burst("F5")
        app.wait_text("Payment method")
    rows = app.q("select id, first_name, last_name from customer where phone_e164=?", c["phone_e164"])
    expect(len(rows) == 1, f"customers with phone {c['phone_e164']}: {rows}", problems)
    app.to_board()
    return problems


SCENARIOS = {
    "sale_returning_burst": sc_sale_returning_burst,
    "walkup_new_customer": sc_walkup_new_customer,
    "migrate_legacy": sc_migrate_legacy,
    "search_record_edit": sc_search_record_edit,
    "f7_type_immediately": sc_f7_type_immediately,
    "double_enter_board": sc_double_enter_board,
    "double_enter_search": sc_double_enter_search,
    "related_search_from_f7": sc_related_search,
    "agree_early": sc_agree_early,
    "legacy_purchase_offer": sc_legacy_purchase_offer,
    "walkup_one_burst": sc_walkup_one_burst,
    "migrate_one_burst": sc_migrate_one_burst,
    "record_edit_one_burst": sc_record_edit_one_burst,
    "lookalike_member": sc_lookalike_member,
    "double_keys": sc_double_keys,
    "unsaved_edit_prompt": sc_unsaved_edit_prompt,
    "ctrl_p_palette": sc_ctrl_p_palette,
    "signin_burst": sc_signin_burst,
    "walkup_duplicate_phone": sc_walkup_duplicate_phone,
    "fast_boot": sc_fast_boot,
}


# ---------------------------------------------------------------------------------------------- runner


@dataclass
class Result:
    name: str
    size: str
    ok: bool
    seconds: float
    bursts: int
    detail: str = ""


def run_all(size: tuple[int, int], names: list[str], template: Path, cast: Cast, keep: bool,
            out: list[Result]) -> None:
    label = f"{size[0]}x{size[1]}"
    app: App | None = None
    for name in names:
        t0 = time.monotonic()
        if name in FRESH:
            if app is not None:
                app.stop()
            app = App(template, size, cast.cars(), keep)
            app.start()
        elif app is None:
            app = App(template, size, cast.cars(), keep)
            app.start()
            try:
                app.sign_in()
            except StepFailed as exc:
                out.append(Result(name, label, False, time.monotonic() - t0, app.tmux.bursts, f"sign-in: {exc}"))
                print(f"[{label}] {name}: FAIL (sign-in)\n{exc}", flush=True)
                app.stop()
                app = None
                continue
        b0 = app.tmux.bursts
        try:
            problems = SCENARIOS[name](app, cast)
            app.check_alive()
            ok = not problems
            detail = "\n".join(problems)
        except StepFailed as exc:
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        except Exception as exc:  # noqa: BLE001 - a driver bug: report it, go on
            ok, detail = False, "driver error: " + "".join(traceback.format_exception(exc))
        dt = time.monotonic() - t0
        out.append(Result(name, label, ok, dt, app.tmux.bursts - b0, detail))
        print(f"[{label}] {name}: {'PASS' if ok else 'FAIL'} ({dt:.0f}s, {app.tmux.bursts - b0} bursts)"
              + ("" if ok else "\n    keys: " + " | ".join(app.tmux.log[b0:]) + "\n" + indent(detail)), flush=True)
        if not ok:
            # start clean for the next one: a dead or confused app would fail everything after it
            if keep:
                print(f"    data dir kept: {app.root}", flush=True)
            app.stop()
            app = None
    if app is not None:
        app.stop()


def indent(s: str) -> str:
    return "\n".join("    " + line for line in s.splitlines())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", action="append", help="COLSxROWS (default 80x24 and 120x40)")
    ap.add_argument("--only", help="comma-separated scenario names: " + ", ".join(SCENARIOS))
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--keep", action="store_true", help="keep the temp data dirs of failed scenarios")
    ap.add_argument("--json", help="write the results to this file")
    ap.add_argument("--code", help="run the clarity_tui in this directory (e.g. a `git archive HEAD` copy) "
                    "instead of this checkout's, with this checkout's venv")
    args = ap.parse_args()
    if args.code:
        CODE_ENV["PYTHONPATH"] = str(Path(args.code).resolve())
    if shutil.which("tmux") is None:
        print("tmux is not installed (apt-get install -y tmux)", file=sys.stderr)
        return 2
    sizes = [tuple(int(x) for x in s.lower().split("x")) for s in (args.size or ["80x24", "120x40"])]
    names = args.only.split(",") if args.only else list(SCENARIOS)
    work = Path(tempfile.mkdtemp(prefix="tmux_bursts_seed_"))
    try:
        t0 = time.monotonic()
        template = prep_template(work)
        cast = load_cast(template)
        CAST.__dict__.update(cast.__dict__)
        print(f"seeded template in {time.monotonic() - t0:.0f}s; Ivana {cast.ivana_plate}, second "
              f"{cast.second['first_name']} {cast.second['last_name']} {cast.second_plate}, legacy "
              f"{cast.legacy['first_name']} {cast.legacy['last_name']} {cast.legacy_plate}", flush=True)
        results: list[Result] = []
        for run in range(args.runs):
            for size in sizes:
                print(f"--- run {run + 1}/{args.runs} at {size[0]}x{size[1]}", flush=True)
                run_all(size, names, template, cast, args.keep, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    passed = sum(r.ok for r in results)
    print(f"\n{passed}/{len(results)} scenario runs passed, {sum(r.bursts for r in results)} bursts")
    for name in names:
        rs = [r for r in results if r.name == name]
        print(f"  {name:24s} {sum(r.ok for r in rs)}/{len(rs)}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in results], indent=1))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
