"""Bar charts as server-rendered SVG: no script, no library, nothing inline for the CSP to
refuse (colours come from ``site.css`` by class).

Each chart is ``role="img"`` with a ``<title>`` naming what it shows, and each bar has its own
``<title>`` with its exact figures (a tooltip, and what a screen reader reads); the page puts
the same figures in a table next to it.
"""

from __future__ import annotations

from markupsafe import Markup, escape

from minitoolai.ledger.store.base import UsageSum
from minitoolai.web.templating import usd

WIDTH = 720
HEIGHT = 180
LABELS = 16  # space under the bars for the day labels
ROW = 26  # one model's row
MAX_BAR = 56  # a day's bar is never wider than this, however few days there are


def _tip(item: UsageSum) -> str:
    noun = "request" if item.requests == 1 else "requests"
    return f"{item.label}: {usd(item.cost)} ({item.requests} {noun})"


def day_bars(days: list[UsageSum], chart_id: str = "chart-days") -> Markup:
    """Spending per day, oldest on the left: one bar per day that had requests."""
    top = max((d.cost for d in days), default=0) or 1
    step = WIDTH / max(len(days), 1)
    gap = min(step * 0.2, 4.0)
    every = max(1, len(days) // 6)  # at most ~7 day labels, so they never overlap
    parts = [
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {HEIGHT + LABELS}"'
        f' role="img" aria-labelledby="{chart_id}-title">',
        f'<title id="{chart_id}-title">Spending per day, {len(days)} days</title>',
        f'<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>',
    ]
    width = min(step - gap, MAX_BAR)
    for i, day in enumerate(days):
        height = max(HEIGHT * day.cost / top, 1.0)
        x = i * step + (step - width) / 2  # centred in its slot
        parts.append(
            f'<rect class="bar" data-day="{escape(day.label)}" x="{x:.1f}"'
            f' y="{HEIGHT - height:.1f}" width="{width:.1f}" height="{height:.1f}">'
            f"<title>{escape(_tip(day))}</title></rect>"
        )
        if i % every == 0 or i == len(days) - 1:
            parts.append(
                f'<text class="tick" x="{x + width / 2:.1f}" y="{HEIGHT + LABELS - 3}"'
                f' text-anchor="middle">{escape(day.label[5:])}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape())


def model_bars(models: list[UsageSum], chart_id: str = "chart-models") -> Markup:
    """Spending per model, costliest first: one labelled horizontal bar each."""
    top = max((m.cost for m in models), default=0) or 1
    label_w, value_w = 210, 110
    room = WIDTH - label_w - value_w
    height = ROW * max(len(models), 1)
    parts = [
        f'<svg class="chart" id="{chart_id}" viewBox="0 0 {WIDTH} {height}"'
        f' role="img" aria-labelledby="{chart_id}-title">',
        f'<title id="{chart_id}-title">Spending per model, {len(models)} models</title>',
    ]
    for i, model in enumerate(models):
        y = i * ROW
        width = max(room * model.cost / top, 1.0)
        name = model.label if len(model.label) <= 28 else model.label[:27] + "…"
        parts.append(
            f'<text class="tick" x="{label_w - 8}" y="{y + ROW * 0.65:.1f}"'
            f' text-anchor="end">{escape(name)}</text>'
            f'<rect class="bar" data-model="{escape(model.label)}" x="{label_w}" y="{y + 4}"'
            f' width="{width:.1f}" height="{ROW - 8}"><title>{escape(_tip(model))}</title></rect>'
            f'<text class="tick" x="{label_w + width + 6:.1f}" y="{y + ROW * 0.65:.1f}">'
            f"{escape(usd(model.cost))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every text in it went through escape())
