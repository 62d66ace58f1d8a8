"""The Touchpoints tab: tasks for staff about this customer (what, when, who, done)."""

from __future__ import annotations

from clarity_tui.screens.customer_record.base import RecordScreenBase, date_text
from clarity_tui.services.customers import CustomerRecord, TouchpointView
from clarity_tui.widgets.customer_forms import FieldSpec, FormDialog

TOUCH_COLUMNS = [("Task", 34), ("Due", 11), ("Assignee", 16), ("Done", 5)]


class TouchpointsTab(RecordScreenBase):
    def _fill_touchpoints(self, record: CustomerRecord) -> None:
        self._refill_table("touch-table", [
            (str(t.id), (t.title, date_text(t.due_on), t.assignee_name or "-", "✓" if t.done else ""))
            for t in record.touchpoints
        ])

    def _selected_touchpoint(self) -> TouchpointView | None:
        tid = self._selected("touch-table")
        return next((t for t in self.record.touchpoints if t.id == tid), None) if self.record else None

    def _touch_fields(self, title: str = "", due: str = "", assignee: int | None = None, done: bool = False) -> list[FieldSpec]:
        operators = [(name, oid) for oid, name in (self.record.operators if self.record else [])]
        return [
            FieldSpec("title", "Task", value=title),
            FieldSpec("due_on", "Due", value=due, placeholder="YYYY-MM-DD"),
            FieldSpec("assignee", "Assignee", "select", assignee, operators, placeholder="(nobody)"),
            FieldSpec("done", "Done", "check", done),
        ]

    def _new_touchpoint(self) -> None:
        cid = self._loaded_id()
        dialog = FormDialog("New touchpoint", self._touch_fields(),
                            lambda v: self.service().add_touchpoint(self.actor, cid, v["title"], v["due_on"], v["assignee"], v["done"]))
        self._dialog(dialog, "Touchpoint added.")

    def _edit_touchpoint(self) -> None:
        t = self._selected_touchpoint()
        if t is None:
            self.notify("No touchpoint to edit: add one with Ctrl+N.", severity="warning")
            return
        dialog = FormDialog("Edit touchpoint", self._touch_fields(t.title, t.due_on.isoformat() if t.due_on else "", t.assignee_id, t.done),
                            lambda v: self.service().update_touchpoint(self.actor, t.id, v["title"], v["due_on"], v["assignee"], v["done"]))
        self._dialog(dialog, "Touchpoint saved.")

    def _delete_touchpoint(self) -> None:
        t = self._selected_touchpoint()
        if t is None:
            self.notify("No touchpoint to delete.", severity="warning")
            return
        self._confirm_then(f"Delete the touchpoint '{t.title}'?", lambda svc: svc.delete_touchpoint(self.actor, t.id), "Touchpoint deleted.")
