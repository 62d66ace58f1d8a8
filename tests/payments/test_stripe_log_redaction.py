"""STRIPE_LOG=debug makes the stripe SDK print request bodies to stderr (a keyed card's number and CVC):
a real keyed tokenize (raw card data access on) against localstripe, in a process of its own, with
every log on, never shows them."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.localstripe import API_KEY

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import logging, sys
api_base, number, expiry, cvc, log_file = sys.argv[1:6]
logging.basicConfig(level=logging.DEBUG, stream=sys.stderr)  # every logger, the stripe SDK's included
to_file = logging.FileHandler(log_file)
to_file.setLevel(logging.DEBUG)
logging.getLogger().addHandler(to_file)
from clarity_tui.payments.cards import ManualCard
from clarity_tui.payments.stripe_gateway import StripeGateway
gw = StripeGateway(%(key)r, api_base=api_base, raw_card_data_access=True)
token = gw.tokenize_card(ManualCard.parse(number, expiry, cvc), idempotency_key="stripe-log:tokenize")
print("TOKEN", token.payment_method_id, token.brand, token.last4)
"""


def test_stripe_log_debug_never_shows_the_card_number_or_cvc(localstripe, tmp_path) -> None:
    number, cvc = "5555555555554444", "918"
    expiry = f"11/{(dt.date.today().year + 2) % 100:02d}"
    log_file = tmp_path / "clarity.log"
    env = {**os.environ, "STRIPE_LOG": "debug"}
    # A fresh interpreter, not a fork (tests/helpers/forked.py): the stripe SDK reads STRIPE_LOG when it is
    # imported, so the test is what a process started with it set does.
    run = subprocess.run([sys.executable, "-c", SCRIPT % {"key": API_KEY}, localstripe.url, number, expiry, cvc,
                          str(log_file)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "TOKEN pm_" in run.stdout and run.stdout.strip().endswith("4444")
    logged = log_file.read_text()
    assert "Post details" in logged  # the bodies were logged (to the logger, redacted)...
    assert "[REDACTED]" in logged
    for where, text in (("stdout", run.stdout), ("stderr", run.stderr), ("log file", logged)):
        assert number not in text, where  # ...but never the number
        assert "555555555555" not in text, where
        for form in (f"cvc%5D={cvc}", f"cvc]={cvc}", f"cvc%5D%3D{cvc}", f"'cvc': '{cvc}'", f'"cvc": "{cvc}"'):
            assert form not in text, (where, form)
