"""Signature pads: the SignaturePad ABC, the Topaz serial driver and the simulated pad."""

from hardware.signature_pad.base import (
    NotASignature,
    PadUpdate,
    PenPoint,
    Signature,
    SignatureCancelled,
    SignaturePad,
    Stroke,
    check_signature,
    signature_problem,
)

__all__ = ["NotASignature", "PadUpdate", "PenPoint", "Signature", "SignatureCancelled", "SignaturePad", "Stroke",
           "check_signature", "signature_problem"]
