"""One contract for every PaymentGateway: the simulated one (on a SQLite file) and StripeGateway on localstripe.

The shape of python-can's back2back_test: one test class, run against each implementation through a
small backend adapter that knows only how to set the scene (a card, a count of charges, a fault, a
second process holding a key). What the gateway answers is the contract, quoted from Stripe's
documentation (docs.stripe.com/api/idempotent_requests):
  "Stripe's idempotency works by saving the resulting status code and body of the first request made for
  any given idempotency key, regardless of whether it succeeds or fails. Subsequent requests with the same
  key return the same result, including 500 errors."
  "The idempotency layer compares incoming parameters to those of the original request and errors if
  they're not the same to prevent accidental misuse."
  "We save results only after the execution of an endpoint begins. If incoming parameters fail
  validation, or the request conflicts with another request that's executing concurrently, we don't save
  the idempotent result because no API endpoint initiates the execution. You can retry these requests."
Facts about one implementation only are below the class.

`python -m tests.payments.test_gateway_contract ...` is the other process (see `main`).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from clarity_tui.payments import CardToken, CustomerInfo, IdempotencyConflict, PaymentError
from clarity_tui.payments.errors import GatewayConflict, GatewayServerError, GatewayUnavailable, KeyInUse
from tests.helpers import forked
from tests.helpers.localstripe import API_KEY, LocalStripe, localstripe_config, localstripe_fault

ROOT = Path(__file__).resolve().parents[2]
FUTURE = dt.date.today().year + 3
# The contract's steps, by each gateway's own name for them.
SIM_OPERATIONS = {"charge": "payment_intent.create", "refund": "refund.create"}
STRIPE_PATHS = {"charge": "/v1/payment_intents", "refund": "/v1/refunds"}


def other_process(*args: str, env: dict[str, str] | None = None) -> forked.ForkedProcess:
    return forked.popen(["-m", "tests.payments.test_gateway_contract", *args], cwd=ROOT,
                        stdin=forked.PIPE, stdout=forked.PIPE, stderr=forked.PIPE, text=True, env=env)


def outcome(proc: forked.ForkedProcess) -> dict[str, Any]:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


class Held:
    """Another process whose call is in flight at the gateway until `release()`."""

    def __init__(self, proc: forked.ForkedProcess) -> None:
        self.proc = proc

    def wait_in_flight(self) -> None:
        raise NotImplementedError

    def release(self) -> None:
        raise NotImplementedError

    def result(self) -> dict[str, Any]:
        return outcome(self.proc)


class SimHeld(Held):
    # The other process's gateway calls `on_in_flight` inside the key's in-flight window: it says so on
    # stdout, then waits for a line on stdin.
    def wait_in_flight(self) -> None:
        line = self.proc.stdout.readline()
        assert line == "in-flight\n", line + self.proc.stderr.read()

    def release(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()


class StripeHeld(Held):
    # localstripe holds the request (key marked in flight) until the fault is released.
    def __init__(self, proc: forked.ForkedProcess, server: LocalStripe, fault_id: str) -> None:
        super().__init__(proc)
        self.server, self.fault_id = server, fault_id

    def wait_in_flight(self) -> None:
        status, body = localstripe_config(self.server, "GET", f"/_config/faults/{self.fault_id}/entered?timeout=60",
                                          timeout=90)
        assert status == 200 and body == {"entered": True}, (status, body)

    def release(self) -> None:
        localstripe_config(self.server, "POST", f"/_config/faults/{self.fault_id}/release")


class SimBackend:
    name = "simulated"

    def __init__(self, db, url: str) -> None:  # noqa: ANN001
        from clarity_tui.payments.simulated import SimulatedGateway

        self.db, self.url = db, url
        self.gateway = SimulatedGateway(db)

    def reader_card(self) -> CardToken:
        from clarity_tui.payments.simulated import sim_token

        return CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE)

    def succeeded_charges(self) -> list[int]:
        from sqlmodel import select

        from db.models import SimGatewayObject

        with self.db.read() as s:
            rows = s.exec(select(SimGatewayObject).where(SimGatewayObject.kind == "payment_intent")).all()
            return [r.data["amount"] for r in rows if r.data["status"] == "succeeded"]

    def fail_next(self, step: str, status: int = 500, *, after_effect: bool = False) -> None:
        self.gateway.inject_fault(SIM_OPERATIONS[step], status=status, after_effect=after_effect)

    def drop_next(self, step: str) -> None:
        self.gateway.inject_fault(SIM_OPERATIONS[step], drop=True)

    def hold_charge(self, customer: str, pm: str, amount: int, key: str) -> Held:
        return SimHeld(other_process("charge", self.name, self.url, customer, pm, str(amount), key, "--hold"))


class StripeBackend:
    name = "stripe"

    def __init__(self, server: LocalStripe) -> None:
        from clarity_tui.payments.stripe_gateway import StripeGateway

        self.server = server
        self.gateway = StripeGateway(API_KEY, api_base=server.url, timeout=30)

    def reader_card(self) -> CardToken:
        return CardToken("pm_card_visa")

    def succeeded_charges(self) -> list[int]:
        return [c["amount"] for c in self.server.list("charges") if c["status"] == "succeeded"]

    def fail_next(self, step: str, status: int = 500, *, after_effect: bool = False) -> None:
        localstripe_fault(self.server, STRIPE_PATHS[step], status=status, after_effect=after_effect)

    def drop_next(self, step: str) -> None:
        localstripe_fault(self.server, STRIPE_PATHS[step], drop=True)

    def hold_charge(self, customer: str, pm: str, amount: int, key: str) -> Held:
        fault_id = localstripe_fault(self.server, STRIPE_PATHS["charge"], hold=True)
        return StripeHeld(other_process("charge", self.name, self.server.url, customer, pm, str(amount), key),
                          self.server, fault_id)


@pytest.fixture(params=["simulated", "stripe"])
def backend(request: pytest.FixtureRequest):  # noqa: ANN201
    if request.param == "simulated":
        return SimBackend(request.getfixturevalue("sim_file_db"), request.getfixturevalue("sqlite_url"))
    return StripeBackend(request.getfixturevalue("localstripe"))


@contextmanager
def holding(held: Held) -> Iterator[Held]:
    try:
        yield held
    finally:
        if held.proc.poll() is None:  # a failed test: let the other process go, and never leave it behind
            try:
                held.release()
            finally:
                try:
                    held.proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    held.proc.kill()
                    held.proc.wait()


def transient_only(exc: PaymentError, *, cached: bool) -> None:
    assert exc.transient is True
    assert exc.cached_under_key is cached


class TestGatewayContract:
    @staticmethod
    def customer_with_card(backend, ref: str) -> tuple[str, str]:  # noqa: ANN001
        gw = backend.gateway
        cus = gw.ensure_customer(CustomerInfo(ref, "Ada Lovelace"), idempotency_key=f"{ref}:customer")
        saved = gw.save_card(cus, backend.reader_card(), idempotency_key=f"{ref}:card")
        return cus, saved.payment_method_id

    def test_same_key_same_params_returns_the_same_object_and_charges_once(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-1")
        assert gw.ensure_customer(CustomerInfo("C-1", "Ada Lovelace"), idempotency_key="C-1:customer") == cus
        first = gw.charge(cus, pm, 2999, metadata={"order_key": "o-1"}, idempotency_key="o-1:charge")
        assert (first.status, first.amount_cents) == ("succeeded", 2999)
        again = gw.charge(cus, pm, 2999, metadata={"order_key": "o-1"}, idempotency_key="o-1:charge")
        assert again == first
        assert backend.succeeded_charges() == [2999]

    def test_same_key_other_params_is_an_idempotency_conflict(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-2")
        gw.charge(cus, pm, 1500, idempotency_key="o-2:charge")
        with pytest.raises(IdempotencyConflict) as info:
            gw.charge(cus, pm, 1600, idempotency_key="o-2:charge")
        assert info.value.transient is False and info.value.cached_under_key is False
        assert backend.succeeded_charges() == [1500]

    def test_a_key_in_flight_in_another_process_is_key_in_use_then_its_result(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-3")
        with holding(backend.hold_charge(cus, pm, 2500, "o-3:charge")) as held:
            held.wait_in_flight()
            with pytest.raises(KeyInUse) as info:
                gw.charge(cus, pm, 2500, metadata={"order_key": "o-3:charge"}, idempotency_key="o-3:charge")
            assert info.value.code == "idempotency_key_in_use"
            assert isinstance(info.value, GatewayUnavailable)  # what older callers catch as "retry later"
            transient_only(info.value, cached=False)
            assert backend.succeeded_charges() == []  # nothing happened yet, and the 409 was not stored
            held.release()
            theirs = held.result()
        assert theirs["amount"] == 2500
        # The same key afterwards returns the other process's charge; there is only that one.
        mine = gw.charge(cus, pm, 2500, metadata={"order_key": "o-3:charge"}, idempotency_key="o-3:charge")
        assert mine.payment_id == theirs["payment_id"]
        assert backend.succeeded_charges() == [2500]

    def test_a_5xx_is_cached_under_its_key_and_a_new_key_acts(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-4")
        backend.fail_next("charge", 500)
        with pytest.raises(GatewayServerError) as first:
            gw.charge(cus, pm, 1999, metadata={"order_key": "o-4"}, idempotency_key="o-4:charge")
        transient_only(first.value, cached=True)
        assert (first.value.status, first.value.replayed) == (500, False)
        # The fault is spent, yet the same key answers the same 500: it was stored under the key.
        with pytest.raises(GatewayServerError) as again:
            gw.charge(cus, pm, 1999, metadata={"order_key": "o-4"}, idempotency_key="o-4:charge")
        assert (again.value.status, again.value.replayed) == (500, True)
        assert backend.succeeded_charges() == []
        assert gw.find_charge(cus, "o-4") is None  # what the outbox asks before acting under a new key
        fresh = gw.charge(cus, pm, 1999, metadata={"order_key": "o-4"}, idempotency_key="o-4:charge:2")
        assert fresh.status == "succeeded"
        assert backend.succeeded_charges() == [1999]

    def test_a_5xx_after_the_charge_is_cached_and_the_charge_is_found_by_order_key(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-5")
        backend.fail_next("charge", 503, after_effect=True)
        with pytest.raises(GatewayServerError) as info:
            gw.charge(cus, pm, 3999, metadata={"order_key": "o-5"}, idempotency_key="o-5:charge")
        assert info.value.status == 503 and info.value.cached_under_key
        with pytest.raises(GatewayServerError):
            gw.charge(cus, pm, 3999, metadata={"order_key": "o-5"}, idempotency_key="o-5:charge")
        found = gw.find_charge(cus, "o-5")
        assert found is not None and found.amount_cents == 3999
        assert backend.succeeded_charges() == [3999]

    def test_network_dropped_mid_call_the_effect_happened_and_the_same_key_returns_it(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-6")
        backend.drop_next("charge")
        with pytest.raises(GatewayUnavailable) as info:
            gw.charge(cus, pm, 2599, metadata={"order_key": "o-6"}, idempotency_key="o-6:charge")
        assert type(info.value) is GatewayUnavailable  # the answer is lost, not a 5xx
        transient_only(info.value, cached=False)
        assert backend.succeeded_charges() == [2599]  # it went through at the gateway
        retried = gw.charge(cus, pm, 2599, metadata={"order_key": "o-6"}, idempotency_key="o-6:charge")
        assert retried.status == "succeeded"
        assert retried.payment_id == gw.find_charge(cus, "o-6").payment_id
        assert backend.succeeded_charges() == [2599]

    def test_partial_refunds_once_per_key(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-7")
        charge = gw.charge(cus, pm, 3999, idempotency_key="o-7:charge")
        part = gw.refund(charge.payment_id, amount_cents=1000, idempotency_key="o-7:refund:1")
        assert (part.amount_cents, part.status) == (1000, "succeeded")
        assert gw.refund(charge.payment_id, amount_cents=1000, idempotency_key="o-7:refund:1") == part
        # (An amount-less refund after a partial one gives back the rest on Stripe; localstripe gives back the
        # whole amount again, so the contract names the amount.)
        rest = gw.refund(charge.payment_id, amount_cents=2999, idempotency_key="o-7:refund:2")
        assert rest.amount_cents == 2999 and rest.refund_id != part.refund_id
        found = gw.find_refund(charge.payment_id, "o-7:refund:1")
        assert found is not None and (found.refund_id, found.amount_cents) == (part.refund_id, 1000)
        assert gw.find_refund(charge.payment_id, "o-7:refund:3") is None

    def test_find_charge_by_order_key(self, backend) -> None:  # noqa: ANN001
        gw = backend.gateway
        cus, pm = self.customer_with_card(backend, "C-8")
        other, _ = self.customer_with_card(backend, "C-9")
        assert gw.find_charge(cus, "o-8") is None
        gw.charge(cus, pm, 500, metadata={"order_key": "o-7"}, idempotency_key="o-7b:charge")
        charge = gw.charge(cus, pm, 2999, metadata={"order_key": "o-8"}, idempotency_key="o-8:charge")
        found = gw.find_charge(cus, "o-8")
        assert found is not None and (found.payment_id, found.amount_cents) == (charge.payment_id, 2999)
        assert gw.find_charge(other, "o-8") is None


# --- the simulated gateway only ------------------------------------------------------------------------------
def sim_customer_with_card(gw, ref: str) -> tuple[str, str]:  # noqa: ANN001
    from clarity_tui.payments.simulated import sim_token

    cus = gw.ensure_customer(CustomerInfo(ref), idempotency_key=f"{ref}:customer")
    saved = gw.save_card(cus, CardToken(sim_token("ok"), "visa", "4242", 12, FUTURE), idempotency_key=f"{ref}:card")
    return cus, saved.payment_method_id


def test_sim_a_key_left_in_flight_by_a_killed_process_is_taken_over_after_the_lease(sim_file_db,
                                                                                   sqlite_url) -> None:
    from clarity_tui.payments.simulated import SimulatedGateway

    gw = SimulatedGateway(sim_file_db)
    cus, pm = sim_customer_with_card(gw, "C-20")
    proc = other_process("charge", "simulated", sqlite_url, cus, pm, "1200", "o-20:charge", "--hold")
    held = SimHeld(proc)
    try:
        held.wait_in_flight()
    finally:
        proc.send_signal(signal.SIGKILL)  # dies in flight: no answer stored, nothing charged
        proc.wait()
    with pytest.raises(KeyInUse):  # within the lease the key still looks busy
        gw.charge(cus, pm, 1200, metadata={"order_key": "o-20:charge"}, idempotency_key="o-20:charge")
    late = SimulatedGateway(sim_file_db, in_flight_lease=0)  # the lease has run out
    charge = late.charge(cus, pm, 1200, metadata={"order_key": "o-20:charge"}, idempotency_key="o-20:charge")
    assert charge.status == "succeeded" and gw.counts("payment_intent") == 1
    assert gw.charge(cus, pm, 1200, metadata={"order_key": "o-20:charge"}, idempotency_key="o-20:charge") == charge


def test_sim_latency_is_spent_inside_the_in_flight_window(sim_file_db, sqlite_url) -> None:
    """CLARITY_SIM_GATEWAY_LATENCY slows the other process's call after its key is marked in flight."""
    from clarity_tui.payments.simulated import SimulatedGateway

    gw = SimulatedGateway(sim_file_db)
    cus, pm = sim_customer_with_card(gw, "C-21")
    env = {**os.environ, "CLARITY_SIM_GATEWAY_LATENCY": "60"}
    proc = other_process("charge", "simulated", sqlite_url, cus, pm, "1300", "o-21:charge", "--signal", env=env)
    try:
        assert proc.stdout.readline() == "in-flight\n", proc.stderr.read()  # then it sleeps 60 s in the window
        with pytest.raises(KeyInUse):
            gw.charge(cus, pm, 1300, metadata={"order_key": "o-21:charge"}, idempotency_key="o-21:charge")
    finally:
        proc.kill()
        proc.wait()
    assert gw.counts("payment_intent") == 0
    assert SimulatedGateway(sim_file_db, call_latency=0.25).call_latency == 0.25


def test_sim_a_fault_injected_by_another_process_is_taken_here(sim_file_db, sqlite_url) -> None:
    from clarity_tui.payments.simulated import SimulatedGateway

    gw = SimulatedGateway(sim_file_db)
    cus, pm = sim_customer_with_card(gw, "C-22")
    assert outcome(other_process("inject", sqlite_url, "payment_intent.create", "502")) == {"ok": True}
    with pytest.raises(GatewayServerError) as info:
        gw.charge(cus, pm, 1400, idempotency_key="o-22:charge")
    assert info.value.status == 502
    assert gw.charge(cus, pm, 1400, idempotency_key="o-22:charge:2").status == "succeeded"
    with pytest.raises(ValueError):
        gw.inject_fault("payment_intent.create", status=404)
    with pytest.raises(ValueError):
        gw.inject_fault("charge", status=500)


# --- the Stripe gateway only -------------------------------------------------------------------------------
def test_stripe_another_409_is_a_transient_conflict(localstripe) -> None:
    """A 409 that is not idempotency_key_in_use (lock_timeout: the object is busy) is retried later too."""
    backend = StripeBackend(localstripe)
    cus, pm = TestGatewayContract.customer_with_card(backend, "C-30")
    localstripe_fault(localstripe, STRIPE_PATHS["charge"], status=409, code="lock_timeout")
    with pytest.raises(GatewayConflict) as info:
        backend.gateway.charge(cus, pm, 1000, idempotency_key="o-30:charge")
    assert info.value.code == "lock_timeout" and not isinstance(info.value, KeyInUse)
    transient_only(info.value, cached=False)
    # A 409 is not stored under the key: the same key acts once the object is free.
    assert backend.gateway.charge(cus, pm, 1000, idempotency_key="o-30:charge").status == "succeeded"
    assert backend.succeeded_charges() == [1000]


# --- the other process ---------------------------------------------------------------------------------------
def main(argv: list[str]) -> None:
    """charge simulated|stripe DB_URL|API_BASE CUSTOMER PM AMOUNT KEY [--hold | --signal]
         one charge (metadata order_key=KEY); prints {"payment_id", "amount"} or {"error": code}.
         --hold (simulated): print "in-flight" inside the key's in-flight window, then wait for a stdin line;
         --signal (simulated): print "in-flight" there, and go on.
       inject DB_URL OPERATION STATUS   a simulated 5xx fault for the next OPERATION; prints {"ok": true}"""
    from clarity_tui.payments.simulated import SimulatedGateway
    from clarity_tui.payments.stripe_gateway import StripeGateway
    from db.engine import Database

    if argv[0] == "inject":
        SimulatedGateway(Database.from_url(argv[1])).inject_fault(argv[2], status=int(argv[3]))
        print(json.dumps({"ok": True}))
        return
    _, kind, target, customer, pm, amount, key, *flags = argv
    if kind == "simulated":
        gateway: Any = SimulatedGateway(Database.from_url(target))

        def in_flight(operation: str, _key: str) -> None:
            print("in-flight", flush=True)
            if "--hold" in flags:
                sys.stdin.readline()

        if flags:
            gateway.on_in_flight = in_flight
    else:
        gateway = StripeGateway(API_KEY, api_base=target, timeout=90)
    try:
        result = gateway.charge(customer, pm, int(amount), metadata={"order_key": key}, idempotency_key=key)
    except PaymentError as exc:
        print(json.dumps({"error": exc.code}))
        return
    print(json.dumps({"payment_id": result.payment_id, "amount": result.amount_cents}))


if __name__ == "__main__":
    main(sys.argv[1:])
