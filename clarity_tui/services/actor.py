"""Who is acting: recorded on every audit row and checked by permissions."""

from __future__ import annotations

from dataclasses import dataclass

from db.models import Role


@dataclass(frozen=True)
class Actor:
    name: str
    role: Role = Role.ATTENDANT
    terminal: str | None = None
    operator_id: int | None = None
    # Code acting on its own (see `system`); permissions check it as the "system" column, never as a role.
    is_system: bool = False

    @classmethod
    def system(cls, what: str, terminal: str | None = None) -> Actor:
        """A non-person actor: the simulator, an import, the camera, background jobs."""
        return cls(name=what, role=Role.TECHNICIAN, terminal=terminal, is_system=True)
