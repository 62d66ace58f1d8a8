"""Orders at the lane: a sale, a plan change and a migration share one order row and one checkout.

    guards      who may touch an order and in which state (SaleError, OrderBusy, OrderTaken)
    views       what the screens read (OrderView, PlanOption, CardOption, VehicleOption, PayResult)
    checkout    the steps both flows use (OrderSteps: terms, signature, activation, recovery)
    sale        SaleService, the sale's steps
"""

from clarity_tui.services.orders.guards import EDITABLE, OrderBusy, OrderTaken, SaleError
from clarity_tui.services.orders.sale import SaleService
from clarity_tui.services.orders.views import CardOption, OrderView, PayResult, PlanOption, VehicleOption
from clarity_tui.services.plan_pricing import money

__all__ = [
    "EDITABLE", "CardOption", "OrderBusy", "OrderTaken", "OrderView", "PayResult", "PlanOption", "SaleError",
    "SaleService", "VehicleOption", "money",
]
