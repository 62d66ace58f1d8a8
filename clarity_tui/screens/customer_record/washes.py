"""The Washes tab: the customer's washes, member visits and paid single washes, on every car (issue 18):
date, plate, site, lane and package. Read-only; read in a worker from VisitService.history."""

from __future__ import annotations

from textual import work

from clarity_tui.screens.customer_record.base import RecordScreenBase
from clarity_tui.services.visits import VisitService, WashHistoryRow
from clarity_tui.wiring import services_of

WASH_COLUMNS = [("Date", 17), ("Plate", 10), ("Site", 16), ("Lane", 9), ("Package", 12), ("Kind", 7)]
KIND_LABELS = {"member": "Member", "retail": "Single"}


class WashesTab(RecordScreenBase):
    def _fill_washes(self, customer_id: int) -> None:
        self._read_washes(customer_id)

    @work(thread=True, exclusive=True, group="record-washes", exit_on_error=False)
    def _read_washes(self, customer_id: int) -> None:
        washes = VisitService.from_services(services_of(self)).history(customer_id=customer_id)
        self.app.call_from_thread(self._show_washes, washes)

    def _show_washes(self, washes: list[WashHistoryRow]) -> None:
        self._refill_table("washes-table", [
            (str(w.wash_id), (w.at.strftime("%Y-%m-%d %H:%M"), w.plate, w.site_name or "-", w.lane_name or "-",
                              w.package_name or "-", KIND_LABELS.get(w.kind, w.kind)))
            for w in washes
        ])
