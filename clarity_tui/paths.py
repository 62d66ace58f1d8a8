"""Where Clarity keeps its files (platformdirs). Light on purpose: the first paint needs these
before pydantic is imported (clarity_tui.bootconfig), so nothing heavy belongs here."""

from __future__ import annotations

from pathlib import Path

APP_NAME = "clarity-tui"


def data_dir() -> Path:
    from platformdirs import user_data_path

    return user_data_path(APP_NAME, appauthor=False, ensure_exists=True)


def default_config_file() -> Path:
    from platformdirs import user_config_path

    return user_config_path(APP_NAME, appauthor=False) / "config.toml"
