"""The legacy POS's members: the column mapping, the row parsers, the importer, and the export of who migrated.

    mapping = load_mapping("sitewatch")            # or a path to a mapping TOML
    result = LegacyImporter(db, mapping).run(path) # ImportResult: counts + rejected rows
"""

from clarity_tui.services.legacy.export import EXPORT_COLUMNS, export_migrated, write_export_csv
from clarity_tui.services.legacy.importer import BATCH_SIZE, ImportResult, LegacyImporter
from clarity_tui.services.legacy.mapping import (
    BUILTIN_MAPPINGS,
    DATE_ORDERS,
    FIELDS,
    LegacyImportError,
    Mapping,
    load_mapping,
    parse_mapping,
)
from clarity_tui.services.legacy.parsers import (
    COMPARED,
    LIMITS,
    MemberRow,
    Rejected,
    RowParser,
    RowProblem,
    import_email,
    import_phone,
    parse_date,
    split_plates,
)

__all__ = [
    "BATCH_SIZE", "BUILTIN_MAPPINGS", "COMPARED", "DATE_ORDERS", "EXPORT_COLUMNS", "FIELDS", "LIMITS", "ImportResult",
    "LegacyImportError", "LegacyImporter", "Mapping", "MemberRow", "Rejected", "RowParser", "RowProblem",
    "export_migrated", "import_email", "import_phone", "load_mapping", "parse_date", "parse_mapping", "split_plates",
    "write_export_csv",
]
