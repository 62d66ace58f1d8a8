"""The Account Benefits tab: free washes, upgrades, tokens and credit on the account. They grant free
washes, so an attendant changes them with a Manager PIN, in place."""

from __future__ import annotations

from typing import Any

from clarity_tui.screens.customer_record.base import RecordScreenBase, date_text
from clarity_tui.services.customers import BENEFIT_TYPES, CustomerRecord
from clarity_tui.services.permissions import Permission
from clarity_tui.widgets.customer_forms import ConfirmDialog, FieldSpec, FormDialog, ManagerAsk
from db.models import AccountBenefit

BENEFIT_COLUMNS = [("Type", 16), ("Description", 24), ("Qty", 4), ("Left", 4), ("Expires", 11)]


def benefit_type_choices() -> list[tuple[str, str]]:
    return [(t, t) for t in BENEFIT_TYPES]


class BenefitsTab(RecordScreenBase):
    def _fill_benefits(self, record: CustomerRecord) -> None:
        self._refill_table("benefits-table", [
            (str(b.id), (b.kind, b.description or "", str(b.quantity), str(b.remaining), date_text(b.expires_on)))
            for b in record.benefits
        ])

    def _selected_benefit(self) -> AccountBenefit | None:
        bid = self._selected("benefits-table")
        return next((b for b in self.record.benefits if b.id == bid), None) if self.record else None

    def _benefit_fields(self, kind: str | None = None, description: str = "", quantity: str = "1", remaining: str = "",
                        expires: str = "") -> list[FieldSpec]:
        return [
            FieldSpec("kind", "Type", "select", kind, benefit_type_choices(), placeholder="Choose a type"),
            FieldSpec("description", "Description", value=description),
            FieldSpec("quantity", "Quantity", value=quantity),
            FieldSpec("remaining", "Remaining", value=remaining, placeholder="= quantity"),
            FieldSpec("expires_on", "Expires", value=expires, placeholder="YYYY-MM-DD"),
        ]

    def _benefit_ask(self, what: str, entity_id: Any) -> ManagerAsk:
        return ManagerAsk(Permission.BENEFIT, "benefit.edit", entity="customer_benefit", entity_id=entity_id,
                          why=f"{what} for {self.record.name if self.record else 'this customer'}.")

    def _new_benefit(self) -> None:
        cid = self._loaded_id()
        dialog = FormDialog("New account benefit", self._benefit_fields(), lambda v, who: self.service().add_benefit(
            who, cid, v["kind"] or "", v["description"], v["quantity"], v["remaining"], v["expires_on"]),
            approval=self._benefit_ask("Add an account benefit", None))
        self._dialog(dialog, "Benefit added.")

    def _edit_benefit(self) -> None:
        b = self._selected_benefit()
        if b is None or b.id is None:
            self.notify("No benefit to edit: add one with Ctrl+N.", severity="warning")
            return
        bid = b.id
        dialog = FormDialog("Benefit properties", self._benefit_fields(
            b.kind, b.description or "", str(b.quantity), str(b.remaining), b.expires_on.isoformat() if b.expires_on else ""),
            lambda v, who: self.service().update_benefit(who, bid, v["kind"] or "", v["description"], v["quantity"],
                                                         v["remaining"], v["expires_on"]),
            approval=self._benefit_ask("Change an account benefit", bid))
        self._dialog(dialog, "Benefit saved.")

    def _delete_benefit(self) -> None:
        b = self._selected_benefit()
        if b is None or b.id is None:
            self.notify("No benefit to remove.", severity="warning")
            return
        bid = b.id
        ask = self._benefit_ask("Remove an account benefit", bid)

        def answered(ok: bool | None) -> None:
            if ok:
                self._approve_then_run(ask, lambda svc, who: svc.remove_benefit(who, bid), "Benefit removed.")

        self.app.push_screen(ConfirmDialog(f"Remove the benefit '{b.kind}' ({b.remaining} left)?", yes="Remove"), answered)
