"""Kept for its many importers (tests, benchmarks): the demo site lives in clarity_tui/seeding/demo.py."""

from clarity_tui.seeding.demo import (
    COLOURS,
    FIRST_NAMES,
    LAST_NAMES,
    VEHICLES,
    DemoSummary,
    ensure_reference_data,
    random_phone,
    random_plate,
    seed_demo,
)

__all__ = ["COLOURS", "FIRST_NAMES", "LAST_NAMES", "VEHICLES", "DemoSummary", "ensure_reference_data", "random_phone",
           "random_plate", "seed_demo"]
