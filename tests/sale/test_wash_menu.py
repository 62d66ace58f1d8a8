"""The wash menu in the database (issue 18 item 1): the demo's menu, a manager's changes, the settings applied
at start-up, and the one rule for what a car may buy (every refusal's words)."""

from __future__ import annotations

import pytest
from sqlmodel import col, select

from clarity_tui.config import LaneConfig, Settings, SiteConfig, WashConfig, WashItemConfig
from clarity_tui.services.actor import Actor
from clarity_tui.services.bootstrap import open_database
from clarity_tui.services.wash_menu import MenuError, WashMenu, check_choice
from db.engine import Database
from db.models import AuditLog, Lane, Plan, WashItem
from tests.helpers.actors import ATTENDANT, MANAGER

pytestmark = pytest.mark.both_databases  # a menu shared by every terminal: both databases


def plan_id(db: Database, code: str) -> int:
    with db.read() as s:
        pid = s.exec(select(Plan.id).where(Plan.code == code)).one()
        assert pid is not None
        return pid


def menu_audits(db: Database, action: str) -> list[AuditLog]:
    with db.read() as s:
        return list(s.exec(select(AuditLog).where(AuditLog.action == action).order_by(col(AuditLog.id))))


def choose(db: Database, package: str | None, extras: list[str], plan: str | None = None) -> tuple[str | None, list[str]]:
    with db.read() as s:
        pkg, chosen = check_choice(s, package, extras, plan_id=plan_id(db, plan) if plan else None)
        return (pkg.code if pkg else None), [c.code for c in chosen]


def refusal(db: Database, package: str | None, extras: list[str], plan: str | None = None) -> str:
    with pytest.raises(MenuError) as err:
        choose(db, package, extras, plan)
    return str(err.value)


# --- the demo's menu ----------------------------------------------------------------------------------------


def test_the_demo_menu_lists_packages_first_then_extras_with_their_plans(demo_db: Database) -> None:
    menu = WashMenu(demo_db)
    assert [(i.code, i.price_cents) for i in menu.packages()] == [("BASIC", 1000), ("DELUXE", 1500), ("ULTIMATE", 2000)]
    assert [(i.code, i.price_cents) for i in menu.extras()] == [("TIRE_SHINE", 300), ("CERAMIC", 500),
                                                                ("UNDERBODY", 400)]
    assert [i.kind for i in menu.items()] == ["package"] * 3 + ["extra"] * 3
    assert menu.included(plan_id(demo_db, "ULTIMATE")) == {"BASIC", "DELUXE", "ULTIMATE", "TIRE_SHINE", "CERAMIC",
                                                           "UNDERBODY"}
    assert menu.included(plan_id(demo_db, "BASIC")) == {"BASIC"}
    assert menu.included(None) == set()
    ceramic = next(i for i in menu.items() if i.code == "CERAMIC")
    assert ceramic.plans == ("FAMILY", "ULTIMATE")


# --- a manager's changes ------------------------------------------------------------------------------------------


def test_a_manager_adds_changes_and_retires_an_item_each_change_audited(demo_db: Database) -> None:
    menu = WashMenu(demo_db)
    added = menu.set_item("rain_x", name="Rain repellent", kind="extra", price_cents=450, tunnel_code=3,
                          plans=["ultimate"], actor=MANAGER)
    assert (added.code, added.name, added.price_cents, added.plans, added.active) == (
        "RAIN_X", "Rain repellent", 450, ("ULTIMATE",), True)
    assert [i.code for i in menu.extras()][-1] == "RAIN_X"  # a new extra goes last
    changed = menu.set_item("RAIN_X", name="Rain repellent", kind="extra", price_cents=500, actor=MANAGER)
    assert (changed.price_cents, changed.plans) == (500, ())
    same = menu.set_item("RAIN_X", name="Rain repellent", kind="extra", price_cents=500, actor=MANAGER)
    assert same == changed
    sets = menu_audits(demo_db, "menu.item_set")
    assert len(sets) == 2 and sets[0].actor == MANAGER.name  # the unchanged third set wrote nothing
    assert (sets[1].before or {})["price_cents"] == 450 and (sets[1].after or {})["price_cents"] == 500

    retired = menu.retire("rain_x", actor=MANAGER)
    assert not retired.active
    assert "RAIN_X" not in [i.code for i in menu.items()]
    assert "RAIN_X" in [i.code for i in menu.items(include_retired=True)]
    menu.retire("RAIN_X", actor=MANAGER)
    assert len(menu_audits(demo_db, "menu.item_retired")) == 1  # retiring twice changes nothing
    again = menu.set_item("RAIN_X", name="Rain repellent", kind="extra", price_cents=500, actor=MANAGER)
    assert again.active  # set sells it again

    included = menu.include("TIRE_SHINE", ["BASIC", "DELUXE"], actor=MANAGER)
    assert included.plans == ("BASIC", "DELUXE")
    assert "TIRE_SHINE" in menu.included(plan_id(demo_db, "BASIC"))


def test_only_a_manager_or_the_system_changes_the_menu(demo_db: Database) -> None:
    menu = WashMenu(demo_db)
    with pytest.raises(MenuError, match=r"^Only a manager can change the wash menu \(Alex Attendant is signed in as "
                                        r"attendant\): ask a manager\.$"):
        menu.set_item("X", name="X", kind="extra", price_cents=100, actor=ATTENDANT)
    with pytest.raises(MenuError, match="needs a manager: sign in as a manager first"):
        menu.retire("BASIC")
    assert WashMenu(demo_db, Actor.system("settings")).retire("BASIC").active is False


@pytest.mark.parametrize(("change", "message"), [
    ({"code": "tire shine"}, "'tire shine' is not a menu code: use up to 32 letters, digits, '-' or '_' "
                             "(e.g. TIRE_SHINE)."),
    ({"name": "  "}, "A menu item needs a name of 1 to 80 characters."),
    ({"kind": "combo"}, "'combo' is not a kind of menu item: use package or extra."),
    ({"price_cents": -1}, "The price must be between $0.00 and $1,000.00 (got -1 cents)."),
    ({"price_cents": 100_001}, "The price must be between $0.00 and $1,000.00 (got 100001 cents)."),
    ({"tunnel_code": 70000}, "The tunnel code must be a whole number from 0 to 65535 (got 70000)."),
    ({"plans": ["GOLD"]}, "There is no plan GOLD: use one of the plan codes (BASIC, DELUXE, FAMILY, ULTIMATE)."),
])
def test_bad_menu_input_gets_one_clear_sentence_and_changes_nothing(demo_db: Database, change: dict,
                                                                    message: str) -> None:
    fields = {"code": "WAX", "name": "Hot wax", "kind": "extra", "price_cents": 300, "tunnel_code": 4, "plans": (),
              **change}
    code = fields.pop("code")
    with pytest.raises(MenuError) as err:
        WashMenu(demo_db, MANAGER).set_item(code, **fields)
    assert str(err.value) == message
    assert "WAX" not in [i.code for i in WashMenu(demo_db).items(include_retired=True)]


def test_retiring_an_unknown_item_names_the_menu(demo_db: Database) -> None:
    with pytest.raises(MenuError, match=r"^There is no menu item WAX: use one of BASIC, DELUXE, ULTIMATE, TIRE_SHINE, "
                                        r"CERAMIC, UNDERBODY\.$"):
        WashMenu(demo_db, MANAGER).retire("wax")


# --- settings ---------------------------------------------------------------------------------------------------------

SETTINGS_MENU = [
    WashItemConfig(code="EXPRESS", name="Express", price_cents=800, tunnel_code=1, plans=["BASIC"]),
    WashItemConfig(code="TIRE_SHINE", name="Tire shine", kind="extra", price_cents=350, plans=["DELUXE"]),
]


def test_the_settings_menu_is_applied_once_and_unlisted_items_are_retired(demo_db: Database) -> None:
    menu = WashMenu(demo_db, Actor.system("settings"))
    assert not menu.matches_settings(SETTINGS_MENU)
    assert menu.apply_settings(SETTINGS_MENU) == 7  # 2 set, 5 demo items retired
    assert [(i.code, i.price_cents, i.plans) for i in menu.items()] == [("EXPRESS", 800, ("BASIC",)),
                                                                        ("TIRE_SHINE", 350, ("DELUXE",))]
    assert menu.matches_settings(SETTINGS_MENU)
    before = len(menu_audits(demo_db, "menu.item_set")) + len(menu_audits(demo_db, "menu.item_retired"))
    assert menu.apply_settings(SETTINGS_MENU) == 0
    assert len(menu_audits(demo_db, "menu.item_set")) + len(menu_audits(demo_db, "menu.item_retired")) == before
    assert menu.apply_settings([]) == 0  # no menu in the settings: the database's is kept
    twice = [*SETTINGS_MENU, SETTINGS_MENU[0]]
    with pytest.raises(MenuError, match=r"^The settings list the menu item EXPRESS twice: keep one \[\[wash\.menu\]\] "
                                        r"entry per code\.$"):
        menu.apply_settings(twice)


def test_start_up_applies_the_settings_menu_and_each_lanes_auto_dispatch(demo_db: Database) -> None:
    lanes = [LaneConfig(name="Pre-Gate", kind="pre_gate"), LaneConfig(name="Lane 1", auto_dispatch=True),
             LaneConfig(name="Lane 2"), LaneConfig(name="Lane 3")]
    settings = Settings(database_url=demo_db.url, terminal_id="boot", site=SiteConfig(timezone="UTC", lanes=lanes),
                        wash=WashConfig(menu=SETTINGS_MENU))
    for _ in range(2):  # the second start finds everything in place and writes nothing
        opened = open_database(settings)
        try:
            with opened.read() as s:
                auto = {lane.name: lane.auto_dispatch for lane in s.exec(select(Lane))}
            assert auto["Lane 1"] is True and auto["Lane 2"] is False
            assert [i.code for i in WashMenu(opened).items()] == ["EXPRESS", "TIRE_SHINE"]
        finally:
            opened.dispose()
    assert len(menu_audits(demo_db, "lane.auto_dispatch")) == 1
    assert len(menu_audits(demo_db, "menu.item_set")) == 2


# --- what a car may buy -----------------------------------------------------------------------------------------------


def test_a_car_buys_a_package_and_its_extras_a_member_what_the_plan_lacks(demo_db: Database) -> None:
    assert choose(demo_db, "deluxe", ["TIRE_SHINE", "ceramic"]) == ("DELUXE", ["TIRE_SHINE", "CERAMIC"])
    assert choose(demo_db, None, ["CERAMIC"], plan="DELUXE") == (None, ["CERAMIC"])  # extras only
    assert choose(demo_db, "ULTIMATE", [], plan="BASIC") == ("ULTIMATE", [])  # above the plan's wash


def test_every_bad_choice_gets_one_clear_sentence(demo_db: Database) -> None:
    WashMenu(demo_db, MANAGER).retire("DELUXE")
    WashMenu(demo_db, MANAGER).retire("UNDERBODY")
    assert refusal(demo_db, "DELUXE", []) == "Deluxe wash is no longer sold: choose another package."
    assert refusal(demo_db, "BASIC", ["UNDERBODY"]) == "Underbody flush is no longer sold: choose another extra."
    assert refusal(demo_db, None, ["TIRE_SHINE"], plan="ULTIMATE") == (
        "Tire shine is already in the Ultimate Wash Club plan: the member gets it at no charge.")
    assert refusal(demo_db, "BASIC", [], plan="BASIC") == (
        "Basic wash is already in the Basic Wash Club plan: the member gets it at no charge.")
    assert refusal(demo_db, "PLATINUM", []) == (
        "There is no package 'PLATINUM' on the menu: choose one of Basic wash, Ultimate wash.")
    assert refusal(demo_db, "BASIC", ["WAX"]) == (
        "There is no extra 'WAX' on the menu: choose one of Tire shine, Ceramic seal.")
    assert refusal(demo_db, "BASIC", ["CERAMIC", "ceramic"]) == "Ceramic seal is chosen twice: choose each extra once."
    assert refusal(demo_db, None, ["CERAMIC"]) == "Choose a package first: extras are sold with a single wash."
    assert refusal(demo_db, None, []) == "Choose a package for the single wash: Basic wash, Ultimate wash."
    assert refusal(demo_db, "TIRE_SHINE", []) == (
        "Tire shine is an extra, not a package: choose a package, then the extras.")
    assert refusal(demo_db, "BASIC", ["ULTIMATE"]) == "Ultimate wash is a package, not an extra: choose it as the package."
    assert refusal(demo_db, None, [], plan="DELUXE") == (
        "Choose an extra to sell: the Deluxe Wash Club plan already includes the member's wash.")
    with demo_db.read() as s:  # nothing was written by any refusal
        assert s.exec(select(WashItem).where(col(WashItem.active).is_(False))).all().__len__() == 2
