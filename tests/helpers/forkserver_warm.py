"""Imported last by the fork server (tests/helpers/forked.py, PRELOAD): once the modules are loaded, its heap
is frozen and its collector tuned as the workers' are, so a forked child neither re-walks nor copies the
preloaded objects each time it collects (a collection touches every object it walks, and each page touched
after a fork is copied)."""

from tests.helpers.gc_tuning import collect_then_freeze, tune

tune()
collect_then_freeze()
