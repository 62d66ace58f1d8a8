"""A braille-dot canvas: each terminal cell shows 2x4 dots, enough to draw a signature live."""

from __future__ import annotations

from collections.abc import Sequence

from rich.text import Text
from textual.reactive import reactive
from textual.widget import Widget

# Bit for the dot at (column, row) inside one braille cell (Unicode U+2800 block).
_DOT_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))

Points = Sequence[tuple[float, float]]


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """Bresenham: the dots between two samples, so fast pen moves stay continuous."""
    points = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    err = dx + dy
    while True:
        points.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return points
        e2 = 2 * err
        if e2 >= dy:
            err += dy
            x0 += sx
        if e2 <= dx:
            err += dx
            y0 += sy


def render_braille(strokes: Sequence[Points], cols: int, rows: int, aspect: float | None = None) -> list[str]:
    """Strokes in a 0..1 box -> `rows` strings of `cols` braille characters.

    With `aspect` (width / height of the pad), the drawing keeps its shape inside the
    cells (braille dots are roughly square), centred.
    """
    if cols <= 0 or rows <= 0:
        return []
    width, height = cols * 2, rows * 4
    box_w, box_h = float(width - 1), float(height - 1)
    if aspect:
        if box_w / max(box_h, 1) > aspect:
            box_w = box_h * aspect
        else:
            box_h = box_w / aspect
    off_x, off_y = (width - 1 - box_w) / 2, (height - 1 - box_h) / 2
    cells = [[0] * cols for _ in range(rows)]

    def plot(px: int, py: int) -> None:
        if 0 <= px < width and 0 <= py < height:
            cells[py // 4][px // 2] |= _DOT_BITS[px % 2][py % 4]

    for stroke in strokes:
        previous = None
        for x, y in stroke:
            point = (round(off_x + min(1.0, max(0.0, x)) * box_w), round(off_y + min(1.0, max(0.0, y)) * box_h))
            if previous is None:
                plot(*point)
            else:
                for px, py in _line(*previous, *point):
                    plot(px, py)
            previous = point
    return ["".join(chr(0x2800 + bits) for bits in row) for row in cells]


class BrailleCanvas(Widget):
    """Shows strokes (lists of normalised (x, y)); assign `strokes` to redraw."""

    DEFAULT_CSS = """
    BrailleCanvas { height: 1fr; border: round $panel-lighten-2; color: $foreground; }
    BrailleCanvas:focus { border: round $accent; }
    """

    strokes: reactive[tuple[tuple[tuple[float, float], ...], ...]] = reactive((), layout=False)
    aspect: reactive[float | None] = reactive(None)

    def __init__(self, placeholder: str = "", *, name: str | None = None, id: str | None = None,
                 classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self.placeholder = placeholder

    def set_strokes(self, strokes: Sequence[Points], aspect: float | None = None) -> None:
        self.aspect = aspect
        self.strokes = tuple(tuple((float(x), float(y)) for x, y in s) for s in strokes)

    def clear(self) -> None:
        self.strokes = ()

    def render(self) -> Text:
        size = self.size  # the content area, inside the border
        if not self.strokes:
            return Text(self.placeholder, style="dim")
        lines = render_braille(self.strokes, size.width, size.height, self.aspect)
        return Text("\n".join(lines))
