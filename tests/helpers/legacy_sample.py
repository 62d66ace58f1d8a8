"""A small legacy export with the awkward rows real ones have (families sharing phones, bad dates and plates),
and what an import stored from it: shared by the legacy import tests."""

from __future__ import annotations

import random

from sqlmodel import select

from clarity_tui.services.legacy.parsers import COMPARED
from db.models import LegacyMember, LegacyMemberPlate

HEADER = "Member #,Member Name,Cell Phone,Email,License Plate,Plate 2,Club Plan,Status,Next Bill Date\r\n"


def sample(rows: int) -> str:
    """Members sharing phones (families) and dates, some bad rows among them."""
    rng = random.Random(3)
    lines = [HEADER]
    for i in range(rows):
        phone = rng.choice(["(512) 555-0143", "512.555.0144", "1.55E+10", "(512) 555-01", ""]) if i % 3 else \
            f"(512) 555-{i:04d}"
        plate = rng.choice([f"ABC{i}", f"ab-{i}", f"X{i};Y{i}", "A", "", "ABCDEFGHIJK1"])
        lines.append(f'T{i},"Doe{i}, Jo",{phone},t{i}@example.com,{plate},{rng.choice(["", f"Q{i}"])},'
                     f'{rng.choice(["Basic Club", "Gold Club"])},Active,{rng.choice(["12/01/2027", "13/13/2027"])}\r\n')
    return "".join(lines)


def stored(db) -> dict[str, tuple]:
    """Every imported member as (compared values, sorted plates), by legacy id."""
    with db.read() as s:
        members = {m.id: m for m in s.exec(select(LegacyMember).where(LegacyMember.legacy_id.like("T%")))}
        plates: dict[int, list[str]] = {}
        for p in s.exec(select(LegacyMemberPlate)):
            plates.setdefault(p.legacy_member_id, []).append(p.plate_normalized)
    return {m.legacy_id: (tuple(getattr(m, k) for k in COMPARED), tuple(sorted(plates.get(i, []))))
            for i, m in members.items()}
