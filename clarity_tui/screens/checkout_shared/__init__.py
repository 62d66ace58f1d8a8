"""Screens shared by every order that ends in a signature: the membership sale (issue 5) and the
legacy migration (issue 6). Each takes the order (an `OrderView`) and a backend with the order
calls (`CheckoutBackend`, which `SaleService` implements), so another flow reuses them as they are:

    CheckoutSummaryScreen  plan, vehicles, price, discount, due today, next billing date -> Checkout
    TermsScreen            current terms, scroll to the end or "presented", Decline
    SignatureScreen        live strokes from the pad, Clear, Agree (stores the signature)
    ProcessingScreen       pays (or sets up billing) and activates, without blocking the UI
    ConfirmationScreen     what was sold
    ManualCardScreen       a card keyed in by hand (the sale's payment and the migration's card on file)
"""

from clarity_tui.screens.checkout_shared.card_entry import ManualCardScreen
from clarity_tui.screens.checkout_shared.common import BACK, CheckoutBackend, order_lines
from clarity_tui.screens.checkout_shared.confirmation import ConfirmationScreen
from clarity_tui.screens.checkout_shared.processing import ProcessingScreen
from clarity_tui.screens.checkout_shared.signature import SignatureScreen
from clarity_tui.screens.checkout_shared.summary import CheckoutSummaryScreen
from clarity_tui.screens.checkout_shared.terms import TermsScreen

__all__ = [
    "BACK", "CheckoutBackend", "CheckoutSummaryScreen", "ConfirmationScreen", "ManualCardScreen", "ProcessingScreen",
    "SignatureScreen", "TermsScreen", "order_lines",
]
