"""Bar charts drawn on the server as SVG: no script, no chart library, nothing inline to relax
the CSP for (sizes are attributes; colours come from ``site.css``)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
ROW = 22
LABEL = 110


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: int
    text: str  # the value as shown
    y: int
    width: int  # of the bar, in SVG units


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[Bar]
    width: int
    height: int
    label_width: int


def bars(rows: list[tuple[str, int, str]]) -> Chart:
    """(label, value, shown value) rows as horizontal bars scaled to the largest value."""
    top = max((value for _, value, _ in rows), default=0)
    span = WIDTH - LABEL - 120
    out = [
        Bar(label, value, text, i * ROW, 0 if top <= 0 else max(1, value * span // top))
        for i, (label, value, text) in enumerate(rows)
    ]
    return Chart(out, WIDTH, max(ROW, len(out) * ROW), LABEL)
