"""Demo and benchmark data: the demo site (`demo`) and the bulk loader for large databases (`bulk`).

Tools for the simulator, the benchmarks and the tests, not domain services: they write rows straight
into the database (the bulk loader through the raw driver) and never run in a site's normal work.
"""

from clarity_tui.seeding.bulk import BulkSeedResult, bulk_seed
from clarity_tui.seeding.demo import DemoSummary, seed_demo

__all__ = ["BulkSeedResult", "DemoSummary", "bulk_seed", "seed_demo"]
