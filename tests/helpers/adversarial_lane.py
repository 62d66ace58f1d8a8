"""A Modbus TCP "controller" that misbehaves on purpose: a real socket on 127.0.0.1 whose every answer is
made by a function of the request (well-framed but wrong, garbage, or a dropped connection), for the
tunnel driver's adversarial tests. pymodbus's own server (tests/helpers/modbus_server.py) only answers
correctly; a gateway mapping the wrong device, or a half-broken PLC, does not."""

from __future__ import annotations

import socket
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

Answer = Callable[[bytes], bytes | None]  # the request's bytes -> the reply (None: close the connection)


def read_answer(payload: bytes) -> Answer:
    """A reply to any request with the request's transaction and unit ids and this PDU (function code first)."""
    def answer(request: bytes) -> bytes:
        return request[:2] + b"\0\0" + struct.pack(">H", len(payload) + 1) + request[6:7] + payload
    return answer


EMPTY_READ = read_answer(bytes([3, 0]))              # "read holding registers": 0 bytes of registers
TWO_REGISTERS = read_answer(bytes([3, 4, 0, 0, 0, 1]))  # two registers where one was asked for


@contextmanager
def misbehaving_modbus(answer: Answer) -> Iterator[str]:
    """A listening socket that answers every request with `answer`; yields its host:port."""
    server = socket.create_server(("127.0.0.1", 0))
    open_conns: list[socket.socket] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return  # shut down: the test is over
            open_conns.append(conn)
            with conn:
                try:
                    while request := conn.recv(260):
                        reply = answer(request)
                        if reply is None:
                            break
                        conn.sendall(reply)
                except OSError:
                    pass

    thread = threading.Thread(target=serve, name="misbehaving-modbus", daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.getsockname()[1]}"
    finally:
        for sock in [server, *open_conns]:  # shutdown wakes a thread blocked in accept or recv
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        server.close()
        thread.join(timeout=10)
