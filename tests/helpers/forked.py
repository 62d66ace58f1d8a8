"""Child processes forked from a warm interpreter: `python -m X` for tests, without paying for the imports.

A test that races terminals or kills one mid-step needs real processes (own pid, own connections, SIGKILL,
an exit status), but most of a fresh interpreter's second is spent importing SQLAlchemy, SQLModel, psycopg
and our services, again and again: the money matrix started 162 interpreters for 146 s of CPU, 130 of them
imports. Here each test process (each xdist worker) keeps one fork server (the standard library's
`multiprocessing` "forkserver": a process with no threads that imported PRELOAD once) and every child is a
fork of it. The child then takes the test's environment, working directory and pipes, and runs the module
or script as `__main__`, exactly as `python -m X ...` would, through `runpy`; `sys.exit(n)` is its exit
status, an uncaught exception prints its traceback and exits 1, and a signal is `-signum`.

What a fork does not give: a check of what a fresh interpreter imports (tests/helpers/imports.py), or of the
start-up itself (the boot race, the README's commands); those tests keep `subprocess` and `sys.executable`.

Arguments are what follows the interpreter: ["-m", module, ...], ["-c", code, ...] or [script, ...].

    proc = popen(["-m", "tests.payments.adversary_child", url, "sell", "3"], stdin=PIPE, stdout=PIPE, text=True)
    done = run(["-m", "clarity_tui", "doctor"], capture_output=True, text=True, timeout=60)
"""

from __future__ import annotations

import io
import multiprocessing
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from multiprocessing import reduction
from typing import IO, Any

PIPE, STDOUT, DEVNULL = subprocess.PIPE, subprocess.STDOUT, subprocess.DEVNULL

# What the children use; imported once by the fork server (a module that fails to import is skipped there
# and imported by the child that needs it, as before).
PRELOAD = [
    "sqlalchemy", "sqlmodel", "psycopg", "click", "phonenumbers",
    "db.engine", "db.models", "db.migrate",
    "clarity_tui.config", "clarity_tui.cli",
    "clarity_tui.services.billing", "clarity_tui.services.membership_actions", "clarity_tui.services.plan_changes",
    "clarity_tui.services.sessions", "clarity_tui.payments.simulated", "clarity_tui.payments.stripe_gateway",
    "clarity_tui.services.billing_sync",
    "tests.helpers.forkserver_warm",  # last: freezes what the others loaded
]

_context: Any = None
_lock = threading.Lock()


def context() -> Any:
    """The `multiprocessing` context whose processes fork from the warm server (for a test that needs
    multiprocessing's own Barrier, Queue or Process with the same preload)."""
    global _context
    with _lock:
        if _context is None:
            _context = multiprocessing.get_context("forkserver")
            _context.set_forkserver_preload(PRELOAD)
        if not _server_started:
            _start_server()
        return _context


_server_started = False


def _start_server() -> None:
    """Start the fork server (and its resource tracker) now, with the real stderr: a running Textual app
    replaces sys.stderr with an object whose fileno() is -1, which multiprocessing would hand on and fail."""
    global _server_started
    from multiprocessing import forkserver

    saved = sys.stderr
    sys.stderr = sys.__stderr__
    try:
        forkserver.ensure_running()
    finally:
        sys.stderr = saved
    _server_started = True


class _InheritFd:
    """An open file descriptor handed to the child (sent to the fork server with the process, SCM_RIGHTS)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, tuple[Any]]:
        return _detach, (reduction.DupFd(self.fd),)


def _detach(dup: Any) -> int:
    return int(dup.detach())


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)  # sys.exit("message"), as the interpreter does
    return 1


def _child_main(args: list[str], env: dict[str, str], cwd: str, fds: list[int]) -> None:
    """In the forked child: become `python *args` with this environment, directory and stdio."""
    import atexit
    import runpy
    import traceback

    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for target, fd in enumerate(fds):
        if fd != target:
            os.dup2(fd, target)
            os.close(fd)
    sys.stdin = sys.__stdin__ = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115 - the process's own stdio
    sys.stdout = sys.__stdout__ = open(1, "w", encoding="utf-8", closefd=False)  # noqa: SIM115
    sys.stderr = sys.__stderr__ = io.TextIOWrapper(open(2, "wb", closefd=False), encoding="utf-8",  # noqa: SIM115
                                                   errors="backslashreplace", line_buffering=True)
    extra_path = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
    status = 0
    try:
        if args[0] == "-c":
            sys.argv = ["-c", *args[2:]]
            sys.path[:0] = [cwd, *extra_path]
            exec(compile(args[1], "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
        elif args[0] == "-m":
            sys.argv = [args[1], *args[2:]]
            sys.path[:0] = [cwd, *extra_path]
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            sys.argv = list(args)
            sys.path[:0] = [os.path.dirname(os.path.abspath(args[0])), *extra_path]
            runpy.run_path(args[0], run_name="__main__")
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:  # noqa: BLE001 - what the interpreter does with an uncaught exception
        traceback.print_exc()
        status = 1
    try:
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(status)


class ForkedProcess:
    """A `subprocess.Popen` look-alike for a child forked from the warm fork server."""

    def __init__(self, args: Sequence[str], *, stdin: int | IO[Any] | None = None,
                 stdout: int | IO[Any] | None = None, stderr: int | IO[Any] | None = None, text: bool = False,
                 env: dict[str, str] | None = None, cwd: str | os.PathLike[str] | None = None) -> None:
        self.args = list(args)
        self.returncode: int | None = None
        self._text = text
        self.stdin: IO[Any] | None = None
        self.stdout: IO[Any] | None = None
        self.stderr: IO[Any] | None = None
        child_fds: list[int] = []
        close_after: list[int] = []

        def child_end(spec: int | IO[Any] | None, index: int, reading: bool) -> tuple[int, int | None]:
            if spec == PIPE:
                r, w = os.pipe()
                child, ours = (r, w) if reading else (w, r)
                close_after.append(child)
                return child, ours
            if spec == DEVNULL:
                fd = os.open(os.devnull, os.O_RDONLY if reading else os.O_WRONLY)
                close_after.append(fd)
                return fd, None
            if spec is None:
                if index == 0:
                    fd = os.open(os.devnull, os.O_RDONLY)  # nothing to inherit: the fork server has no terminal
                    close_after.append(fd)
                    return fd, None
                return index, None  # the test's own stdout and stderr (pytest's capture)
            if isinstance(spec, int):
                return spec, None
            return spec.fileno(), None

        in_child, in_ours = child_end(stdin, 0, reading=True)
        out_child, out_ours = child_end(stdout, 1, reading=False)
        if stderr == STDOUT:
            err_child, err_ours = out_child, None
        else:
            err_child, err_ours = child_end(stderr, 2, reading=False)
        child_fds = [in_child, out_child, err_child]
        self._process = context().Process(
            target=_child_main, daemon=True,
            args=(self.args, dict(os.environ if env is None else env), os.fspath(cwd or os.getcwd()),
                  [_InheritFd(fd) for fd in child_fds]))
        try:
            self._process.start()
        finally:
            for fd in close_after:
                os.close(fd)
        self.pid: int = self._process.pid
        if in_ours is not None:
            self.stdin = self._wrap(in_ours, "w")
        if out_ours is not None:
            self.stdout = self._wrap(out_ours, "r")
        if err_ours is not None:
            self.stderr = self._wrap(err_ours, "r")

    def _wrap(self, fd: int, mode: str) -> IO[Any]:
        if self._text:
            if mode == "w":
                return io.TextIOWrapper(open(fd, "wb"), encoding="utf-8", write_through=True)
            return open(fd, encoding="utf-8")
        return open(fd, mode + "b")

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._process.exitcode
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self._process.join(timeout)
            if self._process.exitcode is None:
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
            self.returncode = self._process.exitcode
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def kill(self) -> None:
        if self.poll() is None:
            self._process.kill()

    def terminate(self) -> None:
        if self.poll() is None:
            self._process.terminate()

    def communicate(self, input: str | bytes | None = None, timeout: float | None = None) -> tuple[Any, Any]:
        """Write `input`, read both streams to the end and wait, as `Popen.communicate` does."""
        results: dict[str, Any] = {}

        def drain(name: str, stream: IO[Any]) -> None:
            results[name] = stream.read()
            stream.close()

        readers = [threading.Thread(target=drain, args=(name, stream), daemon=True)
                   for name, stream in (("out", self.stdout), ("err", self.stderr)) if stream is not None]
        for reader in readers:
            reader.start()
        if self.stdin is not None:
            try:
                if input:
                    self.stdin.write(input)
                self.stdin.close()
            except BrokenPipeError:
                pass
        self.wait(timeout)
        for reader in readers:
            reader.join(timeout)
            if reader.is_alive():
                raise subprocess.TimeoutExpired(self.args, timeout or 0)
        return results.get("out"), results.get("err")

    def __enter__(self) -> ForkedProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        for stream in (self.stdin, self.stdout, self.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self.wait()


def popen(args: Sequence[str], **kwargs: Any) -> ForkedProcess:
    """`subprocess.Popen([sys.executable, *args], **kwargs)`, forked from the warm server."""
    return ForkedProcess(args, **kwargs)


def run(args: Sequence[str], *, input: str | bytes | None = None, capture_output: bool = False,
        timeout: float | None = None, check: bool = False, **kwargs: Any) -> subprocess.CompletedProcess[Any]:
    """`subprocess.run([sys.executable, *args], ...)`, forked from the warm server."""
    if capture_output:
        kwargs.setdefault("stdout", PIPE)
        kwargs.setdefault("stderr", PIPE)
    if input is not None:
        kwargs.setdefault("stdin", PIPE)
    proc = ForkedProcess(args, **kwargs)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    done = subprocess.CompletedProcess([sys.executable, *proc.args], proc.returncode or 0, out, err)
    if check:
        done.check_returncode()
    return done


def _race_child(target: Callable[..., Any], args: tuple[Any, ...], barrier: Any, results: Any, index: int) -> None:
    import traceback

    try:
        results.put((index, target(*args, start=lambda: barrier.wait(timeout=60)), None))
    except BaseException:  # noqa: BLE001 - reported to the test, which fails with it
        barrier.abort()
        results.put((index, None, traceback.format_exc()))


def race(target: Callable[..., Any], arg_lists: Sequence[tuple[Any, ...]], *, timeout: float = 120.0) -> list[Any]:
    """Call `target(*args, start=...)` in one process per `args` (forked from the warm server), and return
    their results in order. Each target connects first, then calls `start()`: all of them go on together
    (a barrier). A racer's exception fails the test with its traceback."""
    import time

    ctx = context()
    results, barrier = ctx.Queue(), ctx.Barrier(len(arg_lists))
    procs = [ctx.Process(target=_race_child, args=(target, tuple(args), barrier, results, i))
             for i, args in enumerate(arg_lists)]
    for proc in procs:
        proc.start()
    got: dict[int, Any] = {}
    deadline = time.monotonic() + timeout
    while len(got) < len(procs):
        index, out, error = results.get(timeout=max(1.0, deadline - time.monotonic()))
        assert error is None, error
        got[index] = out
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    return [got[i] for i in range(len(procs))]
