"""The command palette's commands (every action has one): the app's own, and a session's on its screen.
Kept out of app.py, which holds the keys and navigation."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand

if TYPE_CHECKING:
    from clarity_tui.app import ClarityApp
    from clarity_tui.screens.session_detail import SessionDetailScreen


def app_commands(app: ClarityApp) -> Iterable[SystemCommand]:
    yield SystemCommand("Lanes board: refresh", "Re-read every lane from the database", app._refresh_board)
    yield SystemCommand("Hardware: devices and tests",
                        "Status of the card reader, signature pad, plate camera and tunnel controller; test each (F9)",
                        app.action_hardware)
    yield SystemCommand("Customers: search", "Find a customer by name, phone, email, number or plate (F7)",
                        app.action_search_customers)
    yield SystemCommand("Operators: who is signed in", "Shifts: who is signed in at which terminal (Ctrl+W)",
                        app.action_shifts)
    yield SystemCommand("Audit trail", "Every change: who, where, when, before and after; filter it (Ctrl+U)",
                        app.action_audit)
    yield SystemCommand("End-of-shift report",
                        "Memberships sold and migrated, single washes, commissions, declines, pending syncs; CSV (Ctrl+E)",
                        app.action_shift_report)
    yield SystemCommand("Dashboard", "Managers: conversion, visits, renewals, churn, sales per operator; 30 days (Ctrl+D)",
                        app.action_dashboard)
    yield SystemCommand("Operators: manage", "Managers: add operators, set PINs, unlock, disable (Ctrl+K)",
                        app.action_operators)


def session_commands(screen: SessionDetailScreen) -> Iterable[SystemCommand]:
    yield SystemCommand("Purchase membership", "Sell a membership for this vehicle: plan, card, terms, signature (F2)",
                        screen.action_purchase)
    yield SystemCommand("Customer record", "Open the record of this vehicle's customer (F4)", screen.action_customer)
    yield SystemCommand("Mark done", "This vehicle has been served: take it off the board (F6)", screen.action_done)
    yield SystemCommand("Migrate membership", "Move this vehicle's legacy POS member over: no charge today (F3)",
                        screen.action_migrate)
    yield SystemCommand("Single wash", "Sell a package and extras, paid on the card reader (W)",
                        screen.action_single_wash)
    yield SystemCommand("Send to tunnel", "A paid or entitled car: send its wash and open the gate (G)",
                        screen.action_send_wash)
