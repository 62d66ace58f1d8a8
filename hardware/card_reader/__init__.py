"""Card readers: the CardReader ABC, the simulated reader and Stripe Terminal (server-driven)."""

from hardware.card_reader.base import CardReader, CardReaderError, CardToken, PaymentResult

__all__ = ["CardReader", "CardReaderError", "CardToken", "PaymentResult"]
