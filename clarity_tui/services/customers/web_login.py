"""The Web Login tab: the customer's sign-in to the car wash's web portal (username, a random temporary
password shown once, an emailed one-time reset link), and the checks the portal calls."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets

from sqlmodel import Session, select

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.auth import hash_pin, verify_pin
from clarity_tui.services.customer_input import CustomerError, NotFound, ValidationFailed
from clarity_tui.services.customers.base import CustomerServiceBase, saved_id
from clarity_tui.services.customers.views import WebLoginView
from clarity_tui.services.permissions import Permission, require
from db.models import PasswordReset, WebLogin, utcnow

RESET_TOKEN_HOURS = 24
_USERNAME = re.compile(r"^[a-z0-9][a-z0-9._@+-]{2,119}$")


def _reset_token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class WebLogins(CustomerServiceBase):
    def _check_username(self, s: Session, username: str, login_id: int | None) -> str:
        name = (username or "").strip().lower()
        if not _USERNAME.match(name):
            raise ValidationFailed({"username": "A username has 3 to 120 letters, digits or . _ @ + - (starting with a letter or digit)."})
        taken = s.exec(select(WebLogin).where(WebLogin.username == name)).first()
        if taken is not None and taken.id != login_id:
            raise ValidationFailed({"username": f"The username '{name}' is taken: choose another."})
        return name

    @staticmethod
    def new_password() -> str:
        return secrets.token_urlsafe(9)  # 12 characters, ~72 bits

    def create_web_login(self, actor: Actor, customer_id: int, username: str) -> tuple[WebLoginView, str]:
        """Create the login with a random password; the password is returned once and never stored."""
        require(actor, Permission.WEB_LOGIN)
        password = self.new_password()
        with self.db.write() as s:
            self._customer(s, customer_id)
            if s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first() is not None:
                raise ValidationFailed({"username": "This customer already has a web login: change its username instead."})
            name = self._check_username(s, username, None)
            login = WebLogin(customer_id=customer_id, username=name, password_hash=hash_pin(password), must_change_password=True)
            s.add(login)
            s.flush()
            audit.record(s, actor, "weblogin.created", "customer", customer_id, after={"username": name})
            return WebLoginView(saved_id(login), name, True, True, None), password

    def change_username(self, actor: Actor, customer_id: int, username: str) -> None:
        require(actor, Permission.WEB_LOGIN)
        with self.db.write() as s:
            login = self._login(s, customer_id)
            name = self._check_username(s, username, login.id)
            before = {"username": login.username}
            login.username = name
            login.updated_at = utcnow()
            audit.record(s, actor, "weblogin.renamed", "customer", customer_id, before=before, after={"username": name})

    def random_password(self, actor: Actor, customer_id: int) -> str:
        """A new temporary password (shown once); the customer must change it at next sign-in."""
        require(actor, Permission.WEB_LOGIN)
        password = self.new_password()
        with self.db.write() as s:
            login = self._login(s, customer_id)
            login.password_hash = hash_pin(password)
            login.must_change_password = True
            login.updated_at = utcnow()
            audit.record(s, actor, "weblogin.password_generated", "customer", customer_id, after={"username": login.username})
        return password

    def remove_web_login(self, actor: Actor, customer_id: int) -> None:
        require(actor, Permission.WEB_LOGIN)
        with self.db.write() as s:
            login = self._login(s, customer_id)
            for reset in s.exec(select(PasswordReset).where(PasswordReset.web_login_id == login.id)):
                s.delete(reset)
            s.flush()
            s.delete(login)
            audit.record(s, actor, "weblogin.removed", "customer", customer_id, before={"username": login.username})

    def _login(self, s: Session, customer_id: int) -> WebLogin:
        login = s.exec(select(WebLogin).where(WebLogin.customer_id == customer_id)).first()
        if login is None:
            raise NotFound("This customer has no web login: create one first.")
        return login

    def send_password_reset(self, actor: Actor, customer_id: int) -> str:
        """Email a one-time reset link (valid 24 h) over SMTP. Returns the address it went to."""
        require(actor, Permission.WEB_LOGIN)
        mailer = self.mailer
        if mailer is None:
            raise CustomerError("No mail server is configured on this terminal: set the smtp settings.")
        token = secrets.token_urlsafe(32)
        with self.db.write() as s:
            c = self._customer(s, customer_id)
            login = self._login(s, customer_id)
            if not c.email:
                raise ValidationFailed({"email": "The customer has no email address: add one on the General tab first."})
            reset = PasswordReset(web_login_id=saved_id(login), token_sha256=_reset_token_digest(token), sent_to=c.email,
                                  expires_at=utcnow() + dt.timedelta(hours=RESET_TOKEN_HOURS))
            s.add(reset)
            s.flush()
            reset_id, to, username, name = reset.id, c.email, login.username, c.first_name or c.last_name
        body = (f"Hello {name},\n\nA password reset was requested for your car wash account ({username}).\n"
                f"Choose a new password here within {RESET_TOKEN_HOURS} hours:\n\n{self.reset_url}?token={token}\n\n"
                "If you did not ask for this, ignore this email: your password is unchanged.\n")
        try:
            mailer.send(to, "Reset your car wash account password", body)
        except Exception:
            with self.db.write() as s:
                row = s.get(PasswordReset, reset_id)
                if row is not None:
                    s.delete(row)
            raise
        with self.db.write() as s:
            login = self._login(s, customer_id)
            login.reset_sent_at = utcnow()
            audit.record(s, actor, "weblogin.reset_sent", "customer", customer_id, after={"username": username, "to": to})
        return to

    def complete_password_reset(self, token: str, new_password: str) -> None:
        """What the web portal calls with the emailed token (one use, before it expires)."""
        if len(new_password) < 8:
            raise ValidationFailed({"password": "Choose a password of at least 8 characters."})
        with self.db.write() as s:
            reset = s.exec(select(PasswordReset).where(PasswordReset.token_sha256 == _reset_token_digest(token))).first()
            if reset is None or reset.used_at is not None or reset.expires_at < utcnow():
                raise CustomerError("This reset link is invalid, used or expired: ask for a new one.")
            login = s.get(WebLogin, reset.web_login_id)
            assert login is not None
            login.password_hash = hash_pin(new_password)
            login.must_change_password = False
            reset.used_at = utcnow()
            audit.record(s, Actor(name=f"web:{login.username}"), "weblogin.password_reset", "customer", login.customer_id)

    def verify_web_password(self, username: str, password: str) -> bool:
        with self.db.read() as s:
            login = s.exec(select(WebLogin).where(WebLogin.username == username.strip().lower())).first()
            return bool(login and login.password_hash and verify_pin(password, login.password_hash))
