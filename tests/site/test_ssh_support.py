"""Remote support end to end: a real OpenSSH server, `ssh -tt`, the ForceCommand `clarity-tui support`.

sshd (Debian's openssh-server; .ci/run installs it when missing) runs on 127.0.0.1 on a free port
from a temp directory with its own host key, authorized_keys and config. The client runs under a
pseudo-terminal of 80x24; its output is fed to a terminal emulator (pyte) and the screen is read:
the lanes board must be there with TERM=xterm-256color and with TERM=linux.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pyte
import pytest
from sqlmodel import select as sql_select

from clarity_tui.cli_site import ssh_identity
from clarity_tui.services.actor import Actor
from clarity_tui.services.sessions import SessionService
from db.models import AuditLog, OperatorShift
from hardware.plate_reader import PlateEvent

REPO = Path(__file__).resolve().parents[2]
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"sshd exited: {proc.stderr.read().decode(errors='replace')}")  # type: ignore[union-attr]
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("sshd did not listen")


@pytest.fixture
def sshd(tmp_path: Path, db_url: str):
    """A private sshd whose only key runs `clarity-tui --db <test db> support`."""
    assert Path(SSHD).exists(), "OpenSSH server missing: apt-get install -y openssh-server (.ci/run does it)"
    home = tmp_path / "ssh"
    home.mkdir()
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(home / name)], check=True)
    # sshd's environment is wiped: the wrapper sets what the app needs (settings, data dir, code).
    settings = home / "settings.toml"
    settings.write_text('terminal_id = "office"\n')
    wrapper = home / "clarity-support"
    wrapper.write_text(
        "#!/bin/sh\n"
        f"export CLARITY_CONFIG='{settings}' XDG_DATA_HOME='{home / 'data'}' XDG_CONFIG_HOME='{home / 'config'}'\n"
        f"export PYTHONPATH='{REPO}'\n"
        f"exec '{sys.executable}' -m clarity_tui --db '{db_url}' support\n")
    wrapper.chmod(0o755)
    pub = (home / "client_key.pub").read_text().strip()
    (home / "authorized_keys").write_text(f'command="{wrapper}",no-port-forwarding,no-X11-forwarding,'
                                          f"no-agent-forwarding {pub}\n")
    port = _free_port()
    config = home / "sshd_config"
    config.write_text(f"""
Port {port}
ListenAddress 127.0.0.1
HostKey {home / 'host_key'}
PidFile {home / 'sshd.pid'}
AuthorizedKeysFile {home / 'authorized_keys'}
UsePAM no
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PermitTunnel no
ForceCommand {wrapper}
LogLevel VERBOSE
""")
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege-separation directory
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _wait_port(port, proc)
        yield home, port
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _run_ssh(home: Path, port: int, term: str, until: list[str], timeout: float = 60.0) -> tuple[str, int]:
    """ssh -tt under an 80x24 pty; returns the screen once every `until` text shows (after Ctrl+Q: exit code)."""
    screen = pyte.Screen(80, 24)
    stream = pyte.ByteStream(screen)
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
    argv = ["ssh", "-tt", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i", str(home / "client_key"), "-p", str(port),
            f"{user}@127.0.0.1"]
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of 80x24 with this TERM
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        os.execvpe("ssh", argv, {**os.environ, "TERM": term})
    text = ""
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                if not data:
                    break
                stream.feed(data)
                text = "\n".join(screen.display)
                if all(u in text for u in until):
                    break
        shown = text
        assert all(u in shown for u in until), f"never showed {until} with TERM={term}:\n{shown}"
        os.write(fd, b"\x11")  # Ctrl+Q: quit the app, which ends the session
        deadline = time.monotonic() + 20
        status = None
        while time.monotonic() < deadline:
            try:
                ready, _, _ = select.select([fd], [], [], 0.2)
                if ready:
                    os.read(fd, 65536)
            except OSError:
                pass
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        assert status is not None and done, "ssh did not exit after Ctrl+Q"
        return shown, os.waitstatus_to_exitcode(status)
    finally:
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(fd)


@pytest.mark.parametrize(("db_url", "term"), [("sqlite", "xterm-256color"), ("postgres", "linux")], indirect=["db_url"])
def test_support_over_ssh_shows_the_live_board_at_80x24(sshd, demo_db, term) -> None:  # noqa: ANN001
    home, port = sshd
    SessionService(demo_db).record_plate_read(PlateEvent(plate="SSH-001", lane="Lane 2", make="Kia", model="Rio"),
                                              Actor.system("camera"))
    shown, code = _run_ssh(home, port, term, ["Pre-Gate", "Lane 1", "Lane 2", "Lane 3", "SSH-001", "Support session"])
    assert code == 0
    lines = shown.splitlines()
    assert len(lines) == 24 and all(len(line) == 80 for line in lines)
    if term == "linux":
        assert "╭" not in shown  # the Linux console gets ASCII boxes, not rounded corners
    # The SSH user is the actor: a support shift at terminal ssh:127.0.0.1, started and ended.
    user = os.environ.get("USER") or os.environ.get("LOGNAME") or "root"
    with demo_db.read() as s:
        rows = s.exec(sql_select(AuditLog).where(AuditLog.action.like("operator.%")).order_by(AuditLog.id)).all()
        shift = s.exec(sql_select(OperatorShift)).one()
    assert [(r.action, r.actor, r.terminal) for r in rows if r.action != "operator.created"] == [
        ("operator.sign_in", f"{user} (ssh)", "ssh:127.0.0.1"),
        ("operator.sign_out", f"{user} (ssh)", "ssh:127.0.0.1"),
    ]
    assert rows[-1].after == {"reason": "exit", "terminal": "ssh:127.0.0.1"}
    assert shift.signout_reason == "exit" and shift.terminal == "ssh:127.0.0.1"


def test_ssh_identity_is_the_ssh_user_and_client_address() -> None:
    env = {"USER": "maria", "SSH_CONNECTION": "10.1.2.3 50022 10.0.0.5 22"}
    assert ssh_identity(env) == ("maria", "ssh:10.1.2.3")
    assert ssh_identity({"LOGNAME": "tech"}) == ("tech", "support:local")
