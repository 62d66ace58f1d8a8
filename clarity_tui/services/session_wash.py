"""The wash of one session, as the lane's screens show it: member visit or paid single wash, and where
its car stands with the tunnel (issue 18)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import select

from db.engine import Database
from db.models import DispatchStatus, Wash


@dataclass(frozen=True)
class SessionWash:
    wash_id: int
    kind: str  # "member" (a visit) or "retail" (a paid single wash)
    package_code: str | None
    extras: tuple[str, ...]
    dispatch_status: str
    dispatch_error: str | None

    @property
    def sent(self) -> bool:
        return self.dispatch_status == DispatchStatus.SENT

    @property
    def line(self) -> str:
        """One line for the session's screen."""
        what = "Member visit" if self.kind == "member" else "Single wash paid"
        package = f" · {self.package_code}" if self.package_code else ""
        extras = f" + {', '.join(self.extras)}" if self.extras else ""
        if self.sent:
            return f"{what}{package}{extras} · sent to the tunnel"
        if self.dispatch_status == DispatchStatus.QUEUED:
            return f"{what}{package}{extras} · QUEUED: {self.dispatch_error or 'the tunnel did not take it'} (R retries)"
        return f"{what}{package}{extras} · ready: G sends it to the tunnel and opens the gate"


def session_wash(db: Database, session_id: int) -> SessionWash | None:
    with db.read() as s:
        wash = s.exec(select(Wash).where(Wash.session_id == session_id)).first()
        if wash is None or wash.id is None:
            return None
        return SessionWash(wash.id, wash.kind, wash.package_code, tuple(wash.extras or ()), wash.dispatch_status,
                           wash.dispatch_error)
