"""The bulk loader's vocabulary: names, places, vehicles, cards and plates, weighted like real data.

Customer search runs on this data, so names are varied (accents, apostrophes, hyphens, thousands of distinct
last names, a Zipf-like distribution). Mostly data, hence the length.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache, lru_cache
from typing import TypeVar

from clarity_tui.seeding.demo import COLOURS, FIRST_NAMES, LAST_NAMES, VEHICLES
from clarity_tui.services.identity import customer_search_keys

T = TypeVar("T")

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
PLATE_SPACE = 23**3 * 10**4
PLATE_MULT = 48_271_043  # coprime with the plate space (no factor 2, 5 or 23)
PLATE_SHIFT = 7_919_117
PLATE_REGIONS = [("US-TX", 0.86), ("US-OK", 0.05), ("US-CA", 0.04), ("US-NM", 0.03), ("US-LA", 0.02)]


def plate_text(k: int, region: str) -> str:
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


def plate_normalized(plate: str) -> str:
    return plate.replace("-", "").replace(" ", "")



@cache
def name_keys(first: str, last: str) -> tuple[str, str]:
    keys = customer_search_keys(first, last, None, None)
    return keys["search_first"] or "", keys["search_last"] or ""


def email_part(name: str) -> str:
    from clarity_tui.services.identity import fold

    return fold(name).replace(" ", "") or "customer"


def cumulative(weights: Iterable[float]) -> list[float]:
    out, total = [], 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _zipf(n: int, s: float) -> list[float]:
    return cumulative(1.0 / (i + 1) ** s for i in range(n))


def _unique(seq: Iterable[T]) -> list[T]:
    return list(dict.fromkeys(seq))


@dataclass
class Vocabulary:
    first: list[str]
    first_cw: list[float]
    last: list[str]
    last_cw: list[float]
    vehicles: list[tuple[str, str]]
    colours: list[str]
    email_first: dict[str, str] = field(default_factory=dict)
    email_last: dict[str, str] = field(default_factory=dict)


@lru_cache(maxsize=1)
def vocabulary() -> Vocabulary:
    first = _unique(MORE_FIRST_NAMES[:40] + FIRST_NAMES + MORE_FIRST_NAMES[40:])
    last = _unique(["Smith", "Johnson", "Brown", "Garcia", "Martinez"] + MORE_LAST_NAMES[:20] + LAST_NAMES + MORE_LAST_NAMES[20:])
    for name in first + last:
        # COPY's text format and our tuples assume these never occur in names.
        assert not any(ch in name for ch in "\t\n\r\\"), name
    vocab = Vocabulary(
        first=first, first_cw=_zipf(len(first), 0.5), last=last, last_cw=_zipf(len(last), 0.5),
        vehicles=_unique(VEHICLES + MORE_VEHICLES), colours=COLOURS + MORE_COLOURS,
    )
    vocab.email_first = {n: email_part(n) for n in first}
    vocab.email_last = {n: email_part(n) for n in last}
    return vocab

