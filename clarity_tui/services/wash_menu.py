"""The wash menu (issue 18 item 1): packages (a single wash) and extras, their prices, and the plans
that include them, in the database (`WashItem`, `PlanWashItem`).

Set from settings (`settings.wash.menu`, applied at start-up by services/bootstrap.py), the CLI
(`clarity-tui menu`), or the demo seed. Changes are a manager's (or the system's: settings, the seed)
and audited. A retired item is no longer sold but stays, so old orders and the wash history name it.

`check_choice` is the one rule for what a car may buy: a non-member buys a package and its extras; a
member buys what their plan does not include (extras only, or a package above the plan's).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlmodel import Session, col, delete, select

from clarity_tui.errors import UserFacingError
from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from db.engine import Database
from db.models import Plan, PlanWashItem, Role, WashItem, WashItemKind, utcnow

if TYPE_CHECKING:
    from clarity_tui.config import WashItemConfig

CODE = re.compile(r"^[A-Z0-9][A-Z0-9_-]{0,31}$")
MAX_PRICE_CENTS = 1_000_00  # as settings allow (config.WashItemConfig)
MAX_TUNNEL_CODE = 65535


class MenuError(UserFacingError, ValueError):
    """A refused menu change or choice; str() says what happened and what to do."""


@dataclass(frozen=True)
class MenuItem:
    id: int
    code: str
    name: str
    kind: str
    price_cents: int
    tunnel_code: int
    active: bool
    plans: tuple[str, ...]  # the codes of the plans that include it

    @property
    def is_package(self) -> bool:
        return self.kind == WashItemKind.PACKAGE


def clean_code(code: str) -> str:
    """'tire_shine ' -> 'TIRE_SHINE'; MenuError for anything that is not a short code."""
    text = (code or "").strip().upper()
    if not CODE.match(text):
        raise MenuError(f"'{code}' is not a menu code: use up to 32 letters, digits, '-' or '_' (e.g. TIRE_SHINE).")
    return text


def _item_view(item: WashItem, plans: Iterable[str]) -> MenuItem:
    assert item.id is not None, "a menu item read from the database"
    return MenuItem(item.id, item.code, item.name, item.kind, item.price_cents, item.tunnel_code, item.active,
                    tuple(sorted(plans)))


def _plan_codes(s: Session) -> dict[int, list[str]]:
    """Item id -> the codes of the plans that include it."""
    out: dict[int, list[str]] = {}
    for item_id, code in s.exec(select(PlanWashItem.item_id, Plan.code)
                                .join(Plan, col(Plan.id) == PlanWashItem.plan_id)):
        out.setdefault(item_id, []).append(code)
    return out


def menu_items(s: Session, *, include_retired: bool = False) -> list[MenuItem]:
    """Packages first, then extras, each by position (then name)."""
    q = select(WashItem)
    if not include_retired:
        q = q.where(col(WashItem.active).is_(True))
    rows = s.exec(q).all()
    plans = _plan_codes(s)
    rows = sorted(rows, key=lambda i: (i.kind != WashItemKind.PACKAGE, i.position, i.name))
    return [_item_view(i, plans.get(i.id or 0, ())) for i in rows]


def included_codes(s: Session, plan_id: int | None) -> set[str]:
    """The codes of the menu items the plan includes (none without a plan)."""
    if plan_id is None:
        return set()
    return set(s.exec(select(WashItem.code).join(PlanWashItem, col(PlanWashItem.item_id) == WashItem.id)
                      .where(PlanWashItem.plan_id == plan_id)).all())


def _may_change(actor: Actor | None) -> Actor:
    if actor is None:
        raise MenuError("Changing the wash menu needs a manager: sign in as a manager first.")
    if not (actor.is_system or actor.role == Role.MANAGER):
        raise MenuError(f"Only a manager can change the wash menu ({actor.name} is signed in as {actor.role}): "
                        "ask a manager.")
    return actor


def _plans_by_code(s: Session, codes: Iterable[str]) -> list[Plan]:
    wanted = [c.strip().upper() for c in codes if c.strip()]
    found = {p.code: p for p in s.exec(select(Plan).where(col(Plan.code).in_(wanted)))}
    missing = [c for c in wanted if c not in found]
    if missing:
        known = ", ".join(s.exec(select(Plan.code).order_by(col(Plan.tier), col(Plan.code))).all()) or "none"
        raise MenuError(f"There is no plan {', '.join(missing)}: use one of the plan codes ({known}).")
    return [found[c] for c in dict.fromkeys(wanted)]


def _check_fields(name: str, kind: str, price_cents: int, tunnel_code: int) -> str:
    clean = " ".join((name or "").split())
    if not clean or len(clean) > 80:
        raise MenuError("A menu item needs a name of 1 to 80 characters.")
    if kind not in (WashItemKind.PACKAGE, WashItemKind.EXTRA):
        raise MenuError(f"'{kind}' is not a kind of menu item: use package or extra.")
    if isinstance(price_cents, bool) or not isinstance(price_cents, int) or not 0 <= price_cents <= MAX_PRICE_CENTS:
        raise MenuError(f"The price must be between $0.00 and ${MAX_PRICE_CENTS // 100:,}.00 (got {price_cents!r} cents).")
    if isinstance(tunnel_code, bool) or not isinstance(tunnel_code, int) or not 0 <= tunnel_code <= MAX_TUNNEL_CODE:
        raise MenuError(f"The tunnel code must be a whole number from 0 to {MAX_TUNNEL_CODE} (got {tunnel_code!r}).")
    return clean


def _set_plans(s: Session, item: WashItem, plans: list[Plan]) -> bool:
    """The item's plans become exactly `plans`; True when they changed."""
    current = set(s.exec(select(PlanWashItem.plan_id).where(PlanWashItem.item_id == item.id)).all())
    wanted = {p.id for p in plans}
    if current == wanted:
        return False
    s.exec(delete(PlanWashItem).where(col(PlanWashItem.item_id) == item.id))
    for plan_id in sorted(w for w in wanted if w is not None):
        assert item.id is not None
        s.add(PlanWashItem(plan_id=plan_id, item_id=item.id))
    return True


def upsert_item(s: Session, actor: Actor, code: str, *, name: str, kind: str, price_cents: int, tunnel_code: int = 0,
                plans: Sequence[str] = (), active: bool = True, position: int | None = None) -> tuple[MenuItem, bool]:
    """Create or change one item in the caller's transaction: (the item, whether anything changed)."""
    code = clean_code(code)
    clean_name = _check_fields(name, kind, price_cents, tunnel_code)
    plan_rows = _plans_by_code(s, plans)
    item = s.exec(select(WashItem).where(WashItem.code == code)).first()
    fields: dict[str, Any] = {"name": clean_name, "kind": kind, "price_cents": price_cents, "tunnel_code": tunnel_code,
              "active": active}
    if item is None:
        if position is None:
            last = s.exec(select(WashItem.position).where(WashItem.kind == kind)
                          .order_by(col(WashItem.position).desc())).first()
            position = 0 if last is None else last + 1
        item = WashItem(code=code, position=position, **fields)
        s.add(item)
        s.flush()
        before = None
    else:
        before = audit.snapshot(item, [*fields, "position"])
        if position is not None:
            fields["position"] = position
        for key, value in fields.items():
            setattr(item, key, value)
    plans_changed = _set_plans(s, item, plan_rows)
    after = audit.snapshot(item, ["name", "kind", "price_cents", "tunnel_code", "active", "position"])
    changed = before != after or plans_changed
    if changed:
        item.updated_at = utcnow()
        s.add(item)
        audit.record(s, actor, "menu.item_set", "wash_item", item.id, before=before,
                     after={**(after or {}), "code": code, "plans": sorted(p.code for p in plan_rows)})
    return _item_view(item, (p.code for p in plan_rows)), changed


class WashMenu:
    """The menu as the lane, the CLI and the settings see it."""

    def __init__(self, db: Database, actor: Actor | None = None) -> None:
        self.db = db
        self.actor = actor

    def items(self, *, include_retired: bool = False) -> list[MenuItem]:
        with self.db.read() as s:
            return menu_items(s, include_retired=include_retired)

    def packages(self) -> list[MenuItem]:
        return [i for i in self.items() if i.kind == WashItemKind.PACKAGE]

    def extras(self) -> list[MenuItem]:
        return [i for i in self.items() if i.kind == WashItemKind.EXTRA]

    def included(self, plan_id: int | None) -> set[str]:
        with self.db.read() as s:
            return included_codes(s, plan_id)

    def set_item(self, code: str, *, name: str, kind: str, price_cents: int, tunnel_code: int = 0,
                 plans: Sequence[str] = (), actor: Actor | None = None) -> MenuItem:
        """Add the item, or change it (and sell it again if it was retired). Audited."""
        by = _may_change(actor or self.actor)
        with self.db.write() as s:
            return upsert_item(s, by, code, name=name, kind=kind, price_cents=price_cents, tunnel_code=tunnel_code,
                               plans=plans)[0]

    def include(self, code: str, plans: Sequence[str], *, actor: Actor | None = None) -> MenuItem:
        """The plans (by code) that include the item become exactly `plans` (empty: none). Audited."""
        by = _may_change(actor or self.actor)
        with self.db.write() as s:
            item = _find(s, code)
            return upsert_item(s, by, item.code, name=item.name, kind=item.kind, price_cents=item.price_cents,
                               tunnel_code=item.tunnel_code, plans=plans, active=item.active)[0]

    def retire(self, code: str, *, actor: Actor | None = None) -> MenuItem:
        """No longer sold (kept for the history). Audited; retiring twice changes nothing."""
        by = _may_change(actor or self.actor)
        with self.db.write() as s:
            item = _find(s, code)
            if item.active:
                item.active, item.updated_at = False, utcnow()
                s.add(item)
                audit.record(s, by, "menu.item_retired", "wash_item", item.id, before={"active": True},
                             after={"active": False, "code": item.code})
            return _item_view(item, _plan_codes(s).get(item.id or 0, ()))

    def apply_settings(self, menu: list[WashItemConfig], *, actor: Actor | None = None) -> int:
        """Make the database's menu the settings' one (in its order; items not listed are retired).
        Idempotent: returns how many items changed (0 when the database already matches)."""
        by = _may_change(actor or self.actor)
        if not menu:
            return 0  # no menu in the settings: the database's is left as it is
        with self.db.write() as s:
            changed = 0
            listed: set[str] = set()
            for position, entry in enumerate(menu):
                code = clean_code(entry.code)
                if code in listed:
                    raise MenuError(f"The settings list the menu item {code} twice: keep one [[wash.menu]] entry "
                                    "per code.")
                listed.add(code)
                _, did = upsert_item(s, by, code, name=entry.name, kind=entry.kind, price_cents=entry.price_cents,
                                     tunnel_code=entry.tunnel_code, plans=entry.plans, active=entry.active,
                                     position=position)
                changed += did
            for item in s.exec(select(WashItem).where(col(WashItem.active).is_(True))).all():
                if item.code not in listed:
                    item.active, item.updated_at = False, utcnow()
                    s.add(item)
                    audit.record(s, by, "menu.item_retired", "wash_item", item.id, before={"active": True},
                                 after={"active": False, "code": item.code, "why": "not in the settings' menu"})
                    changed += 1
            return changed

    def matches_settings(self, menu: list[WashItemConfig]) -> bool:
        """A cheap read for start-up: the database already holds the settings' menu (no write needed)."""
        if not menu:
            return True
        with self.db.read() as s:
            have = {i.code: i for i in menu_items(s, include_retired=True)}
            active = {code for code, i in have.items() if i.active}
        want = {entry.code.strip().upper(): entry for entry in menu}
        if active - {c for c, e in want.items() if e.active}:
            return False
        for code, entry in want.items():
            item = have.get(code)
            if item is None or (item.name, item.kind, item.price_cents, item.tunnel_code, item.active,
                                item.plans) != (" ".join(entry.name.split()), entry.kind, entry.price_cents,
                                                entry.tunnel_code, entry.active,
                                                tuple(sorted({p.strip().upper() for p in entry.plans}))):
                return False
        return True


def _find(s: Session, code: str) -> WashItem:
    clean = clean_code(code)
    item = s.exec(select(WashItem).where(WashItem.code == clean)).first()
    if item is None:
        known = ", ".join(s.exec(select(WashItem.code).order_by(col(WashItem.kind).desc(), col(WashItem.position))).all())
        raise MenuError(f"There is no menu item {clean}: use one of {known or 'none (the menu is empty)'}.")
    return item


# --- what a car may buy ----------------------------------------------------------------------------------


def _choices(s: Session, kind: str) -> str:
    names = s.exec(select(WashItem.name).where(WashItem.kind == kind, col(WashItem.active).is_(True))
                   .order_by(col(WashItem.position), col(WashItem.name))).all()
    return ", ".join(names) or "none on the menu"


def check_choice(s: Session, package_code: str | None, extras: Sequence[str], *,
                 plan_id: int | None) -> tuple[WashItem | None, list[WashItem]]:
    """The package and extras to charge for, or MenuError saying what to change. `plan_id`: the plan of the
    car's entitled membership (None: not a member), whose items are free and so are not sold again."""
    plan = s.get(Plan, plan_id) if plan_id is not None else None
    included = included_codes(s, plan_id)
    wanted = [(package_code, WashItemKind.PACKAGE)] if package_code and package_code.strip() else []
    wanted += [(code, WashItemKind.EXTRA) for code in extras]
    rows = {i.code: i for i in s.exec(select(WashItem).where(
        col(WashItem.code).in_([(c or "").strip().upper() for c, _ in wanted])))}
    package: WashItem | None = None
    chosen: list[WashItem] = []
    for raw, kind in wanted:
        code = (raw or "").strip().upper()
        item = rows.get(code)
        what = "package" if kind == WashItemKind.PACKAGE else "extra"
        if item is None:
            raise MenuError(f"There is no {what} '{raw}' on the menu: choose one of {_choices(s, kind)}.")
        if item.kind != kind:
            if kind == WashItemKind.PACKAGE:
                raise MenuError(f"{item.name} is an extra, not a package: choose a package, then the extras.")
            raise MenuError(f"{item.name} is a package, not an extra: choose it as the package.")
        if not item.active:
            raise MenuError(f"{item.name} is no longer sold: choose another {what}.")
        if any(c.code == item.code for c in chosen):
            raise MenuError(f"{item.name} is chosen twice: choose each extra once.")
        if plan is not None and item.code in included:
            raise MenuError(f"{item.name} is already in the {plan.name} plan: the member gets it at no charge.")
        if kind == WashItemKind.PACKAGE:
            package = item
        else:
            chosen.append(item)
    if plan is None and package is None:
        if chosen:
            raise MenuError("Choose a package first: extras are sold with a single wash.")
        raise MenuError(f"Choose a package for the single wash: {_choices(s, WashItemKind.PACKAGE)}.")
    if plan is not None and package is None and not chosen:
        raise MenuError(f"Choose an extra to sell: the {plan.name} plan already includes the member's wash.")
    return package, chosen
