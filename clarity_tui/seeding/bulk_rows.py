"""The bulk loader's rows: plain tuples per table, built from a seeded RNG with ids allocated by us."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass

from clarity_tui.seeding.vocabulary import (
    CARDS,
    CITIES,
    EMAIL_DOMAINS,
    HYPHENATED_SHARE,
    INTERNATIONAL_PHONES,
    LEGACY_PLANS,
    PLATE_MULT,
    PLATE_REGIONS,
    PLATE_SHIFT,
    PLATE_SPACE,
    STATUS_WEIGHTS,
    STREET_KINDS,
    STREETS,
    cumulative,
    email_part,
    name_keys,
    plate_normalized,
    plate_text,
    vocabulary,
)

CUSTOMER_COLS = ("id", "customer_number", "first_name", "last_name", "phone_e164", "email", "address_line1",
                 "city", "region", "postal_code", "country", "search_last", "search_first", "email_lower",
                 "phone_rev", "created_at", "updated_at", "version")
VEHICLE_COLS = ("id", "customer_id", "plate", "plate_region", "plate_normalized", "make", "model", "colour", "year",
                "created_at")
MEMBERSHIP_COLS = ("id", "customer_id", "plan_id", "status", "source", "started_on", "expires_on", "next_billing_on",
                   "legacy_id", "cancel_at_period_end", "pending_sync", "created_at", "updated_at", "version")
MEMBERSHIP_VEHICLE_COLS = ("membership_id", "vehicle_id")
PAYMENT_METHOD_COLS = ("id", "customer_id", "gateway", "gateway_token", "brand", "last4", "exp_month", "exp_year",
                       "is_default", "created_at")
LEGACY_COLS = ("id", "source_system", "legacy_id", "raw", "first_name", "last_name", "phone_e164", "email",
               "vehicle_desc", "plan_name", "plan_id", "status", "next_bill_on", "joined_on", "imported_at",
               "updated_at")
LEGACY_PLATE_COLS = ("id", "legacy_member_id", "plate_raw", "plate_normalized")

TABLES: dict[str, Sequence[str]] = {
    "customer": CUSTOMER_COLS,
    "vehicle": VEHICLE_COLS,
    "membership": MEMBERSHIP_COLS,
    "membership_vehicle": MEMBERSHIP_VEHICLE_COLS,
    "payment_method": PAYMENT_METHOD_COLS,
    "legacy_member": LEGACY_COLS,
    "legacy_member_plate": LEGACY_PLATE_COLS,
}
ID_TABLES = ("customer", "vehicle", "membership", "payment_method", "legacy_member", "legacy_member_plate")


@dataclass
class Batch:
    rows: dict[str, list[tuple]]

    def count(self, table: str) -> int:
        return len(self.rows[table])


@dataclass
class IdBlocks:
    """The next free id of each table (we allocate ids ourselves)."""

    next: dict[str, int]


class RowGenerator:
    """Builds the rows of one batch. Pure Python and deterministic for a given seed."""

    def __init__(self, plans: dict[str, tuple[int, int]], seed: int, ts_suffix: str, existing_plates: set[str],
                 plate_counter: int) -> None:
        self.vocab = vocabulary()
        self.plans = plans  # code -> (id, max_vehicles)
        self.seed = seed
        self.ts_suffix = ts_suffix
        self.existing_plates = existing_plates
        self.plate_counter = plate_counter
        self.today = dt.date.today()  # dates are site-local, timestamps UTC
        # Day strings for the last ~6 years, shared by every date column...
        self.days = [(self.today - dt.timedelta(days=d)).isoformat() for d in range(0, 2200)]
        # ...and for timestamps, which are UTC and always in the past (from yesterday back).
        utc_today = dt.datetime.now(dt.UTC).date()
        self.ts_days = [(utc_today - dt.timedelta(days=d)).isoformat() for d in range(1, 2200)]
        self.future_days = [(self.today + dt.timedelta(days=d)).isoformat() for d in range(0, 400)]
        self.region_cw = cumulative(w for _, w in PLATE_REGIONS)
        self.status_cw = cumulative(w for _, w in STATUS_WEIGHTS)

    def _next_plate(self, region: str) -> tuple[str, str]:
        while True:
            k = (self.plate_counter * PLATE_MULT + PLATE_SHIFT) % PLATE_SPACE
            self.plate_counter += 1
            plate = plate_text(k, region)
            norm = plate_normalized(plate)
            # Unique across regions too: plate lookups by camera read do not know the region.
            if norm not in self.existing_plates:
                return plate, norm

    def _timestamp(self, rng: random.Random, max_days: int) -> str:
        r = rng.random
        day = self.ts_days[int(r() * max_days)]
        secs = int(r() * 86400)
        return f"{day} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{int(r() * 1e6):06d}{self.ts_suffix}"

    def customers(self, ids: IdBlocks, n: int) -> Batch:
        v = self.vocab
        rng = random.Random(f"{self.seed}:{ids.next['customer']}")
        r = rng.random
        first_names = rng.choices(v.first, cum_weights=v.first_cw, k=n)
        last_names = rng.choices(v.last, cum_weights=v.last_cw, k=n)
        plan_items = list(self.plans.values())
        plan_weights = cumulative([0.40, 0.25, 0.22, 0.13][: len(plan_items)] + [0.05] * max(0, len(plan_items) - 4))
        days, future = self.days, self.future_days
        vehicles_list, colours = v.vehicles, v.colours
        n_vehicles, n_colours = len(vehicles_list), len(colours)
        email_first, email_last = v.email_first, v.email_last
        last_list, n_last = v.last, len(v.last)
        status_cw, region_cw = self.status_cw, self.region_cw

        cust, veh, mem, mv, pm = [], [], [], [], []
        cid, vid, mid, pid = ids.next["customer"], ids.next["vehicle"], ids.next["membership"], ids.next["payment_method"]
        for i in range(n):
            first, last = first_names[i], last_names[i]
            if r() < HYPHENATED_SHARE:
                other = last_list[int(r() * n_last)]
                if other != last and " " not in last and " " not in other:
                    last = f"{last}-{other}"
            search_first, search_last = name_keys(first, last)
            city, region, zip3, areas = CITIES[int(r() * r() * len(CITIES))]  # skewed to the first (local) cities
            x = r()
            if x < 0.04:
                phone = None
            elif x < 0.05:
                cc, prefix, rest = INTERNATIONAL_PHONES[int(r() * len(INTERNATIONAL_PHONES))]
                phone = f"{cc}{prefix}{int(r() * 10**rest):0{rest}d}"
                if cc == "+1":  # the exchange must not start with 0 or 1
                    phone = f"{cc}{prefix}{200 + int(r() * 800)}{int(r() * 10000):04d}"
            else:
                exchange = 200 + int(r() * 800)
                if exchange % 100 == 11:  # N11 codes are not exchanges
                    exchange += 1
                phone = f"+1{areas[int(r() * len(areas))]}{exchange}{int(r() * 10000):04d}"
            if r() < 0.08:
                email = None
            else:
                local = f"{email_first[first]}.{email_last[last] if '-' not in last else email_part(last)}{cid % 100000}"
                domain = EMAIL_DOMAINS[int(r() * len(EMAIL_DOMAINS))]
                # Some people type their address with capitals: search must not care.
                email = f"{local}@{domain}" if r() < 0.95 else f"{local.title()}@{domain.upper()}"
            created = self._timestamp(rng, 2190)
            cust.append((
                cid, f"C{10_000_000 + cid}", first, last, phone, email,
                f"{100 + int(r() * 9900)} {STREETS[int(r() * len(STREETS))]} {STREET_KINDS[int(r() * len(STREET_KINDS))]}",
                city, region, f"{zip3}{int(r() * 100):02d}", "US", search_last, search_first,
                email.lower() if email else None, phone[:0:-1] if phone else None,
                created, created, 1,
            ))
            # vehicles
            vids = []
            for _ in range(1 if r() < 0.85 else 2):
                pr = r()
                plate_region = PLATE_REGIONS[0][0]
                for k, cw in enumerate(region_cw):
                    if pr < cw:
                        plate_region = PLATE_REGIONS[k][0]
                        break
                plate, norm = self._next_plate(plate_region)
                make, model = vehicles_list[int(r() * n_vehicles)]
                veh.append((vid, cid, plate, plate_region, norm, make, model, colours[int(r() * n_colours)],
                            2005 + int(r() * 22), created))
                vids.append(vid)
                vid += 1
            # a saved card (gateway token only)
            if r() < 0.75:
                brand, last4 = CARDS[int(r() * len(CARDS))]
                pm.append((pid, cid, "simulated", f"pm_sim_bulk_{pid}", brand, last4, 1 + int(r() * 12),
                           self.today.year + int(r() * 5), 1, created))
                pid += 1
            # a membership
            if r() < 0.62:
                pw = r() * plan_weights[-1]
                plan_id, max_vehicles = plan_items[-1]
                for k, cw in enumerate(plan_weights):
                    if pw < cw:
                        plan_id, max_vehicles = plan_items[k]
                        break
                sx = r()
                status = STATUS_WEIGHTS[-1][0]
                for k, cw in enumerate(status_cw):
                    if sx < cw:
                        status = STATUS_WEIGHTS[k][0]
                        break
                started = int(r() * 1500)
                migrated = r() < 0.1
                expires = next_billing = None
                if status in ("active", "past_due"):
                    next_billing = future[1 + int(r() * 30)] if status == "active" else days[1 + int(r() * 20)]
                elif status == "paused":
                    next_billing = future[30 + int(r() * 60)]
                else:
                    expires = days[int(r() * max(1, started))]
                mem.append((mid, cid, plan_id, status, "migration" if migrated else "sale", days[started], expires,
                            next_billing, f"SW{900000 + mid}" if migrated else None, 0, 0, created, created, 1))
                for vehicle_id in vids[:max_vehicles]:
                    mv.append((mid, vehicle_id))
                mid += 1
            cid += 1
        ids.next.update(customer=cid, vehicle=vid, membership=mid, payment_method=pid)
        return Batch({"customer": cust, "vehicle": veh, "membership": mem, "membership_vehicle": mv,
                       "payment_method": pm, "legacy_member": [], "legacy_member_plate": []})

    def legacy(self, ids: IdBlocks, n: int, plan_ids: dict[str, int]) -> Batch:
        v = self.vocab
        rng = random.Random(f"{self.seed}:legacy:{ids.next['legacy_member']}")
        r = rng.random
        first_names = rng.choices(v.first, cum_weights=v.first_cw, k=n)
        last_names = rng.choices(v.last, cum_weights=v.last_cw, k=n)
        lm, lmp = [], []
        lid, plid = ids.next["legacy_member"], ids.next["legacy_member_plate"]
        for i in range(n):
            first, last = first_names[i], last_names[i]
            plan_name, plan_code = LEGACY_PLANS[int(r() * len(LEGACY_PLANS))]
            plate, norm = self._next_plate("US-TX")
            make, model = v.vehicles[int(r() * len(v.vehicles))]
            colour = v.colours[int(r() * len(v.colours))]
            phone = f"+1{CITIES[0][3][int(r() * 2)]}{200 + int(r() * 800)}{int(r() * 10000):04d}"
            email = f"{v.email_first[first]}.{email_part(last)}{lid % 100000}@example.com" if r() < 0.7 else None
            legacy_id = f"SWB{lid}"
            next_bill = self.future_days[2 + int(r() * 27)]
            joined = self.days[100 + int(r() * 1900)]
            imported = self._timestamp(rng, 30)
            raw = json.dumps({"plate": plate, "plan": plan_name, "first": first, "last": last, "phone": phone},
                             ensure_ascii=False)
            lm.append((lid, "sitewatch", legacy_id, raw, first, last, phone, email, f"{colour} {make} {model}",
                       plan_name, plan_ids[plan_code], "active", next_bill, joined, imported, imported))
            lmp.append((plid, lid, plate, norm))
            lid += 1
            plid += 1
        ids.next.update(legacy_member=lid, legacy_member_plate=plid)
        return Batch({"customer": [], "vehicle": [], "membership": [], "membership_vehicle": [],
                       "payment_method": [], "legacy_member": lm, "legacy_member_plate": lmp})

