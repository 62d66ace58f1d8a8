"""Run localstripe on 127.0.0.1 (not every interface, unlike `python -m localstripe`).

Usage: python localstripe_server.py PORT STATE_FILE

Test-only additions around the real localstripe app:
- state is kept in STATE_FILE (not the shared /tmp/localstripe.pickle), loaded at
  start and written at shutdown, so a stopped and restarted server keeps its data;
- Stripe's documented idempotency (which localstripe lacks): a POST with an
  Idempotency-Key returns the stored response of the first request with that key;
  a different body with the same key gets Stripe's 400 idempotency_error;
- DELETE /_config/data also forgets stored idempotency keys.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys

from aiohttp import web

import localstripe.resources as resources
from localstripe.server import app

PORT, STATE_FILE = int(sys.argv[1]), sys.argv[2]
store = resources.store
idempotency: dict[str, tuple[str, int, bytes, str]] = {}

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


@web.middleware
async def idempotency_middleware(request: web.Request, handler):  # noqa: ANN001, ANN201
    if request.method == "DELETE" and request.path == "/_config/data":
        idempotency.clear()
        return await handler(request)
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key:
        return await handler(request)
    body = await request.read()
    digest = hashlib.sha256(request.path.encode() + b"?" + body).hexdigest()
    auth = request.headers.get("Authorization", "")
    stored = idempotency.get(auth + key)
    if stored is not None:
        if stored[0] != digest:
            return web.json_response({"error": {
                "type": "idempotency_error",
                "message": "Keys for idempotent requests can only be used with the same parameters they were "
                           "first used with."}}, status=400)
        return web.Response(body=stored[2], status=stored[1], content_type="application/json",
                            headers={"Idempotent-Replayed": "true"})
    response = await handler(request)
    # Stripe stores the result once the request started executing (not 400 validation errors, not 5xx).
    if response.status < 400 or response.status == 402:
        idempotency[auth + key] = (digest, response.status, response.body, "")
    return response


async def on_cleanup(_app: web.Application) -> None:
    save()


app.middlewares.insert(0, idempotency_middleware)
app.on_cleanup.append(on_cleanup)
load()
web.run_app(app, host="127.0.0.1", port=PORT, print=None, access_log=None, handle_signals=True)
