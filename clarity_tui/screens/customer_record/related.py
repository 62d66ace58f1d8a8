"""The Related tab: household, business, contact and sold-for relationships with other customers."""

from __future__ import annotations

from textual import work

from clarity_tui.messages import SearchCustomers
from clarity_tui.screens.customer_record.base import RecordScreenBase
from clarity_tui.services.customers import RELATIONSHIP_LABELS, CustomerRecord, RelatedView
from clarity_tui.widgets.customer_forms import FieldSpec, FormDialog

RELATED_COLUMNS = [("Relationship", 14), ("Customer #", 10), ("Name", 30), ("Side", 10)]


def _kind_choices() -> list[tuple[str, str]]:
    return [(label, kind.value) for kind, label in RELATIONSHIP_LABELS.items()]


class RelatedTab(RecordScreenBase):
    def _fill_related(self, record: CustomerRecord) -> None:
        self._refill_table("related-table", [
            (str(r.relationship_id), (r.label, r.other_number, r.other_name, "added here" if r.outgoing else "added there"))
            for r in record.related
        ])

    def _selected_related(self) -> RelatedView | None:
        rid = self._selected("related-table")
        return next((r for r in self.record.related if r.relationship_id == rid), None) if self.record else None

    def _new_related(self) -> None:
        cid = self._loaded_id()

        def search(dialog: FormDialog) -> None:
            def picked(other_id: int | None) -> None:
                if other_id is not None:
                    self._fill_number(dialog, other_id)

            self.app.post_message(SearchCustomers(pick=picked))  # the app opens the search as a picker

        dialog = FormDialog("Add a related customer", [
            FieldSpec("kind", "Relationship", "select", "household", _kind_choices()),
            FieldSpec("other", "Customer #", placeholder="e.g. C100012, or Search"),
        ], lambda v: self.service().add_relationship(self.actor, cid, v["other"] or "", v["kind"] or ""),
            extra={"Search": search})
        self._dialog(dialog, lambda r: self.notify(f"Related {r.other_name} ({r.label.lower()})."))

    @work(thread=True, group="record-fill", exit_on_error=False)
    def _fill_number(self, dialog: FormDialog, other_id: int) -> None:
        record = self.service().record(other_id)
        self.app.call_from_thread(dialog.set_value, "other", record.customer.customer_number)

    def _edit_related(self) -> None:
        rel = self._selected_related()
        if rel is None:
            self.notify("No relationship to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog(f"Relationship with {rel.other_name}", [
            FieldSpec("kind", "Relationship", "select", rel.kind, _kind_choices()),
        ], lambda v: self.service().update_relationship(self.actor, rel.relationship_id, v["kind"] or ""))
        self._dialog(dialog, "Relationship saved.")

    def _delete_related(self) -> None:
        rel = self._selected_related()
        if rel is None:
            self.notify("No relationship to remove.", severity="warning")
            return
        self._confirm_then(f"Remove the {rel.label.lower()} relationship with {rel.other_name} (#{rel.other_number})?",
                           lambda svc: svc.remove_relationship(self.actor, rel.relationship_id), "Relationship removed.", yes="Remove")
