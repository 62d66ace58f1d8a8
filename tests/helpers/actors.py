"""The operators tests act as, one per role."""

from __future__ import annotations

from clarity_tui.services.actor import Actor
from db.models import Role

ATTENDANT = Actor("Alex Attendant", Role.ATTENDANT, "lane-1-term", 1)
MANAGER = Actor("Morgan Manager", Role.MANAGER, "office-term", 2)
TECHNICIAN = Actor("Taylor Tech", Role.TECHNICIAN, "laptop", 3)
SUPPORT = Actor("ssh:support", Role.SUPPORT, "ssh", 4)
