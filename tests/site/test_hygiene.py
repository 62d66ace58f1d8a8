"""The site services run headless (CLI, SSH) without Textual; the PIN pad loads without the ORM,
so it can appear with the first paint."""

from __future__ import annotations

from pathlib import Path
from tests.helpers.imports import loaded_modules

ROOT = Path(__file__).resolve().parents[2]


def test_site_services_and_cli_never_import_textual() -> None:
    modules = ["clarity_tui.services.operators", "clarity_tui.services.reports", "clarity_tui.services.audit_query",
               "clarity_tui.cli_site"]
    assert loaded_modules(modules, ("textual",)) == []


def test_the_pin_pad_and_site_screens_load_without_the_orm() -> None:
    modules = ["clarity_tui.screens.signin", "clarity_tui.screens.shift", "clarity_tui.screens.audit",
               "clarity_tui.screens.report"]
    assert loaded_modules(modules, ("sqlalchemy", "sqlmodel", "pydantic", "alembic")) == []
