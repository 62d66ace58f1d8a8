"""A gate and tunnel controller on Modbus TCP (a PLC, a controller gateway, or a relay board).

Relay boards and controller gateways differ, so the register map is in the settings:

    [hardware.tunnel]
    driver = "modbus_tcp"
    port = "192.168.1.50:502"

    [hardware.tunnel.options]
    unit_id = 1                                  # the Modbus unit (slave) id
    timeout_seconds = 2.0
    gate_coils = { "Lane 1" = 0, "Lane 2" = 1 }  # the gate relay of each lane (coil addresses)
    gate_pulse_seconds = 0.0                     # 0: set the coil on (the board releases it); > 0: on, wait, off
    lane_numbers = { "Lane 1" = 1 }              # optional: the number sent for a lane (default: its place in gate_coils, from 1)
    lane_register = 0                            # optional holding registers (omit what the controller has not got):
    package_register = 1                         #   the package's tunnel_code
    extras_register = 2                          #   the extras as a bitmask (bit n = the extra whose tunnel_code is n),
    extras_registers = 1                         #   16 bits per register, low word first
    plate_register = 4                           #   the plate in ASCII, 2 characters per register (high byte first),
    plate_registers = 4                          #   padded with NULs
    start_coil = 16                              # the "start wash" command: a coil set on, or
    # start_register = 10  start_value = 1       #   a holding register written with start_value
    status_register = 20                         # the controller's state, and what its values mean:
    status_values = { ready = 0, busy = 1, fault = 2 }   # any other value reads as a fault

Addresses are the 0-based protocol addresses; messages name them the Modicon way (address 9 is
"register 40010", coil 2 is "coil 00003"), as controller manuals do. A wash is: read the status (busy or
fault refuse it), write lane, package, extras and plate, then the start command; the gate is its lane's
coil. The pymodbus client is the synchronous one, run in a worker thread behind a lock, so the driver
works from any event loop (the app's, or a worker thread's own).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from hardware.base import DeviceState
from hardware.tunnel.base import ERROR_MESSAGES, TunnelController, TunnelError, TunnelState, TunnelWash

Address = Field(ge=0, le=65535)

# pymodbus logs each refused connection and unanswered request itself; with no handler of its own those lines
# would go to stderr (over the lane's screen). Our TunnelError says the same, with the register.
logging.getLogger("pymodbus").addHandler(logging.NullHandler())


def register_label(address: int) -> str:
    """A holding register the way controller manuals number it (address 9 -> "register 40010")."""
    return f"register {40001 + address}" if address < 9999 else f"register {400001 + address}"


def coil_label(address: int) -> str:
    return f"coil {address + 1:05d}"


class ModbusTunnelMap(BaseModel):
    """`[hardware.tunnel.options]` for the modbus_tcp driver (the module docstring shows each key)."""

    model_config = ConfigDict(extra="forbid")

    unit_id: int = Field(default=1, ge=0, le=247)
    timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    gate_coils: dict[str, int] = Field(min_length=1)
    gate_pulse_seconds: float = Field(default=0.0, ge=0, le=10)
    lane_numbers: dict[str, int] = Field(default_factory=dict)
    lane_register: int | None = Address
    package_register: int = Address
    extras_register: int | None = Address
    extras_registers: int = Field(default=1, ge=1, le=4)
    plate_register: int | None = Address
    plate_registers: int = Field(default=4, ge=1, le=8)
    start_coil: int | None = Address
    start_register: int | None = Address
    start_value: int = Field(default=1, ge=0, le=65535)
    status_register: int = Address
    status_values: dict[str, int] = Field(default_factory=lambda: {"ready": 0, "busy": 1, "fault": 2})

    @model_validator(mode="before")
    @classmethod
    def _optional_registers_default_to_none(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = dict(data)
            for key in ("lane_register", "extras_register", "plate_register", "start_coil", "start_register"):
                data.setdefault(key, None)
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModbusTunnelMap:
        if (self.start_coil is None) == (self.start_register is None):
            raise ValueError("set exactly one of start_coil and start_register (the \"start wash\" command)")
        for lane, coil in self.gate_coils.items():
            if not 0 <= coil <= 65535:
                raise ValueError(f"gate_coils: the coil of '{lane}' must be an address from 0 to 65535, not {coil}")
        unknown = set(self.lane_numbers) - set(self.gate_coils)
        if unknown:
            raise ValueError(f"lane_numbers names {', '.join(sorted(unknown))}, which gate_coils has no coil for")
        bad = set(self.status_values) - {"ready", "busy", "fault"}
        if bad or "ready" not in self.status_values:
            raise ValueError("status_values maps ready (required), busy and fault to the status register's values")
        spans = [(name, start, count) for name, start, count in (
            ("lane_register", self.lane_register, 1), ("package_register", self.package_register, 1),
            ("extras_register", self.extras_register, self.extras_registers),
            ("plate_register", self.plate_register, self.plate_registers),
            ("start_register", self.start_register, 1), ("status_register", self.status_register, 1))
            if start is not None]
        for i, (name, start, count) in enumerate(spans):
            for other, other_start, other_count in spans[i + 1:]:
                if start < other_start + other_count and other_start < start + count:
                    raise ValueError(f"{name} ({register_label(start)}) overlaps {other} "
                                     f"({register_label(other_start)}): give each its own registers")
        return self

    def lane_number(self, lane: str) -> int:
        if lane in self.lane_numbers:
            return self.lane_numbers[lane]
        return list(self.gate_coils).index(lane) + 1

    def state_of(self, value: int) -> TunnelState:
        for name, mapped in self.status_values.items():
            if mapped == value:
                return TunnelState(name)
        return TunnelState.FAULT


def parse_map(options: dict[str, Any]) -> ModbusTunnelMap:
    """The register map, or a TunnelError("config") saying which setting is wrong and how."""
    try:
        return ModbusTunnelMap.model_validate(options)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        key = f"hardware.tunnel.options.{where}" if where else "hardware.tunnel.options"
        message = str(first["msg"]).removeprefix("Value error, ")
        if first["type"] == "missing":
            message = "missing: set it (the README's tunnel controller section shows a whole register map)"
        raise TunnelError("config", device="modbus_tcp tunnel", detail=f"{key}: {message}") from None


def parse_address(port: str | None) -> tuple[str, int]:
    if not port:
        raise TunnelError("config", device="modbus_tcp tunnel",
                          detail="set hardware.tunnel.port to the controller's host:port (e.g. 192.168.1.50:502)")
    host, sep, number = port.rpartition(":")
    if not sep:
        return port, 502
    if not host or not number.isdigit() or not 0 < int(number) < 65536:
        raise TunnelError("config", device="modbus_tcp tunnel",
                          detail=f"hardware.tunnel.port '{port}' is not host:port (e.g. 192.168.1.50:502)")
    return host.strip("[]"), int(number)


def plate_words(plate: str, count: int) -> list[int]:
    """ASCII, two characters per register, high byte first; padded with NULs, cut at 2*count characters."""
    data = plate.upper().encode("ascii", "replace")[: 2 * count].ljust(2 * count, b"\0")
    return [data[i] << 8 | data[i + 1] for i in range(0, len(data), 2)]


@dataclass
class ModbusTcpTunnel(TunnelController):
    host: str = "127.0.0.1"
    port: int = 502
    map: ModbusTunnelMap | None = None
    driver_name: str = field(init=False, default="modbus_tcp")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.map is None:
            raise TunnelError("config", device=self.device_name, detail="no register map")
        self._lock = threading.Lock()
        self._client: Any = None

    @classmethod
    def from_config(cls, port: str | None, options: dict[str, Any], **context: Any) -> ModbusTcpTunnel:
        host, number = parse_address(port)
        return cls(host=host, port=number, map=parse_map(options))

    @property
    def regs(self) -> ModbusTunnelMap:
        assert self.map is not None
        return self.map

    @property
    def device_name(self) -> str:
        return f"modbus_tcp tunnel {self.host}:{self.port} unit {self.map.unit_id if self.map else '?'}"

    @property
    def port_description(self) -> str:
        return f"modbus://{self.host}:{self.port}/{self.regs.unit_id}"

    # --- the wire (worker thread, under the lock) ---------------------------------------------------

    def _connected(self, where: str) -> Any:
        from pymodbus.client import ModbusTcpClient

        if self._client is None:
            self._client = ModbusTcpClient(self.host, port=self.port, timeout=self.regs.timeout_seconds, retries=0)
        if not self._client.connected and not self._client.connect():
            self._drop()
            raise TunnelError("offline", device=self.device_name, register=where,
                              detail=f"no connection to {self.host}:{self.port}: check the controller's power and "
                                     "network, and hardware.tunnel.port")
        return self._client

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def _call(self, where: str, method: str, *args: Any, **kw: Any) -> Any:
        """One request; any failure is a TunnelError naming the device and `where` (a register or coil)."""
        from pymodbus.exceptions import ConnectionException, ModbusException

        client = self._connected(where)
        try:
            response = getattr(client, method)(*args, device_id=self.regs.unit_id, **kw)
        except ConnectionException as exc:
            self._drop()
            raise TunnelError("offline", device=self.device_name, register=where, detail=str(exc)) from exc
        except ModbusException as exc:  # no answer in time (ModbusIOException) or a garbled one
            self._drop()
            raise TunnelError("timeout", device=self.device_name, register=where,
                              detail=f"no answer in {self.regs.timeout_seconds:g} s") from exc
        if response.isError():
            raise TunnelError("rejected", device=self.device_name, register=where,
                              detail=f"Modbus exception {getattr(response, 'exception_code', '?')}")
        return response

    def _read_state(self) -> tuple[TunnelState, int]:
        where = register_label(self.regs.status_register)
        response = self._call(where, "read_holding_registers", self.regs.status_register, count=1)
        registers = list(getattr(response, "registers", None) or [])
        if len(registers) != 1:  # a well-framed answer with the wrong payload (a gateway mapping another device)
            self._drop()
            raise TunnelError("error", device=self.device_name, register=where,
                              detail=f"answered {len(registers)} registers instead of 1: check the unit id and "
                                     "hardware.tunnel.options.status_register")
        value = int(registers[0])
        return self.regs.state_of(value), value

    def _ready_or_raise(self) -> None:
        state, value = self._read_state()
        if state is not TunnelState.READY:
            error = TunnelError(state.value, device=self.device_name, register=register_label(self.regs.status_register),
                                detail=f"status value {value}")
            self._show_state(state, error.summary)
            raise error

    def _send(self, wash: TunnelWash) -> None:
        regs = self.regs
        if wash.lane not in regs.gate_coils:
            raise TunnelError("config", device=self.device_name,
                              detail=f"no gate coil for '{wash.lane}': add it to hardware.tunnel.options.gate_coils")
        mask = wash.extras_mask
        if mask >> (16 * regs.extras_registers) or not 0 <= wash.package_code <= 65535:
            raise TunnelError("config", device=self.device_name,
                              detail="a package or extra's tunnel_code does not fit the register map "
                                     f"(package {wash.package_code}, extras bits {sorted(wash.extras_codes)})")
        self._ready_or_raise()
        writes: list[tuple[int | None, list[int]]] = [
            (regs.lane_register, [regs.lane_number(wash.lane)]),
            (regs.package_register, [wash.package_code]),
            (regs.extras_register, [(mask >> (16 * i)) & 0xFFFF for i in range(regs.extras_registers)]),
            (regs.plate_register, plate_words(wash.plate, regs.plate_registers)),
        ]
        for address, values in writes:
            if address is not None:
                self._call(register_label(address), "write_registers", address, values)
        if regs.start_coil is not None:
            self._call(coil_label(regs.start_coil), "write_coil", regs.start_coil, True)
        else:
            assert regs.start_register is not None
            self._call(register_label(regs.start_register), "write_register", regs.start_register, regs.start_value)

    def _gate(self, lane: str) -> None:
        coil = self.regs.gate_coils.get(lane)
        if coil is None:
            raise TunnelError("config", device=self.device_name,
                              detail=f"no gate coil for '{lane}': add it to hardware.tunnel.options.gate_coils")
        self._call(coil_label(coil), "write_coil", coil, True)
        if self.regs.gate_pulse_seconds:
            time.sleep(self.regs.gate_pulse_seconds)  # the relay's pulse width, not a wait for a signal
            self._call(coil_label(coil), "write_coil", coil, False)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            try:
                result = fn(*args)
            except TunnelError as exc:
                if exc.code != "config":  # a lane missing from the map is not the controller's fault
                    self._show_state(exc.state, exc.summary)
                raise
        return result

    # --- the controller ---------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect and read the status: an unreachable controller raises (with why); a faulted one opens
        and shows its fault."""
        self._show_read(*await asyncio.to_thread(self._locked, self._read_state))

    async def close(self) -> None:
        with self._lock:
            self._drop()
        self._set_status(DeviceState.DISCONNECTED)

    async def send_wash(self, wash: TunnelWash) -> None:
        await asyncio.to_thread(self._locked, self._send, wash)
        self._show_state(TunnelState.READY)

    async def open_gate(self, lane: str) -> None:
        await asyncio.to_thread(self._locked, self._gate, lane)
        self._show_state(TunnelState.READY)

    async def read_state(self) -> TunnelState:
        try:
            state, value = await asyncio.to_thread(self._locked, self._read_state)
        except TunnelError as exc:
            return exc.state
        return self._show_read(state, value)

    def _show_read(self, state: TunnelState, value: int) -> TunnelState:
        label = register_label(self.regs.status_register)
        reason = f"{ERROR_MESSAGES.get(state.value, state.value)} ({label}): status value {value}"
        self._show_state(state, "" if state is TunnelState.READY else reason)
        return state
