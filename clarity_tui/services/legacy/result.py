"""What a legacy import did: counts, rejected rows, batches committed (the CLI prints it, the audit keeps it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from clarity_tui.services.legacy.parsers import Rejected

COUNTS = ("imported", "updated", "unchanged", "kept_migrated")


@dataclass
class ImportResult:
    source_system: str
    mapping: str
    dry_run: bool
    read: int = 0
    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_migrated: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    batches_committed: int = 0
    last_line_committed: int = 0

    @property
    def rejected_count(self) -> int:
        return len(self.rejected)

    def as_dict(self) -> dict[str, Any]:
        return {"source_system": self.source_system, "mapping": self.mapping, "dry_run": self.dry_run,
                "read": self.read, "imported": self.imported, "updated": self.updated, "unchanged": self.unchanged,
                "kept_migrated": self.kept_migrated, "rejected": self.rejected_count,
                "batches_committed": self.batches_committed,
                "rejections": [r.as_dict() for r in self.rejected]}

    def summary_line(self) -> str:
        verb = "would import" if self.dry_run else "imported"
        kept = f", {self.kept_migrated} already migrated (kept)" if self.kept_migrated else ""
        return (f"read {self.read}, {verb} {self.imported}, updated {self.updated}, unchanged {self.unchanged}"
                f"{kept}, rejected {self.rejected_count}")


@dataclass
class Counts:
    """One batch's counts."""

    imported: int = 0
    updated: int = 0
    unchanged: int = 0
    kept_migrated: int = 0

    def add(self, other: Counts) -> None:
        for k in COUNTS:
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def add_to(self, result: ImportResult) -> None:
        for k in COUNTS:
            setattr(result, k, getattr(result, k) + getattr(self, k))
