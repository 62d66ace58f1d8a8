"""Every command example in README.md works as written after `./dev demo` (issue 14, item 5).

The README's commands are collected from its code blocks and inline code: lines that start with `./dev` or
`clarity-tui` (after optional VAR=value settings). Each one is either
- a usage line (brackets, `a|b` alternatives, NAME/QUERY placeholders): its command must be run by a concrete
  example somewhere in the README, or be excluded below with the reason;
- a concrete example: run against the demo's database in a temporary XDG data directory,
  and it must exit 0 with some output (a `> file` redirect counts as output);
- or excluded below, with the reason (it starts the TUI, runs the test suite, waits for devices ...).
Nothing is skipped silently: a README command that is in none of these fails the test.

`./dev` runs the repository's own script (without its first-use install step, which the test run has done);
`clarity-tui` runs with CLARITY_SIMULATE=1, as the README's Command line section says an installed copy
reads the demo's database. The seed and one command of each form run as typed, in a shell and a fresh
interpreter; the rest run the same command line in a forked child (AS_TYPED below says why). The demo site is seeded first, by the README's example `./dev simulate --headless`,
which seeds the database `./dev demo` opens (checked: both resolve to the same file); then the others run in
README order.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

from tests.helpers import forked

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
COMMAND = re.compile(r"^((?:[A-Z][A-Z0-9_]*=\S+\s+)*)(clarity-tui|\./dev)(\s.*)?$")
PLACEHOLDER = re.compile(r"\[|\||<[a-z]+>|\.\.\.|\b[A-Z]{2,}\b(?!=)|\bN\b|\bS\b")

# Commands that are not run, with the reason. Keys are the command as written (comment stripped).
EXCLUDED = {
    "./dev demo": "starts the TUI; the test seeds the same database with `./dev simulate --headless` instead",
    "./dev": "with no command it is ./dev demo (the TUI)",
    "clarity-tui": "starts the TUI",
    "clarity-tui --simulate": "starts the TUI (the demo)",
    "clarity-tui payments sync": "runs until stopped (a sync every billing.sync_every_seconds); `payments sync --once` runs",
    "clarity-tui support": "starts the TUI (the SSH ForceCommand); tests/site/test_ssh_support.py drives it",
    "./dev test": "runs the whole test suite",
    "./dev lint": "runs ruff, mypy and lint-imports over the whole tree: CI's first step (.ci/run) runs it",
    "./dev test --both-databases": "runs the whole test suite",
    "./dev test -k board": "runs tests",
    "./dev test tests/payments -x": "runs tests",
    "./dev test tests/test_snapshots.py --snapshot-update": "rewrites the snapshots",
    "./dev bench": "benchmarks: minutes, on databases of their own",
    "./dev bench load": "benchmarks: minutes, on databases of their own",
    "./dev bench startup latency seed --quick": "benchmarks, on databases of their own",
    "clarity-tui hardware listen-plates --port 8089": "a server that runs until it is stopped",
    "clarity-tui hardware test signature-pad --port /dev/ttyUSB0": "needs a real Topaz pad on /dev/ttyUSB0",
    'clarity-tui operators add "Pat Lee" --role manager': "prompts for PINs (tests/site/test_operators_cli.py)",
    "clarity-tui legacy export-migrated --since 2026-11-01 > migrated.csv": None,  # run (see below), not excluded
}
EXCLUDED = {k: v for k, v in EXCLUDED.items() if v is not None}
# Usage lines whose command no README example runs, with the reason.
USAGE_NOT_RUN = {
    "clarity-tui": "opens the lanes board (the TUI)",
    "legacy import": "needs the old POS's export file and a mapping",
    "hardware listen-plates": "a server that runs until it is stopped",
    "payments refund": "needs a paid order and a manager's PIN at the prompt (tests/payments cover it)",
    "support": "starts the TUI (the SSH ForceCommand)",
    "./dev <command>": "the general form of every ./dev example",
    "CLARITY_SIMULATE=0 ./dev ...": "the general form: any command, on another database",
}


def readme_commands() -> list[str]:
    text = README.read_text(encoding="utf-8")
    found: list[str] = []
    for block in re.findall(r"```[^\n]*\n(.*?)```", text, re.S):
        for line in block.splitlines():
            # The command, without a trailing "# comment" or a usage line's description (after 2+ spaces).
            line = re.split(r"\s{2,}|\s#\s", line.strip())[0].strip()
            if COMMAND.match(line):
                found.append(line)
    prose = re.sub(r"```.*?```", "", text, flags=re.S)
    found += [span.strip() for span in re.findall(r"`([^`\n]+)`", prose) if COMMAND.match(span.strip())]
    return list(dict.fromkeys(found))  # README order, each once


def is_usage(command: str) -> bool:
    body = re.sub(r'"[^"]*"', '""', COMMAND.match(command).group(3) or "")  # type: ignore[union-attr]
    return bool(PLACEHOLDER.search(body)) or command.endswith("<command>")


def usage_path(command: str) -> str:
    """'clarity-tui customers search QUERY [--json]' -> 'customers search'; 'clarity-tui [--db URL]' -> ''."""
    words = []
    for word in (COMMAND.match(command).group(3) or "").split():  # type: ignore[union-attr]
        if word.startswith(("[", "-", "<")) or "|" in word or word.isupper() or word in ("N", "S"):
            break
        words.append(word)
    return " ".join(words)


def run_path(command: str) -> str:
    """The command words of a concrete example ('./dev --simulate payments sync --once' -> 'payments sync ...')."""
    words = [w for w in shlex.split(COMMAND.match(command).group(3) or "") if w != "--simulate"]  # type: ignore[union-attr]
    return " ".join(words)


def _dev_without_install(tmp: Path) -> Path:
    """The repository's ./dev from its dispatch on: the same mapping of commands, without the install step."""
    script = (REPO / "dev").read_text(encoding="utf-8")
    dispatch = script[script.index('cmd="${1:-demo}"'):]
    path = tmp / "dev"
    path.write_text(f'#!/usr/bin/env bash\nset -euo pipefail\nVENV={shlex.quote(str(REPO / ".venv"))}\n'
                    f'PY="$VENV/bin/python"\n{dispatch}', encoding="utf-8")
    path.chmod(0o755)
    return path


def test_the_readme_names_every_command_it_does_not_run() -> None:
    commands = readme_commands()
    assert len(commands) > 30
    concrete = [c for c in commands if not is_usage(c) and c not in EXCLUDED]
    run = {run_path(c) for c in concrete}
    for usage in (c for c in commands if is_usage(c)):
        path = usage_path(usage) or usage.split()[0]
        if path in USAGE_NOT_RUN or usage in USAGE_NOT_RUN:
            continue
        # 'db upgrade | db current', 'operators add|list|...': one of the alternatives is enough.
        alternatives = {path} | {usage_path("clarity-tui " + part.strip()) for part in (COMMAND.match(usage).group(3) or "").split(" | ")}  # type: ignore[union-attr]
        head = path.split()[0] if path else ""
        assert any(r.startswith(a) for r in run for a in alternatives if a) or any(r.startswith(head) for r in run if head), \
            f"no README example runs {usage!r}: add one, or list it in USAGE_NOT_RUN with the reason"


# Run as typed (a shell, the repository's ./dev, a fresh interpreter): the seed, and one of each of the two
# forms. The others run the same command line in a child forked from a warm interpreter
# (tests/helpers/forked.py): what ./dev would run, by the dispatch that `test_dev_dispatches_as_the_test_runs_it`
# reads from the script, without paying a fresh interpreter's imports 30 times.
AS_TYPED = ("./dev simulate --headless --duration 5", "./dev doctor", "clarity-tui doctor")


def forked_form(command: str) -> tuple[dict[str, str], list[str], str | None]:
    """(environment settings, clarity-tui's arguments, the file a `> file` redirects stdout to) of a command:
    `./dev X ...` is `CLARITY_SIMULATE=${CLARITY_SIMULATE:-1} clarity-tui X ...` (the script's dispatch);
    a bare `clarity-tui ...` runs with CLARITY_SIMULATE=1, as the README's Command line section says."""
    redirect = re.search(r"\s>\s*(\S+)\s*$", command)
    line = command[:redirect.start()] if redirect else command
    match = COMMAND.match(line)
    assert match is not None, command
    settings = dict(pair.split("=", 1) for pair in shlex.split(match.group(1) or ""))
    settings.setdefault("CLARITY_SIMULATE", "1")
    return settings, shlex.split(match.group(3) or ""), redirect.group(1) if redirect else None


def test_dev_dispatches_as_the_test_runs_it() -> None:
    """The mapping `forked_form` assumes is the one in ./dev: every command but demo/test/bench/lint is
    clarity-tui with that command, on the demo's database unless CLARITY_SIMULATE says otherwise."""
    script = (REPO / "dev").read_text(encoding="utf-8")
    assert 'export CLARITY_SIMULATE="${CLARITY_SIMULATE:-1}"' in script
    assert re.search(r'^\s*\*\)\s+exec "\$VENV/bin/clarity-tui" "\$cmd" "\$@" ;;$', script, re.M)
    assert re.search(r'^\s*exec "\$VENV/bin/clarity-tui" demo "\$@"', script, re.M)  # ./dev demo seed ...
    assert forked_form("CLARITY_X=1 ./dev --simulate payments status --json > out.json") == (
        {"CLARITY_X": "1", "CLARITY_SIMULATE": "1"}, ["--simulate", "payments", "status", "--json"], "out.json")
    assert forked_form('clarity-tui legacy find "TVP 3O58"') == (
        {"CLARITY_SIMULATE": "1"}, ["legacy", "find", "TVP 3O58"], None)


def test_every_readme_command_works_after_the_demo(tmp_path: Path) -> None:
    from clarity_tui.bootconfig import resolve_boot_config

    dev = _dev_without_install(tmp_path)
    env = {**os.environ, "PATH": f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}"}
    env.pop("CLARITY_SIMULATE", None)
    commands = [c for c in readme_commands() if not is_usage(c) and c not in EXCLUDED]
    assert set(AS_TYPED) <= set(commands)
    seed = AS_TYPED[0]  # the README's demo without a screen
    commands = [seed, *(c for c in commands if c != seed)]  # seeded first, then README order
    ran: dict[str, str] = {}  # command -> its output
    for command in commands:
        if command in AS_TYPED:
            shell = command if command.startswith(("./dev", "CLARITY_")) else f"CLARITY_SIMULATE=1 {command}"
            result = subprocess.run(["bash", "-c", shell], cwd=tmp_path, env=env, capture_output=True, text=True,
                                    timeout=300)
            redirected = re.search(r">\s*(\S+)\s*$", command)
            target = redirected.group(1) if redirected else None
        else:
            settings, args, target = forked_form(command)
            result = forked.run(["-m", "clarity_tui", *args], cwd=tmp_path, env={**env, **settings},
                                capture_output=True, text=True, timeout=300)
            if target:
                (tmp_path / target).write_text(result.stdout)
                result.stdout = ""
        output = result.stdout.strip() or (target and (tmp_path / target).read_text().strip())
        assert result.returncode == 0, f"{command!r} exited {result.returncode}: {result.stdout[-800:]}{result.stderr[-800:]}"
        assert output, f"{command!r} printed nothing: {result.stderr[-500:]}"
        assert "Traceback" not in result.stderr, command
        ran[command] = result.stdout
    assert dev.exists() and len(ran) >= 20
    # The database `./dev demo` opens (clarity-tui --simulate) is the one every command above used: the
    # README's `./dev doctor` (run above) names the database it opened.
    demo = resolve_boot_config(None, None, True).database_url
    assert demo.endswith("/clarity-tui/simulator.db") and Path(demo.removeprefix("sqlite:///")).exists()
    assert demo in ran["./dev doctor"]
    assert not (Path(os.environ["XDG_DATA_HOME"]) / "clarity-tui" / "clarity.db").exists()  # nothing read another db
    assert sys.executable
