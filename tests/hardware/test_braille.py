"""Braille rendering of strokes."""

from __future__ import annotations

from clarity_tui.widgets.braille import render_braille


def test_a_dot_in_each_corner() -> None:
    lines = render_braille([[(0.0, 0.0)], [(1.0, 1.0)]], cols=2, rows=1)
    assert lines == [chr(0x2801) + chr(0x2880)]


def test_a_line_is_continuous_between_samples() -> None:
    lines = render_braille([[(0.0, 0.5), (1.0, 0.5)]], cols=10, rows=2)
    assert len(lines) == 2 and all(len(line) == 10 for line in lines)
    assert all(ch != chr(0x2800) for ch in lines[1])  # every cell of the middle row has dots


def test_aspect_keeps_the_shape_centred() -> None:
    # A 1:1 pad in a wide area: the drawing stays in the middle columns.
    lines = render_braille([[(0.0, 0.0), (1.0, 0.0)]], cols=20, rows=2, aspect=1.0)
    used = [i for i, ch in enumerate(lines[0]) if ch != chr(0x2800)]
    assert used and min(used) >= 7 and max(used) <= 12


def test_empty_area() -> None:
    assert render_braille([[(0.5, 0.5)]], 0, 3) == []
