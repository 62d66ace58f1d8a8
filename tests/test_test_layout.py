"""The suite's own layout (issue 16 item 6): what tests share lives in tests/helpers/ or a conftest plugin,
so no module under tests/ imports a test module or a conftest (pytest loads those itself, and a test file
imported by another runs its module-level code twice and couples the two)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _forbidden(module: str) -> bool:
    """A test module (`test_*`) or a conftest, anywhere in a dotted path."""
    return any(part.startswith("test_") or part == "conftest" for part in module.split("."))


def _imports_of(path: Path) -> list[tuple[int, str]]:
    """Every module this file imports (`from . import x` counts as `.x`), with its line."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = "." * node.level + (node.module or "")
            found.append((node.lineno, base))
            if node.module is None:  # `from . import test_x`
                found += [(node.lineno, f"{base}{alias.name}") for alias in node.names]
    return sorted(found)


def layout_violations(root: Path) -> list[str]:
    out = []
    for path in sorted(root.rglob("*.py")):
        for line, module in _imports_of(path):
            local = module.startswith(".") or module == "tests" or module.startswith("tests.")
            if local and _forbidden(module):
                out.append(f"{path.relative_to(root)}:{line} imports {module}")
    return out


def test_no_module_under_tests_imports_a_test_module_or_a_conftest() -> None:
    assert layout_violations(TESTS) == [], "move what they share into tests/helpers/ (or a conftest plugin)"


def test_the_check_sees_each_kind_of_forbidden_import(tmp_path: Path) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "test_a.py").write_text(
        "from tests.sale.conftest import lanes\n"
        "import tests.test_cli\n"
        "def f():\n    from tests.customers.test_record_ui import open_record\n"
        "from .conftest import X\n"
        "from . import test_b\n"
        "from tests.helpers.ui import wait_until\n"
        "from tests.payments.stripe_events_server import FIXTURES\n"
    )
    assert [v.split(" imports ")[1] for v in layout_violations(tmp_path)] == [
        "tests.sale.conftest", "tests.test_cli", "tests.customers.test_record_ui", ".conftest", ".test_b"]
