"""Textual's Footer, rebuilt only when the keys it shows change, and with its keys styled once.

Every focus move republishes the screen's bindings, and Textual's Footer then rebuilds all its keys. Each
new key was restyled twice more: its `compact` flag starts True (a class added on mount) and the data
binding then sets the footer's False (the class removed). On a lane screen those restylings were most of a
focus move's cost, although the keys shown had not changed.
"""

from __future__ import annotations

from collections.abc import Hashable

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class KeyFooter(Footer):
    _composed_keys: Hashable = None

    def _shown_keys(self) -> Hashable:
        app = self.app
        return (self.compact, self.show_command_palette, self.combine_groups, app.ENABLE_COMMAND_PALETTE,
                tuple((binding, app.get_key_display(binding), enabled, tooltip)
                      for _node, binding, enabled, tooltip in self.screen.active_bindings.values() if binding.show))

    async def recompose(self) -> None:
        if not self.is_attached or not self._bindings_ready:
            await super().recompose()
            return
        shown = self._shown_keys()
        if shown == self._composed_keys:
            return
        self._composed_keys = shown
        await super().recompose()

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey):
                # Born with the footer's value, so neither the mount nor the data binding changes a class.
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget
