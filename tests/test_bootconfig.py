"""The fast boot config agrees with the full Settings in every precedence case."""

from __future__ import annotations

from pathlib import Path

import pytest

from clarity_tui.bootconfig import resolve_boot_config
from clarity_tui.config import load_settings


def _both(config_file: Path | None, db: str | None = None, simulate: bool | None = None):  # noqa: ANN202
    boot = resolve_boot_config(config_file, db, simulate)
    settings = load_settings(config_file, database_url=db, simulate=simulate)
    return boot, settings


CASES = {
    "defaults": ("", {}, None, None),
    "file only": ('database_url = "sqlite:////tmp/from-file.db"\nterminal_id = "lane-7"\n[ui]\nshow_clock = false\n', {}, None, None),
    "env beats file": ('database_url = "sqlite:////tmp/from-file.db"\nterminal_id = "lane-7"\n',
                       {"CLARITY_DATABASE_URL": "sqlite:////tmp/from-env.db", "CLARITY_TERMINAL_ID": "env-term",
                        "CLARITY_UI__SHOW_CLOCK": "false"}, None, None),
    "cli beats env": ("", {"CLARITY_DATABASE_URL": "sqlite:////tmp/from-env.db"}, "sqlite:////tmp/from-cli.db", None),
    "simulate picks the simulator database": ("", {}, None, True),
    "simulate from env": ("", {"CLARITY_SIMULATE": "true"}, None, None),
}


@pytest.mark.parametrize("case", CASES)
def test_boot_config_matches_settings(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, env, db, simulate = CASES[case]
    config = tmp_path / "clarity.toml"
    config.write_text(text)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    boot, settings = _both(config, db, simulate)
    assert boot.database_url == settings.resolved_database_url()
    assert boot.terminal_id == settings.terminal_id
    assert boot.simulate == settings.simulate
    assert boot.show_clock == settings.ui.show_clock
