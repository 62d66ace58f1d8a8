"""How the test processes collect garbage: one setting for the pytest workers and the fork server.

Python collects its youngest generation every 700 allocations; a Pilot test allocates millions of small
objects (strips, segments, styles), and those collections were a fifth of the suite's CPU (measured on
tests/test_board.py + tests/sale/test_flow_ui.py: user 45.6 s -> 37.0 s). Garbage is still collected, in
larger batches; nothing a test checks depends on when.
"""

from __future__ import annotations

import gc

THRESHOLDS = (50_000, 20, 20)


def tune() -> None:
    gc.set_threshold(*THRESHOLDS)


def collect_then_freeze() -> None:
    """Collect once, then move what survived out of the collector's sight: later collections (in this
    process, or in a child forked from it) do not walk, and so do not copy, the imported modules' objects."""
    gc.collect()
    gc.freeze()
