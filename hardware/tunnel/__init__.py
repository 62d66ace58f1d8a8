"""Gate and tunnel controllers: the TunnelController ABC, the simulated tunnel and Modbus TCP."""

from hardware.tunnel.base import TunnelController, TunnelError, TunnelState, TunnelWash

__all__ = ["TunnelController", "TunnelError", "TunnelState", "TunnelWash"]
