"""The manager's dashboard (issue 18, item 7): the numbers operators watch, each with a bar per day over the
last 30 site days: conversion, member visits per member this month, renewals and their failures, churn
(cancelled, card failed) and memberships sold per operator.

A thin view: the figures, their words and their rules are services/lane_metrics.py's; the read runs in a
worker, checked there for report.view (managers and support). Styles: the Dashboard section of app.tcss.
Fits 80x24; the operators' list scrolls. Thirty days' figures need no repaint at every plate read: F5 re-reads."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Sparkline, Static

from clarity_tui.widgets.header import ClarityHeader
from clarity_tui.widgets.key_footer import KeyFooter
from clarity_tui.wiring import services_of

if TYPE_CHECKING:
    from textual import getters

    from clarity_tui.app import ClarityApp
    from clarity_tui.services.lane_metrics import Chart, DayFigures

DAYS = 30


class FigureChart(Vertical):
    """One figure: its name, the last day's value and the period's, over its bars (one a day)."""

    def compose(self) -> ComposeResult:
        yield Static("", classes="figure-label", markup=False)
        yield Sparkline([], classes="figure-bars")

    def show(self, chart: Chart) -> None:
        from rich.text import Text

        label = Text.assemble((chart.title, "bold"), " ", (chart.latest, "bold"), "  ", (chart.period, "dim"))
        self.query_one(".figure-label", Static).update(label)
        self.query_one(Sparkline).data = chart.values


class OperatorRow(Horizontal):
    """An operator's memberships sold: their name, a bar a day, the last day's and the period's."""

    def __init__(self, chart: Chart) -> None:
        super().__init__()
        self.chart = chart

    def compose(self) -> ComposeResult:
        yield Static(self.chart.title, classes="operator-name", markup=False)
        yield Sparkline(self.chart.values, classes="operator-bars")
        yield Static(f"{self.chart.latest} today · {self.chart.period}", classes="operator-figures", markup=False)


class DashboardScreen(Screen[None]):
    if TYPE_CHECKING:
        app = getters.app(ClarityApp)

    BINDINGS = [
        Binding("escape", "back", "Back", id="dashboard.back", tooltip="Back to the lanes board"),
        Binding("f5,r", "reload", "Refresh", id="dashboard.refresh", tooltip="Re-read the figures"),
    ]

    def __init__(self) -> None:
        super().__init__(id="dashboard")
        self.days: list[DayFigures] | None = None

    def compose(self) -> ComposeResult:
        yield ClarityHeader(show_clock=False, icon="≋")
        yield Static("Reading the last 30 days…", id="dashboard-title", markup=False)
        from clarity_tui.services.lane_metrics import CHART_KEYS

        with Grid(id="dashboard-figures"):
            for key in CHART_KEYS:
                yield FigureChart(id=f"figure-{key}")
        yield Static("Memberships sold, per operator", id="dashboard-operators-title", markup=False)
        yield VerticalScroll(id="dashboard-operators")
        yield KeyFooter()

    def on_mount(self) -> None:
        self.sub_title = "Dashboard"
        self.reload()

    def action_back(self) -> None:
        self.dismiss()

    def action_reload(self) -> None:
        self.reload()

    @work(thread=True, exclusive=True, group="dashboard", exit_on_error=False)
    def reload(self) -> None:
        from clarity_tui.services.lane_metrics import charts, figures_for, operator_charts
        from clarity_tui.services.permissions import PermissionDenied
        from clarity_tui.sitetime import zone_label

        services = services_of(self)
        zone = services.settings.site.zone
        try:
            days = figures_for(services.db, services.today(), zone, actor=self.app.actor, days=DAYS)
        except PermissionDenied as exc:  # report.view: managers and support
            self.app.call_from_thread(self._refused, str(exc))
            return
        title = f"{DAYS} days to {days[-1].day:%a %b %d, %Y} ({zone_label(zone)}) · today, the {DAYS} days, a bar a day"
        self.app.call_from_thread(self._show, days, title, charts(days), operator_charts(days))

    def _refused(self, message: str) -> None:
        self.query_one("#dashboard-title", Static).update(message)

    def _show(self, days: list[DayFigures], title: str, figures: list[Chart], operators: list[Chart]) -> None:
        self.days = days
        self.query_one("#dashboard-title", Static).update(title)
        for chart in figures:
            self.query_one(f"#figure-{chart.key}", FigureChart).show(chart)
        rows = self.query_one("#dashboard-operators", VerticalScroll)
        rows.remove_children()
        if operators:
            rows.mount_all(OperatorRow(chart) for chart in operators)
        else:
            rows.mount(Static("No memberships sold in these days.", classes="operator-none"))
