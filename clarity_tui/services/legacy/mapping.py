"""The mapping of a legacy POS export: which header names each field may have, plan names, date order.

    mapping = load_mapping("sitewatch")     # a shipped mapping, or a path to a mapping TOML file

Every problem with a mapping file (missing, unreadable, not UTF-8, not TOML, a value of the
wrong type, an unknown encoding...) is a LegacyImportError whose str() is one line saying
what to fix; never a traceback.
"""

from __future__ import annotations

import codecs
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from clarity_tui.errors import UserFacingError
from clarity_tui.services.legacy.parsers import LIMITS, has_control

FIELDS = ("legacy_id", "first_name", "last_name", "full_name", "phone", "email", "plates", "vehicle", "plan",
          "status", "next_bill", "joined")
DATE_ORDERS = ("MDY", "DMY", "YMD")
BUILTIN_MAPPINGS = ("generic", "sitewatch")


class LegacyImportError(UserFacingError):
    """A problem with the whole file or mapping (not one row); str() says what to fix."""


@dataclass(frozen=True)
class Mapping:
    name: str
    source_system: str
    columns: dict[str, tuple[str, ...]]
    plans: dict[str, str] = field(default_factory=dict)  # casefolded legacy plan name -> plan code
    statuses: dict[str, str] = field(default_factory=dict)  # casefolded legacy status -> our word
    date_order: str = "MDY"
    name_order: str = "first_last"  # a full-name column without a comma: "Jane Doe" (or "Doe Jane")
    encoding: str = "utf-8-sig"
    delimiter: str = ","


def load_mapping(name_or_path: str | Path | None = None) -> Mapping:
    """A shipped mapping by name ("generic", "sitewatch"), or a mapping TOML file."""
    target = str(name_or_path or "generic")
    if target in BUILTIN_MAPPINGS:
        text = resources.files("clarity_tui").joinpath("data", "legacy_mappings", f"{target}.toml").read_text("utf-8")
        origin = f"built-in mapping '{target}'"
    else:
        path = Path(target)
        if not path.is_file():
            raise LegacyImportError(f"Mapping file {path} does not exist: give a TOML mapping file, or one of "
                                    f"{', '.join(BUILTIN_MAPPINGS)}.")
        origin = f"mapping file {path}"
        try:
            text = path.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise LegacyImportError(f"The {origin} is not UTF-8 text (byte {exc.start}): save it as UTF-8.") from None
        except OSError as exc:
            raise LegacyImportError(f"The {origin} cannot be read ({exc.strerror or exc}).") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise LegacyImportError(f"The {origin} is not valid TOML: {exc}.") from None
    return parse_mapping(data, origin)


def _table(data: dict[str, Any], key: str, origin: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise LegacyImportError(f"The {origin} has {key} = {_short(value)}: [{key}] must be a table of names.")
    return value


def _text(value: Any, what: str, origin: str, *, limit: int | None = None, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise LegacyImportError(f"The {origin} has {what} = {_short(value)}: it must be text in quotes.")
    if (not value.strip() and not allow_empty) or has_control(value):
        raise LegacyImportError(f"The {origin} has {what} = {_short(value)}: give a name (printable text).")
    if limit is not None and len(value) > limit:
        raise LegacyImportError(f"The {origin} has a {what} of {len(value)} characters: the most is {limit}.")
    return value


def _short(value: Any) -> str:
    text = ascii(value)
    return text if len(text) <= 40 else text[:37] + "..."


def parse_mapping(data: dict[str, Any], origin: str = "mapping") -> Mapping:
    head = _table(data, "mapping", origin)
    cols = _table(data, "columns", origin)
    if not cols:
        raise LegacyImportError(f"The {origin} has no [columns] table: it must name the column of each field "
                                f"({', '.join(FIELDS)}), legacy_id at least.")
    unknown = sorted(set(cols) - set(FIELDS))
    if unknown:
        raise LegacyImportError(f"The {origin} names unknown fields {', '.join(unknown)}: use {', '.join(FIELDS)}.")
    columns: dict[str, tuple[str, ...]] = {}
    for fld, names in cols.items():
        names = names if isinstance(names, list) else [names]
        if not names:
            raise LegacyImportError(f"The {origin} has an empty list for [columns] {fld}: give its column names.")
        columns[fld] = tuple(_text(n, f"[columns] {fld}", origin) for n in names)
    if "legacy_id" not in columns:
        raise LegacyImportError(f"The {origin} has no [columns] legacy_id: every row needs the legacy member id.")
    order = _text(head.get("date_order", "MDY"), "date_order", origin).upper()
    if order not in DATE_ORDERS:
        raise LegacyImportError(f"The {origin} has date_order '{order}': use one of {', '.join(DATE_ORDERS)}.")
    name_order = _text(head.get("name_order", "first_last"), "name_order", origin)
    if name_order not in ("last_first", "first_last"):
        raise LegacyImportError(f"The {origin} has name_order '{name_order}': use last_first or first_last.")
    encoding = _text(head.get("encoding", "utf-8-sig"), "encoding", origin)
    try:
        codecs.getincrementaldecoder(encoding)  # an unknown name raises LookupError
        b"a".decode(encoding)  # as does a codec that is not a text encoding (rot13, base64)
    except UnicodeError:
        pass  # a real text encoding that merely cannot decode one byte alone (utf-16)
    except LookupError:
        raise LegacyImportError(f"The {origin} has encoding '{encoding}', which Python does not know as a text "
                                "encoding: use utf-8-sig, cp1252 or latin-1.") from None
    delimiter = _text(head.get("delimiter", ","), "delimiter", origin, allow_empty=True)
    if len(delimiter) != 1 or delimiter in "\"\r\n":
        raise LegacyImportError(f"The {origin} has delimiter {_short(delimiter)}: use one character such as "
                                "',' ';' or a tab ('\\t').")
    plans = {_text(k, "a [plans] name", origin).casefold().strip(): _text(v, f"[plans] '{k}'", origin).upper()
             for k, v in _table(data, "plans", origin).items()}
    statuses = {_text(k, "a [statuses] name", origin).casefold().strip():
                _text(v, f"[statuses] '{k}'", origin, limit=LIMITS["status"])
                for k, v in _table(data, "statuses", origin).items()}
    return Mapping(
        name=_text(head.get("name", origin), "name", origin),
        source_system=_text(head.get("source_system", "legacy"), "source_system", origin,
                            limit=LIMITS["source_system"]),
        columns=columns, plans=plans, statuses=statuses, date_order=order, name_order=name_order,
        encoding=encoding, delimiter=delimiter,
    )


__all__ = ["BUILTIN_MAPPINGS", "DATE_ORDERS", "FIELDS", "LegacyImportError", "Mapping", "load_mapping",
           "parse_mapping"]
