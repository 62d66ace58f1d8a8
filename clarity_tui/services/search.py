"""Keyword customer search: one box for names, phone, email, customer number and plate.

Every criterion is an index prefix range on a folded key (`col >= 'zoom' AND col < 'zoon'`),
never `LIKE '%term%'`, so a query stays a few index probes at a million customers:
- names: `search_first` / `search_last` (casefolded, accent- and punctuation-free);
- phone: `phone_rev`, the reversed digits, so "ends with 1234" is "starts with 4321";
- email: `email_lower`; customer number and plate: their stored upper-case forms.
On PostgreSQL, comparisons use COLLATE "C" (byte order) to match the indexes of
migration 0003; on SQLite the default BINARY collation already is byte order.

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


def _upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with `prefix`."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


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


@dataclass(frozen=True)
class Probe:
    """One criterion: plain SQL yielding (tag, cid, key) rows, and its parameters in order."""

    sql: str
    params: tuple[str, ...]


class SearchService:
    @classmethod
    def from_services(cls, services: Services) -> SearchService:
        return cls(services.db)

    def __init__(self, db: Database) -> None:
        self.db = db
        self._pg = not db.is_sqlite
        # PostgreSQL compares in byte order (COLLATE "C") to use migration 0003's indexes; SQLite's
        # default BINARY collation already is byte order.
        self._c = ' COLLATE "C"' if self._pg else ""
        self._ph = "%s" if self._pg else "?"  # the driver's placeholder (psycopg / sqlite3)

    # --- query building ---------------------------------------------------------------
    # Plain SQL strings, not SQLAlchemy expressions: building and compiling a union of up to
    # eight selects cost more than running it (measured: half of each search at 1M customers).

    def _range(self, column: str, prefix: str) -> tuple[str, tuple[str, str]]:
        return (f"{column}{self._c} >= {self._ph} AND {column}{self._c} < {self._ph}", (prefix, _upper_bound(prefix)))

    def _probe(self, tag: str, column: str, where: str, params: tuple[str, ...], limit: int,
               table: str = "customer", id_col: str = "id", order_by: str | None = None) -> Probe:
        order = f"{order_by or column}{self._c}"
        return Probe(f"SELECT '{tag}' AS tag, {id_col} AS cid, {column} AS key FROM {table} "
                     f"WHERE {where} ORDER BY {order} LIMIT {int(limit)}", params)

    def _criteria(self, text: str, limit: int) -> list[Probe]:
        """One small indexed select per criterion: (criterion, customer id, matched key)."""
        out: list[Probe] = []

        def prefix_probe(tag: str, column: str, prefix: str) -> None:
            where, params = self._range(column, prefix)
            out.append(self._probe(tag, column, where, params, limit))

        number = re.sub(r"\s", "", text).upper()
        if len(number) >= 2 and any(ch.isdigit() for ch in number):
            prefix_probe("number", "customer_number", number)
        tokens = [t for t in fold(text).split() if t][:_MAX_NAME_TOKENS]
        joined = "".join(tokens)
        if tokens and any(ch.isalpha() for ch in joined):
            prefix_probe("last", "search_last", joined)
            if len(tokens) == 1:
                prefix_probe("first", "search_first", joined)
            # "ivana zoom", "zoom ivana", "mary ann smith": every split, both orders.
            for k in range(1, len(tokens)):
                a, b = "".join(tokens[:k]), "".join(tokens[k:])
                for first, last in ((a, b), (b, a)):
                    last_where, last_params = self._range("search_last", last)
                    first_where, first_params = self._range("search_first", first)
                    out.append(self._probe("full", "search_last", f"{last_where} AND {first_where}",
                                           last_params + first_params, limit))
        email = text.lower()
        if " " not in email and len(email) >= 3 and any(ch.isalpha() for ch in email):
            prefix_probe("email", "email_lower", email)
        digits = _DIGITS.sub("", text)
        if _PHONE_LIKE.match(text) and len(digits) >= 4:
            # Last 10 digits at most: drops a country code typed in front; a national
            # number's trunk 0 ("020 7946 0958", "087 123 4567") is not in E.164 either.
            national = digits.lstrip("0") if len(digits) >= 7 else digits
            prefix_probe("phone", "phone_rev", national[-10:][::-1])
        plate = normalize_plate(text)
        if 2 <= len(plate) <= 10:
            variants = tuple(sorted(plate_lookup_variants(plate)))
            # Byte-order comparison like the other probes, or PostgreSQL cannot use the
            # COLLATE "C" index of migration 0003 and scans every vehicle.
            where = (f"plate_normalized{self._c} IN ({', '.join([self._ph] * len(variants))}) "
                     "AND customer_id IS NOT NULL")
            out.append(Probe(f"SELECT 'plate~' AS tag, customer_id AS cid, plate_normalized AS key FROM vehicle "
                             f"WHERE {where} LIMIT {int(limit)}", variants))
            if len(plate) >= 3:
                where, params = self._range("plate_normalized", plate)
                out.append(self._probe("plate", "plate_normalized", f"{where} AND customer_id IS NOT NULL", params,
                                       limit, table="vehicle", id_col="customer_id"))
        return out

    # --- the search ----------------------------------------------------------------------

    def search(self, term: str, limit: int = DEFAULT_LIMIT) -> SearchResult:
        started = time.perf_counter()
        text = (term or "").strip()
        result = SearchResult(term=text)
        criteria = self._criteria(text, limit) if text else []
        if not criteria:
            return result
        # Two round trips. First every criterion's (tag, customer id, matched key), each limited and
        # index-ordered (SQLite wants each LIMIT inside its own subquery): index entries only, no
        # customer rows. Ranked on those, only the `limit` best customers are then read, with their
        # plates: a broad term ("smi", "2727") reads 50 customer rows, not one per candidate (~200),
        # which at a million customers is what the slowest queries spent their time on.
        union = " UNION ALL ".join(f"SELECT * FROM ({probe.sql}) AS p{i}" for i, probe in enumerate(criteria))
        params = tuple(p for probe in criteria for p in probe.params)
        with self.db.engine.connect() as conn:
            if self._pg:
                # Two reads, each its own snapshot under READ COMMITTED anyway: autocommit spares the
                # BEGIN and ROLLBACK round trips (a third of a search's wall time on PostgreSQL).
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
            scores = self._score(text, conn.exec_driver_sql(f"SELECT tag, cid, key FROM ({union}) AS u", params).all())
            # Best score first, then the matched key: each probe's own order, so the cut keeps what
            # each probe's LIMIT kept. The hits are then ordered by name within a score.
            best = sorted(scores, key=lambda cid: (-scores[cid][0], scores[cid][2], cid))[:limit]
            result.hits = self._hits(conn, scores, best)
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

    def _hits(self, conn, scores: dict[int, tuple[int, str, str]], ids: list[int]) -> list[SearchHit]:
        if not ids:
            return []
        # Rows are read by position: SQLAlchemy's by-name Row access was most of this step's time.
        customers: dict[int, Any] = {}
        plates: dict[int, list[str]] = {}
        for row in conn.exec_driver_sql(
                "SELECT c.id, c.customer_number, c.first_name, c.last_name, c.phone_e164, c.email, c.search_last, "
                "c.search_first, v.plate FROM customer c LEFT JOIN vehicle v ON v.customer_id = c.id "
                f"WHERE c.id IN ({', '.join([self._ph] * len(ids))}) ORDER BY c.id, v.id", tuple(ids)):
            cid = row[0]
            if cid not in customers:
                customers[cid] = row
            if row[8] is not None:
                plates.setdefault(cid, []).append(row[8])
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
        text = (term or "").strip()
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
