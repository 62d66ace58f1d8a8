"""The sale's old address: SaleService and its views and errors live in services/orders/ now."""

from clarity_tui.services.orders import (
    EDITABLE,
    CardOption,
    OrderBusy,
    OrderTaken,
    OrderView,
    PayResult,
    PlanOption,
    SaleError,
    SaleService,
    VehicleOption,
    money,
)

__all__ = [
    "EDITABLE", "CardOption", "OrderBusy", "OrderTaken", "OrderView", "PayResult", "PlanOption", "SaleError",
    "SaleService", "VehicleOption", "money",
]
