"""Signature pads: the SignaturePad ABC, the Topaz serial driver and the simulated pad."""

from hardware.signature_pad.base import PadUpdate, PenPoint, Signature, SignatureCancelled, SignaturePad, Stroke

__all__ = ["PadUpdate", "PenPoint", "Signature", "SignatureCancelled", "SignaturePad", "Stroke"]
