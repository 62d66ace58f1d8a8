"""The few settings needed to paint the first board, resolved without pydantic.

Start-up time matters at a lane terminal: pydantic-settings and SQLAlchemy
cost more than Textual itself, so the app paints its first board from these
values and loads the full Settings (config.load_settings) right after.
Precedence is the same as Settings: explicit (CLI) > environment > TOML > default;
tests/test_bootconfig.py keeps the two in agreement.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class BootConfig:
    database_url: str
    terminal_id: str
    simulate: bool
    show_clock: bool
    config_file: Path | None


def _toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return {}  # the full Settings load reports the problem properly


def resolve_boot_config(config_file: str | Path | None, database_url: str | None, simulate: bool | None) -> BootConfig:
    from clarity_tui.paths import data_dir, default_config_file

    path = Path(config_file or os.environ.get("CLARITY_CONFIG") or default_config_file())
    file = _toml(path) if path.exists() else {}
    env = os.environ

    def pick(explicit: Any, env_name: str, file_value: Any, default: Any) -> Any:
        if explicit is not None:
            return explicit
        if env_name in env:
            return env[env_name]
        if file_value is not None:
            return file_value
        return default

    sim = pick(simulate or None, "CLARITY_SIMULATE", file.get("simulate"), False)
    sim = sim if isinstance(sim, bool) else str(sim).lower() in _TRUE
    url = pick(database_url, "CLARITY_DATABASE_URL", file.get("database_url"), None)
    if not url:
        url = f"sqlite:///{data_dir() / ('simulator.db' if sim else 'clarity.db')}"
    clock = pick(None, "CLARITY_UI__SHOW_CLOCK", file.get("ui", {}).get("show_clock"), True)
    clock = clock if isinstance(clock, bool) else str(clock).lower() in _TRUE
    terminal = pick(None, "CLARITY_TERMINAL_ID", file.get("terminal_id"), None) or os.uname().nodename
    return BootConfig(url, str(terminal), sim, clock, path if path.exists() else None)
