"""A customer's operator notices (notes flagged "operator notice"), for the screens that must show them:
the customer record (a dialog on opening), the session screen and the first screen of a sale (a line).

One small read, no Textual: the screens call it from a worker."""

from __future__ import annotations

from sqlmodel import col, select

from db.engine import Database
from db.models import Note


def operator_notices(db: Database, customer_id: int | None) -> list[str]:
    """The notices' texts, oldest first; none for no customer."""
    if not customer_id:
        return []
    with db.read() as s:
        return [body for body in s.exec(select(Note.body).where(Note.customer_id == customer_id,
                                                                col(Note.operator_notice).is_(True))
                                        .order_by(col(Note.id)))]


def notice_line(notices: list[str]) -> str:
    """'⚑ Operator notice: Call before charging · Prefers texts' (whole: the screen wraps it)."""
    if not notices:
        return ""
    return "⚑ Operator notice: " + " · ".join(" ".join(n.split()) for n in notices)


__all__ = ["notice_line", "operator_notices"]
