"""Plate readers: an async stream of PlateEvents."""

from hardware.plate_reader.base import PlateEvent, PlateReader

__all__ = ["PlateEvent", "PlateReader"]
