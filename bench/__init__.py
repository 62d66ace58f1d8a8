"""Benchmarks: `python -m bench [NAME ...] [--quick] [--smoke] [--full]` prints one JSON document.

Each benchmark is a function registered under a name with `@benchmark(...)`; it takes
the run's `Options` and returns a JSON-able dict (raw figures, the target, and whether
it was met). Later issues add modules to `MODULES` and register more benchmarks.

This package stays import-light: child processes that are being timed never import it.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# Modules that register benchmarks, in the order `python -m bench` runs them.
MODULES = ("bench.startup", "bench.latency", "bench.seed", "bench.search", "bench.load", "bench.legacy_import",
           "bench.money_race", "bench.billing_sync")


@dataclass(frozen=True)
class Options:
    quick: bool = False  # fewer repetitions/samples, smaller data
    smoke: bool = False  # the tiniest run that exercises every code path (tests)
    full: bool = False  # the real sizes (the seed benchmark loads 1,000,000 customers)
    keep: bool = False  # keep seeded databases for the next run (the search benchmark caches them by size)
    pg_admin_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    backends: tuple[str, ...] = ("sqlite", "postgres")

    def pick(self, full: int, quick: int, smoke: int) -> int:
        return smoke if self.smoke else quick if self.quick else full


@dataclass(frozen=True)
class Benchmark:
    name: str
    description: str
    run: Callable[[Options], dict[str, Any]]
    tags: tuple[str, ...] = field(default=())


REGISTRY: dict[str, Benchmark] = {}


def benchmark(name: str, description: str) -> Callable[[Callable[[Options], dict[str, Any]]], Callable[[Options], dict[str, Any]]]:
    def register(fn: Callable[[Options], dict[str, Any]]) -> Callable[[Options], dict[str, Any]]:
        if name in REGISTRY:
            raise ValueError(f"benchmark {name!r} is registered twice")
        REGISTRY[name] = Benchmark(name, description, fn)
        return fn

    return register


def load_all() -> dict[str, Benchmark]:
    for module in MODULES:
        importlib.import_module(module)
    return REGISTRY
