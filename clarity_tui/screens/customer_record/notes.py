"""The Notes tab: notes about the customer; an operator notice is shown wherever the customer is."""

from __future__ import annotations

from clarity_tui.screens.customer_record.base import RecordScreenBase
from clarity_tui.services.customers import CustomerRecord, NoteView
from clarity_tui.widgets.customer_forms import FieldSpec, FormDialog

NOTE_COLUMNS = [("Note", 50), ("Notice", 7), ("Author", 14)]


class NotesTab(RecordScreenBase):
    def _fill_notes(self, record: CustomerRecord) -> None:
        self._refill_table("notes-table", [
            (str(n.id), (n.body.replace("\n", " "), "⚑ yes" if n.operator_notice else "", n.author or "-"))
            for n in record.notes
        ])

    def _selected_note(self) -> NoteView | None:
        nid = self._selected("notes-table")
        return next((n for n in self.record.notes if n.id == nid), None) if self.record else None

    def _new_note(self) -> None:
        cid = self._loaded_id()
        dialog = FormDialog("New note", [FieldSpec("body", "Note"), FieldSpec("operator_notice", "Operator notice", "check", False)],
                            lambda v: self.service().add_note(self.actor, cid, v["body"], v["operator_notice"]))
        self._dialog(dialog, "Note added.")

    def _edit_note(self) -> None:
        n = self._selected_note()
        if n is None:
            self.notify("No note to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Edit note", [FieldSpec("body", "Note", value=n.body),
                                          FieldSpec("operator_notice", "Operator notice", "check", n.operator_notice)],
                            lambda v: self.service().update_note(self.actor, n.id, v["body"], v["operator_notice"]))
        self._dialog(dialog, "Note saved.")

    def _delete_note(self) -> None:
        n = self._selected_note()
        if n is None:
            self.notify("No note to delete.", severity="warning")
            return
        self._confirm_then("Delete this note?", lambda svc: svc.delete_note(self.actor, n.id), "Note deleted.")
