"""One start of the lane app in a fresh interpreter, as `clarity-tui` starts it (tests/site/test_boot_race.py).

Usage: python tests/site/boot_child.py DATABASE_URL

The CLI's fast path: a BootConfig, the PIN pad over the first board, the full boot in a worker while
the pad loads the operators in another. Headless; exits as soon as the board is painted, the boot is
done and the pad lists the operators. Prints one line: "BOARD" (exit 0) or "FAILED: why" (exit 1).
"""

from __future__ import annotations

import os
import sys


def main(url: str) -> int:
    from clarity_tui.app import ClarityApp
    from clarity_tui.bootconfig import resolve_boot_config
    from clarity_tui.screens.board import BoardScreen
    from clarity_tui.screens.signin import SignInScreen

    painted: list[bool] = []
    pad_said: list[str] = []
    say = SignInScreen._say

    def heard(screen: SignInScreen, text: str, *args: object) -> None:  # what the pad told the person
        pad_said.append(text)
        say(screen, text, *args)

    SignInScreen._say = heard  # type: ignore[method-assign]

    class LaneApp(ClarityApp):
        def on_board_screen_painted(self, message: BoardScreen.Painted) -> None:
            painted.append(True)
            super().on_board_screen_painted(message)

    app = LaneApp(boot=resolve_boot_config(None, url, None), require_signin=True)

    def ready() -> str | None:
        if app.boot_error:
            return f"boot failed: {app.boot_error}"
        for said in pad_said:
            if "Cannot read the operators" in said:
                return f"PIN pad: {said}"
        pad = next((s for s in app.screen_stack if isinstance(s, SignInScreen)), None)
        if painted and app.is_booted and pad is not None and pad._choices:
            return "BOARD"
        return None

    async def auto_pilot(pilot) -> None:  # noqa: ANN001
        import asyncio

        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        while (result := ready()) is None and loop.time() < deadline:
            await asyncio.sleep(0.02)
        result = result or "timed out"
        print(result if result == "BOARD" else f"FAILED: {result}", flush=True)
        # Done: the shutdown (closing the change feed and devices) is not what this start measures.
        os._exit(0 if result == "BOARD" else 1)

    app.run(headless=True, size=(80, 24), auto_pilot=auto_pilot)
    # Only an app that ended before it was ready gets here (a crash, a failed boot).
    print(f"FAILED: the app ended (return code {app.return_code}, boot error {app.boot_error})", flush=True)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
