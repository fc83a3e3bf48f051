"""The daily compliance trend as a small, self-contained SVG (no scripts, no external refs).

Days without complete evidence are drawn as shaded bands and break the line, so a gap is
never bridged by interpolation.

Usage::

    svg = trend_svg([(date(2026, 9, 1), 98.5), (date(2026, 9, 2), None)], title="acme")
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from html import escape

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 56, 16, 28, 44


def _fmt(value: float) -> str:
    # Fixed precision keeps the bytes identical between rebuilds.
    return f"{value:.1f}"


def trend_svg(
    points: Sequence[tuple[date, float | None]], title: str, notice: str | None = None
) -> str:
    """One point per day in the window; `None` means no complete evidence that day.

    `notice` (the emulator warning) is drawn in the chart, so the standalone file carries it.
    """
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    count = max(len(points), 1)
    step = plot_w / count
    low = _y_floor([pct for _day, pct in points if pct is not None])

    def x_at(index: int) -> float:
        return LEFT + step * (index + 0.5)

    def y_at(pct: float) -> float:
        return TOP + plot_h * (100.0 - pct) / (100.0 - low)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'role="img" aria-labelledby="trend-title" class="trend">',
        f'<title id="trend-title">{escape(title)}</title>',
        f'<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for tick in _y_ticks(low):
        y = _fmt(y_at(tick))
        parts.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y}" y2="{y}" class="grid"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{y}" class="ylab">{tick:g}%</text>')
    for index, (_day, pct) in enumerate(points):
        if pct is None:
            parts.append(
                f'<rect x="{_fmt(LEFT + step * index)}" y="{TOP}" width="{_fmt(step)}" '
                f'height="{plot_h}" class="gap"/>'
            )
    for segment in _segments(points):
        coords = " ".join(f"{_fmt(x_at(i))},{_fmt(y_at(pct))}" for i, pct in segment)
        if len(segment) == 1:
            i, pct = segment[0]
            parts.append(
                f'<circle cx="{_fmt(x_at(i))}" cy="{_fmt(y_at(pct))}" r="2.5" class="dot"/>'
            )
        else:
            parts.append(f'<polyline points="{coords}" class="line"/>')
    labels = _x_label_indexes(points)
    for index in labels:
        day = points[index][0]
        # The outermost labels hang inwards so they are not cut off at the edges.
        anchor = "start" if index == 0 else "end" if index == len(points) - 1 else "middle"
        parts.append(
            f'<text x="{_fmt(x_at(index))}" y="{HEIGHT - BOTTOM + 18}" class="xlab" '
            f'text-anchor="{anchor}">{day.isoformat()}</text>'
        )
    parts.append(
        f'<text x="{LEFT}" y="{TOP - 10}" class="legend">compliance % per UTC day '
        "(shaded: no complete evidence)</text>"
    )
    if notice:
        parts.append(
            f'<text x="{WIDTH - RIGHT}" y="{TOP - 10}" class="notice" text-anchor="end" '
            f'font-weight="700" fill="#8a5a00">{escape(notice)}</text>'
        )
    parts.append("</svg>")
    return "\n".join(parts)


def _y_floor(values: list[float]) -> float:
    """Zoom in when everything is high, so a dip from 100% to 97% is visible."""
    lowest = min(values, default=0.0)
    for floor in (90.0, 75.0, 50.0):
        if lowest >= floor:
            return floor
    return 0.0


def _y_ticks(low: float) -> list[float]:
    # Round steps (2, 5, 10 or 20 points) so labels read 90%, 92%, … rather than 93.75%.
    span = 100.0 - low
    step = {10.0: 2.0, 25.0: 5.0, 50.0: 10.0}.get(span, 20.0)
    return [low + step * k for k in range(int(span / step) + 1)]


def _segments(points: Sequence[tuple[date, float | None]]) -> list[list[tuple[int, float]]]:
    segments: list[list[tuple[int, float]]] = []
    current: list[tuple[int, float]] = []
    for index, (_day, pct) in enumerate(points):
        if pct is None:
            if current:
                segments.append(current)
            current = []
        else:
            current.append((index, pct))
    if current:
        segments.append(current)
    return segments


def _x_label_indexes(points: Sequence[tuple[date, float | None]]) -> list[int]:
    if not points:
        return []
    wanted = min(len(points), 6)
    if wanted == 1:
        return [0]
    last = len(points) - 1
    return sorted({round(last * k / (wanted - 1)) for k in range(wanted)})
