"""Selling a membership at the lane (seed 000): plan, customer, vehicles, payment, then the shared
checkout screens (summary, terms, signature, confirmation) in `screens.checkout_shared`."""

from __future__ import annotations

from typing import Any


def start_sale(node: Any, session_id: int) -> None:
    """Run the sale for a session in a worker owned by `node` (the session screen)."""
    from clarity_tui.screens.sale.flow import SaleFlow

    flow = SaleFlow(node.app, session_id)
    node.run_worker(flow.run(), name="sale-flow", group="sale-flow", exclusive=True, exit_on_error=False)


__all__ = ["start_sale"]
