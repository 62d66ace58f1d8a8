"""The database stack is imported once, on one thread, before anything uses it.

The first board paints from plain SQL; SQLAlchemy, SQLModel, the models and the services load after
(clarity_tui/boot.py). Two threads importing them at once (the boot worker and the PIN pad's operator
loader, or a key handled on the main thread) can see a partly initialised module: "cannot import
name 'AdaptedConnection' from partially initialized module 'sqlalchemy.engine'", in 3 of 19 starts.

`import_database_stack()` imports all of it under one lock. Every worker that touches the database
before the boot is done calls it before its first database import; whoever comes second waits for
the first to finish (a few hundred milliseconds, once) and then finds everything loaded.

Nor does anyone import it before the first board is painted (issue 17): the PIN pad's loader, started
with the pad, would otherwise load it alongside the first paint, which needs none of it. The app holds
the stack back (`hold_until_first_paint`) until the board is up (`allow_loading`); an app that exits
before that (`abandon_loading`) makes the waiting workers give up instead of loading it for nothing.
"""

from __future__ import annotations

import gc
import importlib
import threading

# Everything the boot worker, the PIN pad's workers and the first screens import from the stack.
# Keep it a list of modules, not a walk: an import here must not need the main thread.
MODULES = (
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.orm",
    "sqlalchemy.exc",
    "sqlmodel",
    "pydantic",
    "pydantic_settings",
    "db.models",
    "db.engine",
    "db.errors",
    "clarity_tui.config",
    "clarity_tui.services.bootstrap",
    "clarity_tui.services.sessions",
    "clarity_tui.services.operators",
    "clarity_tui.services.operator_admin",
)

# What the background workers started right after the boot import lazily and at the same moment (the
# outbox replay and the billing pass both import the payments package): two threads importing one
# package at once deadlock on its module locks ("partially initialized module
# 'clarity_tui.payments.base'", seen in 1 of 36 starts in tmux). The boot worker imports these too,
# after the database, and each such worker calls import_worker_stack() first.
WORKER_MODULES = (
    "clarity_tui.payments",
    "clarity_tui.payments.base",
    "clarity_tui.messaging",
    "clarity_tui.services.billing",
    "clarity_tui.services.billing_pass",
    "clarity_tui.services.entitlement",
    "clarity_tui.services.membership_actions",
    "clarity_tui.services.orders",
    "clarity_tui.services.board_view",
)

_lock = threading.Lock()
_loaded = threading.Event()
_workers_loaded = threading.Event()
HOLD_SECONDS = 60.0  # as long as a worker waits for the boot (app.BOOT_WAIT_SECONDS)
_may_load = threading.Event()
_may_load.set()  # tests and tools that inject a database never hold it back
_abandoned = False


class LoadingAbandoned(RuntimeError):
    """The app exited before its first paint: the database stack was never needed."""


def hold_until_first_paint() -> None:
    """Workers that import the stack wait until `allow_loading` (the first board is painted)."""
    global _abandoned
    _abandoned = False
    if not _loaded.is_set():
        _may_load.clear()


def allow_loading() -> None:
    _may_load.set()


def abandon_loading() -> None:
    """The app is exiting: waiting workers raise LoadingAbandoned instead of importing."""
    global _abandoned
    if not _may_load.is_set():
        _abandoned = True
        _may_load.set()


def import_database_stack() -> None:
    """Import the database stack (MODULES) once; concurrent callers wait for the first. Thread-safe."""
    if _loaded.is_set():
        return
    _may_load.wait(HOLD_SECONDS)  # a board that never paints must not hold the workers for ever
    if _abandoned:
        raise LoadingAbandoned("the app exited before its first paint")
    with _lock:
        if _loaded.is_set():
            return
        _import_all(MODULES)
        _loaded.set()


def _import_all(names: tuple[str, ...]) -> None:
    # What an import defines lives as long as the process: each module's objects leave the collector's view
    # as it lands (as the app's own freeze does once booted), so the collections the next imports trigger do
    # not walk them again (half the boot's collector time, ~50 ms, issue 17). The collector still runs in
    # between, so little garbage is frozen with them (~50 objects, measured).
    for name in names:
        importlib.import_module(name)
        gc.freeze()


def database_stack_loaded() -> bool:
    return _loaded.is_set()


def import_worker_stack() -> None:
    """Import WORKER_MODULES (and the database stack first) once; concurrent callers wait. Thread-safe."""
    if _workers_loaded.is_set():
        return
    import_database_stack()
    with _lock:
        if _workers_loaded.is_set():
            return
        _import_all(WORKER_MODULES)
        _workers_loaded.set()
