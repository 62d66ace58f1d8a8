"""Writing an import's batches in order: inline (SQLite), or on a writer thread (PostgreSQL).

    with BatchWriter(write_batch, threaded=True) as submit:
        for batch in batches:
            submit(batch)          # raises the writer's error, if it stopped

On PostgreSQL most of a batch's write is the server's work (COPY, index updates, commit): the client
only waits, with the GIL released, so one writer thread lets the next batch be parsed meanwhile. Batches
are still written one at a time, in file order, one transaction each: an interrupted import keeps the
batches committed before it stopped, and running it again resumes. At most one batch waits for the
writer, so memory stays bounded by two batches.

SQLite runs its statements in this process and the driver releases the GIL for every row, so a writer
thread there queues for the GIL once per row behind the parser: the importer uses the thread on
PostgreSQL only (LegacyImporter's default).
"""

from __future__ import annotations

import gc
import queue
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

_DONE = object()


class BatchWriter:
    def __init__(self, write: Callable[[Any], None], *, threaded: bool) -> None:
        self._write = write
        self._threaded = threaded
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=1)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Callable[[Any], None]:
        if self._threaded:
            self._thread = threading.Thread(target=self._run, name="legacy-import-writer", daemon=True)
            self._thread.start()
        return self.submit

    def submit(self, batch: Any) -> None:
        if not self._threaded:
            self._write(batch)
        else:
            self._raise_if_stopped()
            self._queue.put(batch)
        gc.collect(1)  # the import runs with automatic collection off (importer._young_collections_only)

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._thread is None:
            return
        self._queue.put(_DONE)  # the writer finishes the batch in hand (it commits: a resume skips it) and stops
        self._thread.join()
        if kind is None:
            self._raise_if_stopped()

    def _raise_if_stopped(self) -> None:
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        while True:
            batch = self._queue.get()
            if batch is _DONE:
                return
            if self._error is not None:
                continue  # stopped: drain what the parser had already queued, write nothing more
            try:
                self._write(batch)
            except BaseException as exc:  # noqa: BLE001 - handed to the parsing thread, which raises it
                self._error = exc
