"""Bulk loader for large, realistic benchmark databases (`clarity-tui demo seed --customers N`).

A million customers with vehicles, memberships and saved cards in well under two
minutes. How:

- rows are built in plain Python tuples with a seeded RNG (no ORM objects);
- ids are allocated by us in blocks, so children point at parents without round trips
  (SQLite: inside the batch's write lock; PostgreSQL: reserved from the sequences);
- SQLite: the raw DBAPI connection, `executemany`, one transaction per batch,
  foreign-key checks and fsync off while loading, secondary indexes rebuilt once at the end;
- PostgreSQL: psycopg 3 `COPY ... FROM STDIN` fed with ready-made text lines.

Customer search runs on this data, so names are varied (accents, apostrophes,
hyphens, thousands of distinct last names, a Zipf-like distribution) and the search
keys are exactly those of `identity.customer_search_keys`. Cards are gateway
tokens only: never a card number.

Appends to an existing database (for example one holding the demo site).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import queue
import random
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache, cache

from sqlalchemy import text

from clarity_tui.services import audit
from clarity_tui.services.actor import Actor
from clarity_tui.services.demo import COLOURS, FIRST_NAMES, LAST_NAMES, VEHICLES, ensure_reference_data
from clarity_tui.services.identity import customer_search_keys
from db.engine import Database

log = logging.getLogger(__name__)

BATCH_CUSTOMERS = 50_000

# --- name and place lists ------------------------------------------------------
# Ordered roughly by frequency: the sampler gives earlier entries more weight.

MORE_FIRST_NAMES = [
    "Michael", "David", "John", "William", "Richard", "Joseph", "Thomas", "Christopher", "Charles", "Daniel",
    "Matthew", "Anthony", "Mark", "Donald", "Steven", "Paul", "Andrew", "Joshua", "Kenneth", "Kevin", "Brian",
    "George", "Timothy", "Ronald", "Jason", "Jeffrey", "Ryan", "Jacob", "Gary", "Nicholas", "Eric", "Jonathan",
    "Stephen", "Larry", "Justin", "Scott", "Brandon", "Benjamin", "Gregory", "Frank", "Alexander", "Raymond",
    "Patrick", "Dennis", "Jerry", "Tyler", "Aaron", "José", "Adam", "Nathan", "Henry", "Zachary", "Douglas",
    "Peter", "Kyle", "Walter", "Harold", "Jeremy", "Carl", "Keith", "Roger", "Gerald", "Christian", "Terry",
    "Austin", "Arthur", "Lawrence", "Jesse", "Dylan", "Bryan", "Joe", "Jordan", "Billy", "Bruce", "Albert",
    "Willie", "Gabriel", "Logan", "Alan", "Juan", "Wayne", "Elijah", "Randy", "Roy", "Vincent", "Ralph",
    "Eugene", "Russell", "Bobby", "Mason", "Philip", "Louis", "Mary", "Patricia", "Jennifer", "Linda",
    "Elizabeth", "Barbara", "Susan", "Jessica", "Sarah", "Karen", "Lisa", "Nancy", "Betty", "Margaret",
    "Sandra", "Ashley", "Kimberly", "Donna", "Michelle", "Carol", "Amanda", "Dorothy", "Melissa", "Deborah",
    "Stephanie", "Rebecca", "Sharon", "Laura", "Cynthia", "Kathleen", "Amy", "Angela", "Shirley", "Anna",
    "Brenda", "Pamela", "Nicole", "Samantha", "Katherine", "Christine", "Debra", "Rachel", "Carolyn", "Janet",
    "Catherine", "Heather", "Diane", "Ruth", "Julie", "Joyce", "Virginia", "Victoria", "Kelly", "Lauren",
    "Christina", "Joan", "Evelyn", "Judith", "Megan", "Andrea", "Cheryl", "Hannah", "Jacqueline", "Martha",
    "Gloria", "Teresa", "Ann", "Sara", "Madison", "Frances", "Kathryn", "Janice", "Jean", "Abigail", "Alice",
    "Judy", "Julia", "Marie", "Denise", "Beverly", "Danielle", "Theresa", "Sophia", "Marilyn", "Natalie",
    "Diana", "Brittany", "Charlotte", "Rose", "Alexis", "Kayla", "Renée", "André", "Siobhán", "François",
    "Noémie", "Björn", "Søren", "Zoé", "Inés", "Raúl", "Jesús", "Ángel", "Mónica", "Lucía", "Agustín",
    "Łukasz", "Małgorzata", "Jürgen", "Günter", "Anaïs", "Héloïse", "Thérèse", "Maëlle", "Joël", "Ciarán",
    "Niamh", "Seán", "Aoife", "Eóin", "Dário", "João", "Conceição", "Mariá", "Nguyễn", "Thảo", "Minh",
    "Jin-woo", "Ji-hoon", "Seo-yeon", "Anne-Marie", "Jean-Luc", "Mary-Kate", "D'Andre", "De'Shawn",
    "Ta'Nisha", "Ke'Ana", "Yusuf", "Omar", "Layla", "Mohammed", "Ahmed", "Zainab", "Ravi", "Anjali",
    "Arjun", "Deepika", "Sanjay", "Kenji", "Yuki", "Sakura", "Haruto", "Mei", "Xin", "Li", "Chen", "Olga",
    "Sergei", "Natasha", "Ivan", "Katya", "Aleksander", "Zofia", "Bogdan", "Ngozi", "Chidi", "Adaeze",
    "Kwame", "Abena", "Tendai", "Thandiwe", "Sione", "Malia", "Kai", "Leilani", "Santiago", "Valentina",
    "Camila", "Sebastián", "Matías", "Isabella", "Emma", "Ava", "Amelia", "Harper", "Evelyn", "Aria",
    "Scarlett", "Luna", "Ellie", "Nova", "Hazel", "Aurora", "Violet", "Stella", "Willow", "Riley", "Quinn",
]
MORE_LAST_NAMES = [
    "Williams", "Jones", "Miller", "Davis", "Rodriguez", "Hernandez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Thompson", "White", "Harris", "Sanchez", "Clark",
    "Ramirez", "Lewis", "Robinson", "Torres", "Flores", "Adams", "Rivera", "Campbell", "Parker", "Edwards",
    "Collins", "Stewart", "Morris", "Murphy", "Cook", "Rogers", "Gutierrez", "Ortiz", "Morgan", "Cooper",
    "Peterson", "Bailey", "Reed", "Kelly", "Howard", "Ramos", "Cox", "Ward", "Richardson", "Watson",
    "Brooks", "Chavez", "Wood", "James", "Bennett", "Gray", "Mendoza", "Ruiz", "Hughes", "Price", "Alvarez",
    "Castillo", "Sanders", "Myers", "Long", "Ross", "Foster", "Jimenez", "Powell", "Jenkins", "Perry",
    "Russell", "Sullivan", "Bell", "Coleman", "Butler", "Henderson", "Barnes", "Gonzales", "Fisher",
    "Vasquez", "Simmons", "Romero", "Jordan", "Patterson", "Alexander", "Hamilton", "Graham", "Reynolds",
    "Griffin", "Wallace", "Moreno", "West", "Cole", "Hayes", "Bryant", "Herrera", "Gibson", "Ellis", "Tran",
    "Medina", "Aguilar", "Stevens", "Murray", "Ford", "Castro", "Marshall", "Owens", "Harrison", "Fernandez",
    "McDonald", "Woods", "Washington", "Kennedy", "Wells", "Vargas", "Henry", "Chen", "Freeman", "Webb",
    "Tucker", "Guzman", "Burns", "Crawford", "Olson", "Simpson", "Porter", "Hunter", "Gordon", "Mendez",
    "Silva", "Shaw", "Snyder", "Mason", "Dixon", "Muñoz", "Hunt", "Hicks", "Holmes", "Palmer", "Wagner",
    "Black", "Robertson", "Boyd", "Rose", "Stone", "Salazar", "Fox", "Warren", "Mills", "Meyer", "Rice",
    "Schmidt", "Garza", "Daniels", "Ferguson", "Nichols", "Stephens", "Soto", "Weaver", "Ryan", "Gardner",
    "Payne", "Grant", "Dunn", "Kelley", "Spencer", "Hawkins", "Arnold", "Pierce", "Vázquez", "Hansen",
    "Peters", "Santos", "Hart", "Bradley", "Knight", "Elliott", "Cunningham", "Duncan", "Armstrong",
    "Hudson", "Carroll", "Lane", "Riley", "Andrews", "Alvarado", "Ray", "Delgado", "Berry", "Perkins",
    "Hoffman", "Johnston", "Matthews", "Peña", "Richards", "Contreras", "Willis", "Carpenter", "Lawrence",
    "Sandoval", "Guerrero", "George", "Chapman", "Ríos", "Estrada", "Ortega", "Watkins", "Greene", "Núñez",
    "Wheeler", "Valdez", "Harper", "Burke", "Larson", "Santiago", "Maldonado", "Morrison", "Franklin",
    "Carlson", "Austin", "Dominguez", "Carr", "Lawson", "Jacobs", "O'Connor", "O'Neil", "O'Reilly",
    "O'Donnell", "O'Sullivan", "O'Malley", "O'Hara", "D'Angelo", "D'Souza", "DeLuca", "DiMaggio",
    "McCarthy", "McGregor", "MacLeod", "MacKenzie", "McKenna", "van der Berg", "Van Buren", "de la Cruz",
    "de León", "St. John", "LeBlanc", "Lefèvre", "Dubois", "Moreau", "Lambert", "Bonnet", "François",
    "Gauthier", "Béland", "Côté", "Gagné", "Lévesque", "Bérubé", "Schäfer", "Schröder", "Köhler", "Weiß",
    "Groß", "Fischer", "Becker", "Hoffmann", "Koch", "Bauer", "Richter", "Klein", "Wolf", "Neumann",
    "Schwarz", "Zimmermann", "Krüger", "Hartmann", "Lange", "Jansen", "de Vries", "Bakker", "Visser",
    "Smit", "Mulder", "Bos", "Dekker", "Nowak", "Kowalski", "Wiśniewski", "Wójcik", "Kowalczyk",
    "Kamiński", "Lewandowski", "Zieliński", "Szymański", "Dąbrowski", "Novák", "Dvořák", "Svoboda",
    "Horváth", "Nagy", "Kovács", "Tóth", "Szabó", "Popescu", "Ionescu", "Ivanov", "Petrov", "Smirnov",
    "Volkov", "Kuznetsov", "Popov", "Sokolov", "Lebedev", "Kozlov", "Novak", "Horvat", "Kovačević",
    "Jovanović", "Petrović", "Nikolić", "Papadopoulos", "Georgiou", "Yılmaz", "Kaya", "Demir", "Şahin",
    "Çelik", "Öztürk", "Andersson", "Johansson", "Karlsson", "Nilsson", "Eriksson", "Larsson", "Olsen",
    "Jensen", "Nielsen", "Pedersen", "Kristiansen", "Virtanen", "Korhonen", "Mäkinen", "Nieminen",
    "Ó Briain", "Ní Bhriain", "Ferreira", "Pereira", "Oliveira", "Costa", "Rodrigues", "Martins", "Sousa",
    "Gonçalves", "Araújo", "Ribeiro", "Carvalho", "Almeida", "Lopes", "Nascimento", "Barbosa", "Rocha",
    "Dias", "Moreira", "Cardoso", "Teixeira", "Correia", "Mendes", "Esposito", "Romano", "Colombo",
    "Ricci", "Marino", "Greco", "Bruno", "Gallo", "Conti", "De Luca", "Mancini", "Costa", "Giordano",
    "Rizzo", "Lombardi", "Moretti", "Wang", "Li", "Zhang", "Liu", "Yang", "Huang", "Zhao", "Wu", "Zhou",
    "Xu", "Sun", "Ma", "Zhu", "Hu", "Guo", "He", "Lin", "Luo", "Gao", "Liang", "Zheng", "Xie", "Song",
    "Tang", "Han", "Feng", "Deng", "Cao", "Peng", "Zeng", "Xiao", "Tian", "Dong", "Pan", "Yuan", "Cai",
    "Jiang", "Yu", "Du", "Ye", "Cheng", "Wei", "Su", "Lü", "Ding", "Ren", "Lu", "Yao", "Shen", "Zhong",
    "Jiang", "Cui", "Tan", "Liao", "Fan", "Wong", "Chan", "Leung", "Cheung", "Lau", "Ho", "Ng", "Chow",
    "Sato", "Suzuki", "Takahashi", "Tanaka", "Watanabe", "Ito", "Yamamoto", "Nakamura", "Kobayashi",
    "Kato", "Yoshida", "Yamada", "Sasaki", "Yamaguchi", "Matsumoto", "Inoue", "Kimura", "Hayashi",
    "Shimizu", "Park", "Choi", "Jung", "Kang", "Cho", "Yoon", "Jang", "Lim", "Shin", "Oh", "Seo", "Kwon",
    "Hwang", "Ahn", "Song", "Yoo", "Hong", "Jeon", "Ko", "Moon", "Pham", "Hoang", "Huynh", "Phan", "Vu",
    "Vo", "Dang", "Bui", "Do", "Ho", "Ngo", "Duong", "Ly", "Trần", "Lê", "Phạm", "Sharma", "Singh",
    "Kumar", "Gupta", "Shah", "Mehta", "Reddy", "Rao", "Iyer", "Nair", "Menon", "Pillai", "Desai",
    "Joshi", "Chopra", "Kapoor", "Malhotra", "Bhatt", "Chaudhary", "Khan", "Ali", "Hussain", "Ahmed",
    "Rahman", "Hassan", "Abdullah", "Haddad", "Khoury", "Nasser", "Saleh", "Farah", "Mansour", "Okafor",
    "Okonkwo", "Adeyemi", "Mensah", "Boateng", "Owusu", "Asante", "Nkosi", "Dlamini", "Mokoena",
    "Kamau", "Otieno", "Mwangi", "Kealoha", "Kahananui", "Tuilagi", "Fifita", "Begay", "Yazzie",
    "Tsosie", "Benally", "Redcloud", "Whitehorse", "Running-Water", "Two-Bulls",
]
HYPHENATED_SHARE = 0.07  # double-barrelled surnames, built from two list names
STREETS = [
    "Main", "Oak", "Pine", "Maple", "Cedar", "Elm", "Washington", "Lake", "Hill", "Park", "Lamar", "Congress",
    "Guadalupe", "Burnet", "Riverside", "Ben White", "Slaughter", "Parmer", "Braker", "Anderson Mill",
    "Bee Caves", "Barton Springs", "Cesar Chavez", "Airport", "Manor", "Pleasant Valley", "Rundberg",
    "Wells Branch", "Great Hills", "Spicewood Springs", "Far West", "Mopac", "William Cannon", "Stassney",
]
STREET_KINDS = ["St", "Ave", "Blvd", "Dr", "Ln", "Rd", "Way", "Ct", "Pkwy", "Trl"]
CITIES = [  # city, region, ZIP prefix, area codes
    ("Austin", "TX", "787", ("512", "737")),
    ("Round Rock", "TX", "786", ("512", "737")),
    ("Pflugerville", "TX", "786", ("512", "737")),
    ("Cedar Park", "TX", "786", ("512", "737")),
    ("San Marcos", "TX", "786", ("512", "737")),
    ("San Antonio", "TX", "782", ("210", "726")),
    ("Houston", "TX", "770", ("713", "832", "281", "346")),
    ("Dallas", "TX", "752", ("214", "469", "972")),
    ("Fort Worth", "TX", "761", ("817", "682")),
    ("El Paso", "TX", "799", ("915",)),
    ("Oklahoma City", "OK", "731", ("405",)),
    ("Tulsa", "OK", "741", ("918",)),
    ("Albuquerque", "NM", "871", ("505",)),
    ("Phoenix", "AZ", "850", ("602", "480", "623")),
    ("Denver", "CO", "802", ("303", "720")),
    ("Chicago", "IL", "606", ("312", "773")),
    ("Atlanta", "GA", "303", ("404", "678")),
    ("Los Angeles", "CA", "900", ("213", "310", "323")),
    ("New York", "NY", "100", ("212", "646", "917")),
    ("Miami", "FL", "331", ("305", "786")),
]
# A few customers have foreign numbers: (country code, national-number pattern pieces).
INTERNATIONAL_PHONES = [  # prefixes where every suffix is a valid number for phonenumbers
    ("+52", "55", 8),    # Mexico City
    ("+1", "416", 7),    # Toronto
    ("+44", "7400", 6),  # UK mobile
    ("+49", "151", 8),   # German mobile
    ("+61", "412", 6),   # Australian mobile
    ("+353", "87", 7),   # Irish mobile
    ("+34", "6", 8),     # Spanish mobile
]
EMAIL_DOMAINS = ["example.com", "example.net", "example.org", "mail.example.com", "example.us"]
MORE_VEHICLES = [
    ("Toyota", "RAV4"), ("Toyota", "Tacoma"), ("Toyota", "Corolla"), ("Toyota", "Highlander"), ("Toyota", "Tundra"),
    ("Toyota", "Prius"), ("Honda", "Accord"), ("Honda", "CR-V"), ("Honda", "Pilot"), ("Honda", "Odyssey"),
    ("Ford", "Explorer"), ("Ford", "Escape"), ("Ford", "Mustang"), ("Ford", "Bronco"), ("Ford", "Ranger"),
    ("Ford", "Maverick"), ("Chevrolet", "Equinox"), ("Chevrolet", "Tahoe"), ("Chevrolet", "Malibu"),
    ("Chevrolet", "Colorado"), ("Chevrolet", "Suburban"), ("GMC", "Sierra"), ("GMC", "Yukon"), ("GMC", "Acadia"),
    ("Nissan", "Rogue"), ("Nissan", "Sentra"), ("Nissan", "Frontier"), ("Nissan", "Pathfinder"),
    ("Jeep", "Grand Cherokee"), ("Jeep", "Cherokee"), ("Jeep", "Gladiator"), ("Subaru", "Forester"),
    ("Subaru", "Crosstrek"), ("BMW", "3 Series"), ("BMW", "X3"), ("Mercedes-Benz", "C-Class"),
    ("Mercedes-Benz", "GLE"), ("Lexus", "RX"), ("Lexus", "ES"), ("Hyundai", "Tucson"), ("Hyundai", "Santa Fe"),
    ("Kia", "Telluride"), ("Kia", "Sportage"), ("Ram", "2500"), ("Mazda", "Mazda3"), ("Audi", "Q5"),
    ("Volkswagen", "Tiguan"), ("Volkswagen", "Atlas"), ("Tesla", "Model Y"), ("Tesla", "Model S"),
    ("Dodge", "Charger"), ("Dodge", "Durango"), ("Chrysler", "Pacifica"), ("Cadillac", "Escalade"),
    ("Buick", "Enclave"), ("Acura", "MDX"), ("Infiniti", "QX60"), ("Volvo", "XC90"), ("Rivian", "R1T"),
    ("Mini", "Cooper"), ("Porsche", "Macan"), ("Land Rover", "Range Rover"),
]
MORE_COLOURS = ["White", "White", "Black", "Black", "Silver", "Grey", "Grey", "Blue", "Red", "Green", "Beige",
                "Brown", "Gold", "Orange", "Yellow", "Maroon", "Navy", "Pearl"]
CARDS = [("Visa", "4242"), ("Visa", "1881"), ("Visa", "0077"), ("Mastercard", "4444"), ("Mastercard", "5100"),
         ("Amex", "8431"), ("Amex", "0005"), ("Discover", "1117"), ("Discover", "9424")]
# Membership status mix for the customers that have one.
STATUS_WEIGHTS = [("active", 0.70), ("past_due", 0.08), ("paused", 0.05), ("cancelled", 0.12), ("expired", 0.05)]
LEGACY_PLANS = [("Basic Club", "BASIC"), ("Deluxe Club", "DELUXE"), ("Ultimate Club", "ULTIMATE")]

# Plates: each region has a format with the same number of distinct plates
# (23 letters ^ 3 x 10 ^ 4), and a bijective scramble of a counter gives every
# vehicle a unique, random-looking plate without a lookup per row.
_PLATE_LETTERS = "ABCDEFGHJKLMNPRSTUVWXYZ"
_PLATE_SPACE = 23**3 * 10**4
_PLATE_MULT = 48_271_043  # coprime with the plate space (no factor 2, 5 or 23)
_PLATE_SHIFT = 7_919_117
PLATE_REGIONS = [("US-TX", 0.86), ("US-OK", 0.05), ("US-CA", 0.04), ("US-NM", 0.03), ("US-LA", 0.02)]


def _plate_text(k: int, region: str) -> str:
    """The k-th plate of the space in the region's usual format."""
    digits, letters = divmod(k, 23**3)
    a, rest = divmod(letters, 23 * 23)
    b, c = divmod(rest, 23)
    ls = _PLATE_LETTERS[a] + _PLATE_LETTERS[b] + _PLATE_LETTERS[c]
    d = f"{digits:04d}"
    if region == "US-CA":  # 7ABC123 style: a leading digit, three letters, three digits
        return f"{d[0]}{ls}{d[1:]}"
    if region == "US-OK":
        return f"{ls}-{d}"
    if region == "US-NM":
        return f"{ls} {d}"
    if region == "US-LA":
        return f"{d[:3]} {ls}{d[3]}"
    return f"{ls}-{d}"  # Texas: ABC-1234


def _plate_normalized(plate: str) -> str:
    return plate.replace("-", "").replace(" ", "")


@dataclass
class BulkSeedResult:
    customers: int
    vehicles: int
    memberships: int
    legacy: int
    payment_methods: int = 0
    membership_vehicles: int = 0
    seconds: float = 0.0
    first_customer_id: int | None = None
    last_customer_id: int | None = None

    @property
    def customers_per_second(self) -> float:
        return self.customers / self.seconds if self.seconds else 0.0


@cache
def _name_keys(first: str, last: str) -> tuple[str, str]:
    keys = customer_search_keys(first, last, None, None)
    return keys["search_first"], keys["search_last"]  # type: ignore[return-value]


def _email_part(name: str) -> str:
    from clarity_tui.services.identity import fold

    return fold(name).replace(" ", "") or "customer"


def _cumulative(weights: Iterable[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _zipf(n: int, s: float) -> list[float]:
    return _cumulative(1.0 / (i + 1) ** s for i in range(n))


def _unique(seq: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(seq))


@dataclass
class _Vocabulary:
    first: list[str]
    first_cw: list[float]
    last: list[str]
    last_cw: list[float]
    vehicles: list[tuple[str, str]]
    colours: list[str]
    email_first: dict[str, str] = field(default_factory=dict)
    email_last: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def _vocabulary() -> _Vocabulary:
    first = _unique(MORE_FIRST_NAMES[:40] + FIRST_NAMES + MORE_FIRST_NAMES[40:])
    last = _unique(["Smith", "Johnson", "Brown", "Garcia", "Martinez"] + MORE_LAST_NAMES[:20] + LAST_NAMES + MORE_LAST_NAMES[20:])
    for name in first + last:
        # COPY's text format and our tuples assume these never occur in names.
        assert not any(ch in name for ch in "\t\n\r\\"), name
    vocab = _Vocabulary(
        first=first, first_cw=_zipf(len(first), 0.5), last=last, last_cw=_zipf(len(last), 0.5),
        vehicles=_unique(VEHICLES + MORE_VEHICLES), colours=COLOURS + MORE_COLOURS,  # type: ignore[arg-type]
    )
    vocab.email_first = {n: _email_part(n) for n in first}
    vocab.email_last = {n: _email_part(n) for n in last}
    return vocab


# --- row generation -----------------------------------------------------------

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
class _Batch:
    rows: dict[str, list[tuple]]

    def count(self, table: str) -> int:
        return len(self.rows[table])


@dataclass
class _Ids:
    """The next free id of each table (we allocate ids ourselves)."""

    next: dict[str, int]


class _Generator:
    """Builds the rows of one batch. Pure Python and deterministic for a given seed."""

    def __init__(self, plans: dict[str, tuple[int, int]], seed: int, ts_suffix: str, existing_plates: set[str],
                 plate_counter: int) -> None:
        self.vocab = _vocabulary()
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
        self.region_cw = _cumulative(w for _, w in PLATE_REGIONS)
        self.status_cw = _cumulative(w for _, w in STATUS_WEIGHTS)

    def _next_plate(self, region: str) -> tuple[str, str]:
        while True:
            k = (self.plate_counter * _PLATE_MULT + _PLATE_SHIFT) % _PLATE_SPACE
            self.plate_counter += 1
            plate = _plate_text(k, region)
            norm = _plate_normalized(plate)
            # Unique across regions too: plate lookups by camera read do not know the region.
            if norm not in self.existing_plates:
                return plate, norm

    def _timestamp(self, rng: random.Random, max_days: int) -> str:
        r = rng.random
        day = self.ts_days[int(r() * max_days)]
        secs = int(r() * 86400)
        return f"{day} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d}.{int(r() * 1e6):06d}{self.ts_suffix}"

    def customers(self, ids: _Ids, n: int) -> _Batch:
        v = self.vocab
        rng = random.Random(f"{self.seed}:{ids.next['customer']}")
        r = rng.random
        first_names = rng.choices(v.first, cum_weights=v.first_cw, k=n)
        last_names = rng.choices(v.last, cum_weights=v.last_cw, k=n)
        plan_items = list(self.plans.values())
        plan_weights = _cumulative([0.40, 0.25, 0.22, 0.13][: len(plan_items)] + [0.05] * max(0, len(plan_items) - 4))
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
            search_first, search_last = _name_keys(first, last)
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
                local = f"{email_first[first]}.{email_last[last] if '-' not in last else _email_part(last)}{cid % 100000}"
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
        return _Batch({"customer": cust, "vehicle": veh, "membership": mem, "membership_vehicle": mv,
                       "payment_method": pm, "legacy_member": [], "legacy_member_plate": []})

    def legacy(self, ids: _Ids, n: int, plan_ids: dict[str, int]) -> _Batch:
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
            email = f"{v.email_first[first]}.{_email_part(last)}{lid % 100000}@example.com" if r() < 0.7 else None
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
        return _Batch({"customer": [], "vehicle": [], "membership": [], "membership_vehicle": [],
                       "payment_method": [], "legacy_member": lm, "legacy_member_plate": lmp})


# --- loaders ------------------------------------------------------------------

_DONE = object()


def _pipelined(batches: Iterable[_Batch], prepare: Callable[[_Batch], object] = lambda b: b) -> Iterator[object]:
    """Build (and prepare) the next batch in a thread while the database stores this one.

    The database engine (SQLite's C code, the PostgreSQL server) runs without the GIL,
    so on two cores generation and storage overlap.
    """
    q: queue.Queue[object] = queue.Queue(maxsize=2)
    stop = threading.Event()

    def produce() -> None:
        try:
            for batch in batches:
                item = prepare(batch)
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put(_DONE)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            q.put(exc)

    worker = threading.Thread(target=produce, name="bulk-seed-producer", daemon=True)
    worker.start()
    try:
        while True:
            item = q.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        worker.join()


def _sqlite_load(db: Database, make_batches: Callable[[_Ids], Iterable[_Batch]], progress: Callable[[str], None]) -> None:
    """One write transaction through the raw sqlite3 connection: all or nothing."""
    raw = db.engine.raw_connection()
    try:
        con = raw.driver_connection
        cur = con.cursor()
        cur.execute("PRAGMA foreign_keys=OFF")  # our ids are consistent by construction (checked in tests)
        cur.execute("PRAGMA synchronous=OFF")
        cur.execute("PRAGMA cache_size=-262144")  # 256 MiB
        cur.execute("PRAGMA temp_store=MEMORY")
        try:
            # The write lock is held from here to COMMIT, so the ids we allocate stay ours.
            cur.execute("BEGIN IMMEDIATE")
            index_sql = cur.execute(
                "SELECT name, sql FROM sqlite_master WHERE type='index' AND sql IS NOT NULL AND tbl_name IN "
                f"({','.join('?' * len(TABLES))})",
                tuple(TABLES),
            ).fetchall()
            # Rebuilding secondary indexes once is several times faster than updating them row by row.
            for name, _ in index_sql:
                cur.execute(f'DROP INDEX "{name}"')
            ids = _Ids({t: cur.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {t}").fetchone()[0] for t in ID_TABLES})
            for batch in _pipelined(make_batches(ids)):
                for table, rows in batch.rows.items():  # type: ignore[attr-defined]
                    if rows:
                        cols = TABLES[table]
                        cur.executemany(
                            f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})", rows
                        )
            progress("building indexes")
            for _, sql in index_sql:
                cur.execute(sql)
            cur.execute("COMMIT")
        except BaseException:
            if con.in_transaction:
                cur.execute("ROLLBACK")
            raise
        finally:
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA cache_size=-2000")
            cur.execute("PRAGMA temp_store=DEFAULT")
            cur.execute("PRAGMA foreign_keys=ON")
        progress("analyzing")
        cur.execute("ANALYZE")
        cur.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        cur.close()
    finally:
        raw.close()


def _copy_line(row: tuple) -> str:
    return "\t".join(["\\N" if value is None else str(value) for value in row])


def _copy_text(batch: _Batch) -> dict[str, str]:
    return {table: "\n".join(map(_copy_line, rows)) + "\n" for table, rows in batch.rows.items() if rows}


def _postgres_load(db: Database, make_batches: Callable[[_Ids], Iterable[_Batch]], counts: dict[str, int],
                   progress: Callable[[str], None]) -> None:
    """One transaction: drop secondary indexes and foreign keys, COPY, rebuild them. All or nothing."""
    raw = db.engine.raw_connection()
    con = raw.driver_connection
    try:
        tables = list(TABLES)
        with con.cursor() as cur:
            # Ids are reserved from the sequences first (setval is not transactional), so
            # concurrent inserts by other sessions never collide with ours.
            ids = _Ids({})
            reserved: dict[str, tuple[str, int]] = {}
            for table in ID_TABLES:
                seq = cur.execute("SELECT pg_get_serial_sequence(%s, 'id')", (table,)).fetchone()[0]
                start = cur.execute(
                    f"SELECT greatest((SELECT coalesce(max(id), 0) FROM {table}), "
                    f"(SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM {seq})) + 1"
                ).fetchone()[0]
                end = start + counts[table] - 1
                if counts[table]:
                    cur.execute("SELECT setval(%s, %s)", (seq, end))
                reserved[table] = (seq, end)
                ids.next[table] = start
            con.commit()
            cur.execute("SET LOCAL maintenance_work_mem = '256MB'")
            indexes = cur.execute(
                "SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "WHERE i.indrelid = ANY(%s::regclass[]) AND NOT i.indisprimary "
                "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                (tables,),
            ).fetchall()
            fkeys = cur.execute(
                "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE contype = 'f' AND conrelid = ANY(%s::regclass[])",
                (tables,),
            ).fetchall()
            for table, name, _ in fkeys:
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for name, _ in indexes:
                cur.execute(f"DROP INDEX {name}")
            for prepared in _pipelined(make_batches(ids), _copy_text):
                for table, data in prepared.items():  # type: ignore[attr-defined]
                    with cur.copy(f"COPY {table} ({', '.join(TABLES[table])}) FROM STDIN") as copy:
                        copy.write(data)
            progress("building indexes and checking foreign keys")
            for _, sql in indexes:
                cur.execute(sql)
            for table, name, definition in fkeys:
                cur.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            con.commit()
            # Give back the unused part of each reserved id block, unless someone drew after it.
            for table, (seq, end) in reserved.items():
                if not counts[table]:
                    continue
                cur.execute(
                    f"SELECT setval(%s, greatest((SELECT coalesce(max(id), 1) FROM {table}), 1)) "
                    f"WHERE (SELECT last_value FROM {seq}) = %s",
                    (seq, end),
                )
            con.commit()
            progress("analyzing")
            for table in tables:
                cur.execute(f"ANALYZE {table}")
            con.commit()
    except BaseException:
        con.rollback()
        raise
    finally:
        raw.close()


# --- entry point ----------------------------------------------------------------


def bulk_seed(
    db: Database,
    customers: int,
    legacy: int = 0,
    seed: int = 2026,
    batch_size: int = BATCH_CUSTOMERS,
    progress: Callable[[str], None] | None = None,
) -> BulkSeedResult:
    """Append `customers` customers (with vehicles, cards, memberships) and `legacy` legacy members."""
    started = time.perf_counter()
    say = progress or (lambda msg: log.info("bulk seed: %s", msg))
    with db.write() as s:
        plans = ensure_reference_data(s)
        plan_info = {code: (plan.id, plan.max_vehicles) for code, plan in sorted(plans.items(), key=lambda kv: kv[1].tier)}
        plan_ids = {code: plan.id for code, plan in plans.items()}
        existing_plates = set(s.execute(text("SELECT plate_normalized FROM vehicle")).scalars())
        existing_plates.update(s.execute(text("SELECT plate_normalized FROM legacy_member_plate")).scalars())
        plate_counter = s.execute(text("SELECT count(*) FROM vehicle")).scalar_one() + s.execute(
            text("SELECT count(*) FROM legacy_member_plate")).scalar_one()
    gen = _Generator(plan_info, seed, "" if db.is_sqlite else "+00", existing_plates, plate_counter)  # type: ignore[arg-type]
    totals = {t: 0 for t in TABLES}
    first_id: list[int] = []

    def batches(ids: _Ids) -> Iterable[_Batch]:
        first_id.append(ids.next["customer"])
        done = 0
        while done < customers:
            n = min(batch_size, customers - done)
            batch = gen.customers(ids, n)
            for t in TABLES:
                totals[t] += batch.count(t)
            yield batch
            done += n
            say(f"{done:,}/{customers:,} customers ({time.perf_counter() - started:.1f} s)")
        done = 0
        while done < legacy:
            n = min(batch_size, legacy - done)
            batch = gen.legacy(ids, n, plan_ids)
            for t in TABLES:
                totals[t] += batch.count(t)
            yield batch
            done += n

    if db.is_sqlite:
        _sqlite_load(db, batches, say)
    else:
        # Upper bounds for the id blocks: 2 vehicles, 1 card, 1 membership per customer at most.
        counts = {"customer": customers, "vehicle": 2 * customers + legacy, "membership": customers,
                  "payment_method": customers, "legacy_member": legacy, "legacy_member_plate": legacy}
        _postgres_load(db, batches, counts, say)
    result = BulkSeedResult(
        customers=totals["customer"], vehicles=totals["vehicle"], memberships=totals["membership"],
        legacy=totals["legacy_member"], payment_methods=totals["payment_method"],
        membership_vehicles=totals["membership_vehicle"], seconds=time.perf_counter() - started,
        first_customer_id=first_id[0] if first_id and customers else None,
        last_customer_id=first_id[0] + customers - 1 if first_id and customers else None,
    )
    with db.write() as s:
        audit.record(s, Actor.system("bulk-seed"), "demo.bulk_seeded", "site", None,
                     after={"customers": result.customers, "vehicles": result.vehicles,
                            "memberships": result.memberships, "legacy": result.legacy})
    return result
