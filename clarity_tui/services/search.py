"""Keyword customer search: one box for names, phone, email, customer number and plate.

The criteria (services/search_sql.py) are index prefix ranges on folded keys, never `LIKE '%term%'`:
- names: `search_first` / `search_last` (casefolded, accent- and punctuation-free);
- phone: `phone_rev`, the reversed digits, so "ends with 1234" is "starts with 4321";
- email: `email_lower`; customer number and plate: their stored upper-case forms.

`SearchService.naive_like_search` is the `LIKE '%term%'` scan over the same columns,
kept as the baseline the benchmarks compare against.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import or_
from sqlmodel import col
from sqlmodel import select as model_select

from clarity_tui.services.identity import display_name, fold
from clarity_tui.services.plates import CONFUSIONS, fuzzy_variants, normalize_plate, plate_match_score
from clarity_tui.services.search_sql import Probe, SearchSql, driver_cursor
from db.engine import Database
from db.models import Customer, Vehicle

if TYPE_CHECKING:
    from clarity_tui.wiring import Services

DEFAULT_LIMIT = 50
_PHONE_LIKE = re.compile(r"^[\d\s().+\-/]+$")
_DIGITS = re.compile(r"\D")
_MAX_NAME_TOKENS = 4

# Relevance: higher first. Ties sort by last name, first name, customer number.
SCORE_NUMBER_EXACT = 100
SCORE_PLATE_EXACT = 96
SCORE_PHONE_FULL = 94
SCORE_EMAIL_EXACT = 92
SCORE_PHONE_TAIL = 90
SCORE_FULL_NAME = 85
SCORE_LAST_EXACT = 80
SCORE_FIRST_EXACT = 75
SCORE_NUMBER_PREFIX = 72
SCORE_LAST_PREFIX = 70
SCORE_PLATE_FUZZY = 66  # + up to 10 for closeness
SCORE_PLATE_PREFIX = 64
SCORE_FIRST_PREFIX = 60
SCORE_EMAIL_PREFIX = 50


@dataclass(frozen=True)
class SearchHit:
    customer_id: int
    customer_number: str
    first_name: str
    last_name: str
    phone_e164: str | None
    email: str | None
    plates: tuple[str, ...]
    score: int
    matched: str  # which criterion ranked it: "name", "phone", "email", "number", "plate"

    @property
    def name(self) -> str:
        return display_name(self.first_name, self.last_name)


@dataclass
class SearchResult:
    term: str
    hits: list[SearchHit] = field(default_factory=list)
    elapsed_ms: float = 0.0


def plate_lookup_variants(plate: str) -> set[str]:
    """Stored plates worth scoring for a typed plate: exact, one character deleted, or one
    camera-confusable character swapped (0/O/D/Q, 1/I/L, 8/B, 5/S, 2/Z, 6/G)."""
    p = normalize_plate(plate)
    groups: dict[str, set[str]] = {}
    for a, b in CONFUSIONS.items():
        groups.setdefault(b, {b}).add(a)
    alike = {ch: grp for grp in groups.values() for ch in grp}
    variants = set(fuzzy_variants(p))
    for i, ch in enumerate(p):
        for other in alike.get(ch, ()):
            if other != ch:
                variants.add(p[:i] + other + p[i + 1 :])
    return {v for v in variants if len(v) >= 2}


def searchable(term: str | None) -> str:
    """The term as the databases can take it: no NUL (PostgreSQL refuses it in text) and no lone surrogate (a
    command-line argument that was not UTF-8, e.g. a Latin-1 terminal's "Zoë": neither driver can encode it)."""
    text = (term or "").replace("\x00", "")
    return text.encode("utf-8", "ignore").decode("utf-8").strip()


class SearchService:
    @classmethod
    def from_services(cls, services: Services) -> SearchService:
        return cls(services.db)

    def __init__(self, db: Database) -> None:
        self.db = db
        self._sql = SearchSql(postgres=not db.is_sqlite)

    def _criteria(self, text: str, limit: int) -> list[Probe]:
        """One small indexed select per criterion: (criterion, customer id, matched key)."""
        sql = self._sql
        out: list[Probe] = []
        number = re.sub(r"\s", "", text).upper()
        if len(number) >= 2 and any(ch.isdigit() for ch in number):
            out.append(sql.prefix("number", "customer_number", number, limit))
        tokens = [t for t in fold(text).split() if t][:_MAX_NAME_TOKENS]
        joined = "".join(tokens)
        if tokens and any(ch.isalpha() for ch in joined):
            out.append(sql.prefix("last", "search_last", joined, limit))
            if len(tokens) == 1:
                out.append(sql.prefix("first", "search_first", joined, limit))
            # "ivana zoom", "zoom ivana", "mary ann smith": every split, both orders.
            for k in range(1, len(tokens)):
                a, b = "".join(tokens[:k]), "".join(tokens[k:])
                for first, last in ((a, b), (b, a)):
                    out.append(sql.full_name(last, first, limit))
        email = text.lower()
        if " " not in email and len(email) >= 3 and any(ch.isalpha() for ch in email):
            out.append(sql.prefix("email", "email_lower", email, limit))
        digits = _DIGITS.sub("", text)
        if _PHONE_LIKE.match(text) and len(digits) >= 4:
            # Last 10 digits at most: drops a country code typed in front; a national
            # number's trunk 0 ("020 7946 0958", "087 123 4567") is not in E.164 either.
            national = digits.lstrip("0") if len(digits) >= 7 else digits
            out.append(sql.prefix("phone", "phone_rev", national[-10:][::-1], limit))
        plate = normalize_plate(text)
        if 2 <= len(plate) <= 10:
            out.append(sql.plate_variants(sorted(plate_lookup_variants(plate)), limit))
            if len(plate) >= 3:
                out.append(sql.plate_prefix(plate, limit))
        return out

    # --- the search ----------------------------------------------------------------------

    def search(self, term: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
        started = time.perf_counter()
        text = searchable(term)
        result = SearchResult(term=text)
        criteria = self._criteria(text, limit) if text else []
        if not criteria:
            return result
        # Two round trips. First every criterion's (tag, customer id, matched key), each limited and
        # index-ordered (on SQLite index entries only). Ranked on those, only the `limit` best customers
        # are then read, with their plates: a broad term ("smi", "2727") reads 50 customers with their
        # vehicles, not one per candidate (~200). One statement doing both was slower on PostgreSQL:
        # planning the bigger query costs more than the round trip it saves.
        sql, params = self._sql.union(criteria)
        with driver_cursor(self.db) as cursor:
            cursor.execute(sql, params)
            scores = self._score(text, cursor.fetchall())
            # Best score first, then the matched key: each probe's own order, so the cut keeps what
            # each probe's LIMIT kept. The hits are then ordered by name within a score.
            best = sorted(scores, key=lambda cid: (-scores[cid][0], scores[cid][2], cid))[:limit]
            result.hits = self._hits(cursor, scores, best)
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result

    def _score(self, text: str, rows) -> dict[int, tuple[int, str, str]]:
        """Customer id -> (score, what matched, the key that matched) for its best criterion."""
        number = re.sub(r"\s", "", text).upper()
        joined = "".join(fold(text).split())
        email = text.lower()
        digits = _DIGITS.sub("", text)
        plate = normalize_plate(text)
        scores: dict[int, tuple[int, str, str]] = {}
        for tag, cid, key in rows:
            if cid is None:
                continue
            if tag == "number":
                score, matched = (SCORE_NUMBER_EXACT if key == number else SCORE_NUMBER_PREFIX), "number"
            elif tag == "last":
                score, matched = (SCORE_LAST_EXACT if key == joined else SCORE_LAST_PREFIX), "name"
            elif tag == "first":
                score, matched = (SCORE_FIRST_EXACT if key == joined else SCORE_FIRST_PREFIX), "name"
            elif tag == "full":
                score, matched = SCORE_FULL_NAME, "name"
            elif tag == "email":
                score, matched = (SCORE_EMAIL_EXACT if key == email else SCORE_EMAIL_PREFIX), "email"
            elif tag == "phone":
                full = key == digits[::-1] or len(digits.lstrip("0")) >= 9
                score, matched = (SCORE_PHONE_FULL if full else SCORE_PHONE_TAIL), "phone"
            elif tag == "plate":
                score, matched = (SCORE_PLATE_EXACT if key == plate else SCORE_PLATE_PREFIX), "plate"
            else:  # "plate~": exact, one deletion or a camera confusion away
                closeness = plate_match_score(plate, key)
                if closeness <= 0:
                    continue
                score = SCORE_PLATE_EXACT if closeness >= 1.0 else SCORE_PLATE_FUZZY + round(closeness * 10)
                matched = "plate"
            if cid not in scores or scores[cid][0] < score:
                scores[cid] = (score, matched, str(key))
        return scores

    def _hits(self, cursor: Any, scores: dict[int, tuple[int, str, str]], ids: list[int]) -> list[SearchHit]:
        if not ids:
            return []
        customers: dict[int, Any] = {}
        vehicles: list[tuple[int, int, str]] = []
        cursor.execute(self._sql.customers(ids))
        for row in cursor.fetchall():
            if row[9] is None:
                customers[row[0]] = row
            elif row[8] is not None:
                vehicles.append((row[0], row[9], row[8]))
        plates: dict[int, list[str]] = {}
        for cid, _vehicle_id, plate in sorted(vehicles):  # each customer's plates in the order they were added
            plates.setdefault(cid, []).append(plate)
        ranked = sorted(customers.values(), key=lambda r: (-scores[r[0]][0], r[6] or "", r[7] or "", r[1]))
        return [
            SearchHit(
                customer_id=r[0],
                customer_number=r[1],
                first_name=r[2],
                last_name=r[3],
                phone_e164=r[4],
                email=r[5],
                plates=tuple(plates.get(r[0], ())),
                score=scores[r[0]][0],
                matched=scores[r[0]][1],
            )
            for r in ranked
        ]

    # --- the baseline ----------------------------------------------------------------------

    def naive_like_search(self, term: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
        """`LIKE '%term%'` over the same columns (a full scan): the benchmark's baseline."""
        started = time.perf_counter()
        text = searchable(term)
        result = SearchResult(term=text)
        if not text:
            return result
        name = "".join(fold(text).split())
        digits = _DIGITS.sub("", text)
        plate = normalize_plate(text)
        conditions = [col(Customer.customer_number).like(f"%{text.upper()}%"), col(Customer.email_lower).like(f"%{text.lower()}%")]
        if name:
            conditions += [col(Customer.search_last).like(f"%{name}%"), col(Customer.search_first).like(f"%{name}%")]
        if digits:
            conditions.append(col(Customer.phone_rev).like(f"%{digits[::-1]}%"))
        if plate:
            conditions.append(
                col(Customer.id).in_(model_select(Vehicle.customer_id).where(col(Vehicle.plate_normalized).like(f"%{plate}%")))
            )
        with self.db.read() as s:
            rows = s.exec(model_select(Customer).where(or_(*conditions)).order_by(Customer.search_last, Customer.search_first).limit(limit)).all()
            result.hits = [
                SearchHit(c.id, c.customer_number, c.first_name, c.last_name, c.phone_e164, c.email, (), 0, "like")
                for c in rows if c.id is not None
            ]
        result.elapsed_ms = (time.perf_counter() - started) * 1000
        return result
