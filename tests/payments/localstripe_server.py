"""Run localstripe on 127.0.0.1 (not every interface, unlike `python -m localstripe`).

Usage: python localstripe_server.py PORT STATE_FILE

Test-only additions around the real localstripe app:
- state is kept in STATE_FILE (not the shared /tmp/localstripe.pickle), loaded at
  start and written at shutdown, so a stopped and restarted server keeps its data;
- Stripe's documented idempotency (which localstripe lacks), quoted from
  docs.stripe.com/api/idempotent_requests:
  "Stripe's idempotency works by saving the resulting status code and body of the first
  request made for any given idempotency key, regardless of whether it succeeds or fails.
  Subsequent requests with the same key return the same result, including 500 errors."
  "The idempotency layer compares incoming parameters to those of the original request and
  errors if they're not the same to prevent accidental misuse."
  "We save results only after the execution of an endpoint begins. If incoming parameters fail
  validation, or the request conflicts with another request that's executing concurrently, we
  don't save the idempotent result because no API endpoint initiates the execution."
  So: a POST with an Idempotency-Key returns the stored response of the first request with
  that key (5xx included, with `Idempotent-Replayed: true`); a different body with the same key
  gets Stripe's 400 idempotency_error; the same key while its first request is still executing
  gets 409 with code idempotency_key_in_use ("409 Conflict: The request conflicts with another
  request (perhaps due to using the same idempotent key)", docs.stripe.com/api/errors) and is not
  stored. 400s are not stored: localstripe cannot tell a validation error from an endpoint's own.
- faults, for tests (POST /_config/faults, JSON {path, status, times, delay, hold, drop,
  after_effect, code}; returns {"id"}): the next `times` POSTs to `path` wait `delay` seconds,
  or wait until released (`hold`: GET /_config/faults/ID/entered blocks until one is held, POST
  /_config/faults/ID/release lets it go), inside the key's in-flight window; then answer
  `status` (5xx: stored under the key like any answer, with `after_effect` the endpoint ran
  first; 409 with `code`, e.g. lock_timeout: not run, not stored) or, with `drop`, run and store
  the answer but close the connection without it;
- DELETE /_config/data also forgets stored idempotency keys and faults (and releases holds);
  DELETE /_config/faults forgets the faults only.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import pickle
import sys
from dataclasses import dataclass, field

from aiohttp import web

import localstripe.resources as resources
from localstripe.server import app

PORT, STATE_FILE = int(sys.argv[1]), sys.argv[2]
store = resources.store
idempotency: dict[str, tuple[str, int, bytes, str]] = {}
in_flight: dict[str, str] = {}  # key -> request digest, while its first request executes


@dataclass
class Fault:
    id: str
    path: str
    times: int = 1
    status: int | None = None
    code: str | None = None
    delay: float = 0.0
    hold: bool = False
    drop: bool = False
    after_effect: bool = False
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)


faults: dict[str, Fault] = {}
_fault_ids = itertools.count(1)

# Writing the whole store to disk on every change is slow and shares one /tmp file: save at shutdown only.
resources.Store.dump_to_disk = lambda self: None


def load() -> None:
    if os.path.exists(STATE_FILE):
        with open(STATE_FILE, "rb") as f:
            data, keys = pickle.load(f)
        dict.clear(store)
        dict.update(store, data)
        idempotency.update(keys)


def save() -> None:
    with open(STATE_FILE + ".tmp", "wb") as f:
        pickle.dump((dict(store), idempotency), f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(STATE_FILE + ".tmp", STATE_FILE)


def clear_faults() -> None:
    for fault in faults.values():
        fault.released.set()
    faults.clear()


def take_fault(path: str) -> Fault | None:
    for fault in faults.values():
        if fault.path == path and fault.times > 0:
            fault.times -= 1
            return fault
    return None


def stripe_error(status: int, type_: str, message: str, code: str | None = None) -> web.Response:
    error = {"type": type_, "message": message}
    if code:
        error["code"] = code
    return web.json_response({"error": error}, status=status)


@web.middleware
async def idempotency_middleware(request: web.Request, handler):  # noqa: ANN001, ANN201
    if request.method == "DELETE" and request.path == "/_config/data":
        idempotency.clear()
        clear_faults()
        return await handler(request)
    if request.method != "POST" or request.path.startswith("/_config/"):
        return await handler(request)
    key = request.headers.get("Idempotency-Key")
    body = await request.read()
    digest = hashlib.sha256(request.path.encode() + b"?" + body).hexdigest()
    slot = request.headers.get("Authorization", "") + key if key else None
    if slot is not None:
        stored = idempotency.get(slot)
        first_digest = stored[0] if stored is not None else in_flight.get(slot)
        if first_digest is not None and first_digest != digest:
            return stripe_error(400, "idempotency_error", "Keys for idempotent requests can only be used with the "
                                "same parameters they were first used with.")
        if stored is not None:
            return web.Response(body=stored[2], status=stored[1], content_type="application/json",
                                headers={"Idempotent-Replayed": "true"})
        if slot in in_flight:
            # Stripe's code and message; its documentation does not say the error's `type` for this
            # one (the SDK raises a plain APIError for any 409, whatever the type).
            return stripe_error(409, "idempotency_error",
                                "There is currently another in-progress request using this Idempotent Key "
                                "(that probably means you submitted twice, and the other request is still "
                                f"going through): {key}. Please try again later.", code="idempotency_key_in_use")
        in_flight[slot] = digest
    try:
        fault = take_fault(request.path)
        if fault is not None and fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.hold:
            fault.entered.set()
            await fault.released.wait()
        if fault is not None and fault.status == 409:  # a conflict: the endpoint never started
            response = stripe_error(409, "invalid_request_error", "The object is busy (injected fault).",
                                    code=fault.code)
        elif fault is not None and fault.status is not None and not fault.after_effect:
            response = stripe_error(fault.status, "api_error", "An unknown error occurred (injected fault).")
        else:
            response = await handler(request)
            if fault is not None and fault.status is not None:  # the endpoint ran, yet the answer is a 5xx
                response = stripe_error(fault.status, "api_error", "An unknown error occurred (injected fault).")
        # Stored once the endpoint started: its answer, 402 declines and 5xx included (not 400s, see above).
        if slot is not None and (response.status < 400 or response.status == 402 or response.status >= 500):
            idempotency[slot] = (digest, response.status, response.body, "")
        if fault is not None and fault.drop:
            request.transport.abort()  # the answer is lost on the way back: the client sees a dropped connection
        return response
    finally:
        if slot is not None:
            in_flight.pop(slot, None)


async def add_fault(request: web.Request) -> web.Response:
    spec = await request.json()
    status = spec.get("status")
    if status is not None and not (500 <= int(status) <= 599 or int(status) == 409):
        return web.json_response({"error": "status must be a 5xx or 409"}, status=400)
    fault = Fault(id=f"fault_{next(_fault_ids)}", path=spec["path"], times=int(spec.get("times", 1)),
                  status=int(status) if status is not None else None, code=spec.get("code"),
                  delay=float(spec.get("delay", 0)),
                  hold=bool(spec.get("hold")), drop=bool(spec.get("drop")),
                  after_effect=bool(spec.get("after_effect")))
    faults[fault.id] = fault
    return web.json_response({"id": fault.id})


async def fault_entered(request: web.Request) -> web.Response:
    fault = faults.get(request.match_info["id"])
    if fault is None:
        return web.json_response({"error": "no such fault"}, status=404)
    try:
        await asyncio.wait_for(fault.entered.wait(), float(request.query.get("timeout", "30")))
    except TimeoutError:
        return web.json_response({"entered": False}, status=408)
    return web.json_response({"entered": True})


async def release_fault(request: web.Request) -> web.Response:
    fault = faults.get(request.match_info["id"])
    if fault is None:
        return web.json_response({"error": "no such fault"}, status=404)
    fault.released.set()
    return web.json_response({"released": True})


async def delete_faults(_request: web.Request) -> web.Response:
    clear_faults()
    return web.json_response({"deleted": True})


async def on_cleanup(_app: web.Application) -> None:
    save()


app.middlewares.insert(0, idempotency_middleware)
app.router.add_post("/_config/faults", add_fault)
app.router.add_get("/_config/faults/{id}/entered", fault_entered)
app.router.add_post("/_config/faults/{id}/release", release_fault)
app.router.add_delete("/_config/faults", delete_faults)
app.on_cleanup.append(on_cleanup)
load()
web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None, handle_signals=True)
