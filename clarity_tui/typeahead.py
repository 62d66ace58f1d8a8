"""Type-ahead: keys typed before the UI has caught up reach the widget that would have had them typed slowly.

Why this is needed (Textual 8): the app forwards every key to the focused widget's queue the moment it
reads it, but `Widget.focus()` is deferred (`app.call_later`), a pushed screen mounts and takes focus a
few messages later, and a step flow swaps screens from a worker after a database call. Keys that arrive
in one burst (tmux, SSH) are therefore all forwarded to the widget that had focus when the burst
arrived: "Jo Enter Smith Enter …" ends up entirely in First name.

`KeyGate` processes key N+1 only once key N's effects have settled, buffering keys meanwhile and
replaying them in order to whatever is focused then. Settled means:

- no message is queued on, or being handled by, the app or any widget of the active screen (the
  nodes that are busy are waited on with a barrier, as Pilot's `_wait_for_screen` does), and the
  screen stack and the focused widget stay the same for QUIET_ROUNDS looks in a row. A deferred
  focus, a bubbling `Input.Submitted`, a pushed screen's compose/mount/auto-focus all show up as a
  queued message or a change;
- no *gating* worker of the key's making is running. A worker gates when its group is in
  `GATING_GROUPS` or in its node's `TYPEAHEAD_WAIT_FOR` (the short step transitions: a screen's load,
  a form's validate-and-save, the flow's service calls between two step screens) and it started after
  the key was let through, or it was a flow showing a step screen then and is now between steps. A
  gating worker waiting for a screen it pushed (`push_screen_wait`: a flow showing its next step)
  does not gate: the attendant is working on that screen; nor does one that was already running (a
  screen reloading because the database changed). Background loops (change feed, billing sync,
  simulator, card-reader waits) are never gating, so Esc always gets through to a reader that is
  waiting for a card;
- no explicit `hold()` is open (a screen that defers an action, e.g. Enter on a search still typing).

Keys are never held for ever: after `MAX_HOLD` seconds the gate lets keys go and stops waiting for
the worker or hold that kept it (logged). When nothing is pending, a key is handled at once, exactly as
without the gate, so slow typing (and Pilot's `press`, which waits between keys) behaves as before.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections import deque
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual import events
from textual.worker import NoActiveWorker, Worker, WorkerState, get_current_worker

if TYPE_CHECKING:
    from textual.app import App
    from textual.message_pump import MessagePump
    from textual.screen import Screen

    _AppBase = App[None]
else:
    _AppBase = object

log = logging.getLogger(__name__)

# Worker groups that are a step transition: keys typed after the key that started one wait for it.
GATING_GROUPS: frozenset[str] = frozenset({
    "sale-flow", "migration-flow",  # the step flows: their service calls between two step screens
    "session-load", "record-load", "record-prompts", "family-load",  # a screen filling itself in
    "customer-quick", "migration-contact", "checkout", "payment", "terms", "family-change",  # validate, then the next step
    "record-save", "form-save",  # a form saving (Esc after F2 closes what was saved, not what is saving)
    "record-fill",  # a picked customer's number filling the Related dialog (F2 after it saves that number)
    "signin-check", "board-load",  # a PIN checked, then the board filled: "123456 /HPN Enter" in one burst
})
MAX_HOLD = 15.0  # seconds: the longest a key waits for the UI (then it goes, and the culprit is logged)
QUIET_ROUNDS = 2
_POLL = 0.01  # while a gating worker or hold is busy: how often to look again
_ROUND = 0.2  # a barrier looks for removed nodes (whose queued callbacks may never run) this often
_ACTIVE = (WorkerState.PENDING, WorkerState.RUNNING)


class Hold:
    """Keys wait while this is open (see `KeyGate.hold`); release it when the deferred action is done."""

    def __init__(self, gate: KeyGate | None, reason: str) -> None:
        self._gate = gate
        self.reason = reason

    def release(self) -> None:
        if self._gate is not None:
            self._gate._holds.discard(self)


class KeyGate:
    def __init__(self, app: App[Any]) -> None:
        self.app = app
        self._buffer: deque[events.Key] = deque()
        self._replayed: dict[int, events.Key] = {}
        self._task: asyncio.Task[None] | None = None
        self._holds: set[Hold] = set()
        self._awaiting: weakref.WeakKeyDictionary[Worker[Any], Screen[Any]] = weakref.WeakKeyDictionary()
        self._ignored: weakref.WeakSet[Worker[Any]] = weakref.WeakSet()
        # The gating workers running when the key being settled was let through, and whether each was
        # then waiting for a screen it pushed (a flow showing a step): see `_gating_workers`.
        self._baseline: weakref.WeakKeyDictionary[Worker[Any], bool] = weakref.WeakKeyDictionary()
        self.buffered_total = 0  # keys that had to wait (diagnostics and tests)
        self.gave_up = 0  # times MAX_HOLD passed and keys went anyway

    # --- what the app calls ----------------------------------------------------------------------

    def admit(self, event: events.Key) -> bool:
        """True: handle this key now. False: it is buffered and will be replayed in order."""
        if self._replayed.get(id(event)) is event:
            del self._replayed[id(event)]
            return True
        if self._task is None and not self._buffer and not self._holds:
            self._mark_baseline()
            self._start()  # handled now; the next key waits until its effects have settled
            return True
        self._buffer.append(event)
        self.buffered_total += 1
        if self._task is None:
            self._start()
        return False

    def hold(self, reason: str) -> Hold:
        """Keys wait until the returned hold is released (or MAX_HOLD passes)."""
        hold = Hold(self, reason)
        self._holds.add(hold)
        return hold

    def screen_pushed(self, screen: Any, wait_for_dismiss: bool) -> None:
        """A worker that pushes a screen and waits for it is waiting for the attendant, not busy."""
        if not wait_for_dismiss:
            return
        try:
            worker = get_current_worker()
        except NoActiveWorker:
            return
        if not isinstance(screen, str):
            self._awaiting[worker] = screen

    @property
    def pending(self) -> int:
        return len(self._buffer)

    def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self._buffer.clear()

    # --- settling ---------------------------------------------------------------------------------

    def _start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._drain(), name="typeahead")

    async def _drain(self) -> None:
        try:
            while True:
                await self._settle()
                if not self._buffer:
                    return
                if self._closing():  # keys for an app with no screens left go nowhere
                    self._buffer.clear()
                    return
                event = self._buffer.popleft()
                self._replayed[id(event)] = event
                self._mark_baseline()
                if not self.app.post_message(event):  # the app is closing
                    self._buffer.clear()
                    return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("type-ahead gate failed; releasing %d key(s)", len(self._buffer))
            while self._buffer:
                event = self._buffer.popleft()
                self._replayed[id(event)] = event
                self.app.post_message(event)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _gating_group_workers(self) -> list[Worker[Any]]:
        out = []
        for worker in list(self.app.workers):
            if worker.state not in _ACTIVE or worker in self._ignored:
                continue
            groups: Iterable[str] = getattr(worker.node, "TYPEAHEAD_WAIT_FOR", ())
            if worker.group in GATING_GROUPS or worker.group in groups:
                out.append(worker)
        return out

    def _waiting_for_attendant(self, worker: Worker[Any]) -> bool:
        """Is the worker waiting for a screen it pushed, which is still up?"""
        awaited = self._awaiting.get(worker)
        return awaited is not None and awaited in self.app.screen_stack

    def _mark_baseline(self) -> None:
        """Just before a key is let through: which gating workers are running already."""
        self._baseline = weakref.WeakKeyDictionary(
            (w, self._waiting_for_attendant(w)) for w in self._gating_group_workers())

    def _gating_workers(self) -> list[Worker[Any]]:
        """The key's effects still running: a gating worker started since the key was let through, or a
        flow that was showing a step screen then and is now between steps. A worker that was already
        running and not showing a screen (a screen reloading because the database changed) is not the
        key's doing: it does not hold keys."""
        busy = []
        for worker in self._gating_group_workers():
            if self._waiting_for_attendant(worker):
                continue  # showing a step screen: the attendant works there
            if self._baseline.get(worker, True):
                busy.append(worker)
        return busy

    def _busy(self) -> bool:
        return bool(self._holds) or bool(self._gating_workers())

    def _state(self) -> tuple[int, ...]:
        app = self.app
        try:
            focused = app.focused
        except Exception:  # noqa: BLE001 - no screen yet
            focused = None
        return (0 if focused is None else id(focused), *(id(s) for s in app.screen_stack))

    def _nodes(self) -> list[MessagePump]:
        app = self.app
        try:
            screen = app.screen
        except Exception:  # noqa: BLE001 - no screen yet / shutting down
            return [app]
        return [app, *screen.walk_children(with_self=True)]

    @staticmethod
    def _queued(node: MessagePump) -> bool:
        return bool(node.message_queue_size or getattr(node, "_next_callbacks", None))

    def _focus_chain(self) -> list[MessagePump]:
        """The app, the active screen and the focused widget with its ancestors: where a key's effects
        run (a node may be handling a message with its queue empty, so these are always waited on)."""
        app = self.app
        try:
            screen = app.screen
            focused = app.focused
        except Exception:  # noqa: BLE001 - no screen yet / shutting down
            return [app]
        chain: list[MessagePump] = [app, screen]
        node: MessagePump | None = focused
        while node is not None and node is not screen:
            chain.append(node)
            node = node._parent
        return chain

    def _gone(self, node: MessagePump) -> bool:
        """A node being removed may drop what is queued on it: it is not waited for."""
        return node is not self.app and (node._closing or node._closed or not node.is_attached)

    async def _barrier(self, nodes: list[MessagePump], timeout: float) -> bool:
        """Wait until every node has processed the messages queued on it before now. True when all did
        (or were removed meanwhile); False when `timeout` passed first."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        pending: dict[int, MessagePump] = {}
        done = asyncio.Event()

        def one_done(node: MessagePump) -> None:
            pending.pop(id(node), None)
            if not pending:
                done.set()

        for node in nodes:
            if node.call_later(one_done, node):
                pending[id(node)] = node
        while pending and loop.time() < end:
            try:
                await asyncio.wait_for(done.wait(), timeout=max(min(_ROUND, end - loop.time()), 0.001))
            except TimeoutError:
                for key in [k for k, n in pending.items() if self._gone(n)]:
                    del pending[key]
        return not pending

    async def _settle(self) -> None:
        """Return once nothing is left to happen: QUIET_ROUNDS rounds in a row in which the app, the
        screen and the focus chain (plus any node with messages queued) handled everything they had,
        no node of the active screen had a message left, the screen stack and the focus stayed the
        same, and no gating worker or hold was busy. Only a few nodes are waited on per round, so a big
        screen costs little."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MAX_HOLD
        quiet, last = 0, None
        while quiet < QUIET_ROUNDS:
            if self._closing():  # an exiting app settles nothing more: its keys go nowhere
                return
            if loop.time() >= deadline:
                self._give_up()
                return
            if self._busy():
                quiet, last = 0, None
                await asyncio.sleep(_POLL)
                continue
            state = self._state()
            chain = self._focus_chain()
            queued = [n for n in self._nodes() if self._queued(n) and n not in chain]
            complete = await self._barrier([*chain, *queued], deadline - loop.time())
            after = self._state()
            if complete and after == state == last and not any(self._queued(n) for n in self._nodes()):
                quiet += 1
            else:
                quiet, last = 0, after

    def _closing(self) -> bool:
        return self.app._exit or not self.app.is_running or not self.app.screen_stack

    def _give_up(self) -> None:
        self.gave_up += 1
        workers = self._gating_workers()
        nodes = [n for n in self._nodes() if self._queued(n)]
        log.warning("type-ahead: keys waited %.1f s; letting them go (workers: %s; holds: %s; busy: %s)", MAX_HOLD,
                    ", ".join(f"{w.group}/{w.name}" for w in workers) or "-",
                    ", ".join(h.reason for h in self._holds) or "-",
                    ", ".join(f"{n!r}:{n.message_queue_size}" for n in nodes[:5]) or "-")
        self._ignored.update(workers)
        self._holds.clear()


class TypeaheadMixin(_AppBase):
    """Mixed into the App: every key read from the terminal passes the gate."""

    _typeahead: KeyGate | None = None

    @property
    def typeahead(self) -> KeyGate:
        if self._typeahead is None:
            self._typeahead = KeyGate(self)
        return self._typeahead

    async def on_event(self, event: events.Event) -> None:
        if isinstance(event, events.Key) and not event.is_forwarded and not self.typeahead.admit(event):
            return
        await super().on_event(event)

    def push_screen(self, screen: Any, *args: Any, **kwargs: Any) -> Any:
        wait = kwargs.get("wait_for_dismiss", args[1] if len(args) > 1 else False)
        self.typeahead.screen_pushed(screen, bool(wait))
        return super().push_screen(screen, *args, **kwargs)

    def _on_unmount(self) -> None:
        if self._typeahead is not None:
            self._typeahead.close()


def hold(app: Any, reason: str) -> Hold:
    """Keys wait until the hold is released: for a screen that defers an action the next keys depend on.
    (An app without the gate gets a hold that holds nothing.)"""
    return app.typeahead.hold(reason) if isinstance(app, TypeaheadMixin) else Hold(None, reason)
