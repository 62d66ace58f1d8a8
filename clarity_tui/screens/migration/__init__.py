"""Migrating a legacy member at the lane (seed 001): match ("That's Me"), contact (email by SMS),
card on file (no charge today, billing date kept), then the shared checkout screens (summary,
terms, signature, confirmation) in `screens.checkout_shared`."""

from __future__ import annotations

from typing import Any


def start_migration(node: Any, session_id: int) -> None:
    """Run the migration for a session in a worker owned by `node` (the session screen)."""
    from clarity_tui.screens.migration.flow import MigrationFlow

    flow = MigrationFlow(node.app, session_id)
    node.run_worker(flow.run(), name="migration-flow", group="migration-flow", exclusive=True, exit_on_error=False)


__all__ = ["start_migration"]
