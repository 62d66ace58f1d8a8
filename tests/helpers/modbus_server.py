"""pymodbus's own Modbus TCP server on 127.0.0.1, in a thread with its own event loop, for the tunnel tests.

The server is the real one (`pymodbus.server.ModbusTcpServer` over a `SimDevice`): the driver under test
talks to it through a socket. The test reads back what was written (`holding`, `coils`), sees every write
in order (`writes`), sets the controller's status register (`set_holding`), makes it stop answering
(`hang`: requests wait until `release`, so the client times out) and stops it (`stop`: refused).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

UNIT_ID = 1
SIZE = 256  # coils and holding registers 0..255
WRITE_CODES = {5: "coil", 15: "coil", 6: "register", 16: "register"}


class ModbusTestServer:
    def __init__(self, unit_id: int = UNIT_ID) -> None:
        self.unit_id = unit_id
        self.writes: list[tuple[str, int, list[int]]] = []  # (coil|register, address, values)
        self._recording = True
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="modbus-test-server", daemon=True)
        self._thread.start()
        self._hang: asyncio.Event | None = None
        self.server: ModbusTcpServer = self._run(self._start())
        self.port: int = self.server.transport.sockets[0].getsockname()[1]

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=30)

    async def _action(self, func_code: int, _start: int, address: int, _count: int, _registers: list[int],
                      values: list[int] | list[bool] | None) -> None:
        if self._hang is not None:
            await self._hang.wait()
        if values is not None and self._recording and func_code in WRITE_CODES:
            self.writes.append((WRITE_CODES[func_code], address, [int(v) for v in values]))

    async def _start(self) -> ModbusTcpServer:
        device = SimDevice(id=self.unit_id, action=self._action, simdata=(
            [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)],
            [SimData(0, count=SIZE, values=False, datatype=DataType.BITS)],
            [SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=SIZE, values=0, datatype=DataType.REGISTERS)],
        ))
        server = ModbusTcpServer(device, address=("127.0.0.1", 0))
        await server.serve_forever(background=True)
        return server

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def holding(self, address: int, count: int = 1) -> list[int]:
        self._recording = False
        try:
            return list(self._run(self.server.async_getValues(self.unit_id, 3, address, count)))
        finally:
            self._recording = True

    def coils(self, address: int, count: int = 1) -> list[bool]:
        self._recording = False
        try:
            return [bool(v) for v in self._run(self.server.async_getValues(self.unit_id, 1, address, count))]
        finally:
            self._recording = True

    def set_holding(self, address: int, *values: int) -> None:
        self._recording = False
        try:
            self._run(self.server.async_setValues(self.unit_id, 16, address, list(values)))
        finally:
            self._recording = True

    def hang(self) -> None:
        """Requests from now on get no answer (until `release`)."""
        async def make() -> None:
            self._hang = asyncio.Event()
        self._run(make())

    def release(self) -> None:
        async def free() -> None:
            if self._hang is not None:
                self._hang.set()
                self._hang = None
        self._run(free())

    def stop(self) -> None:
        if self._loop.is_closed():
            return
        self.release()
        self._run(self.server.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()


@contextmanager
def modbus_server(unit_id: int = UNIT_ID) -> Iterator[ModbusTestServer]:
    server = ModbusTestServer(unit_id)
    try:
        yield server
    finally:
        server.stop()
