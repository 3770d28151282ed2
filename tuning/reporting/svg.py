"""Hand-written SVG charts: scales, axes and marks, nothing more.

The report has to open offline as one file, and its plots are simple (lines, dots, bars),
so a plotting library would add a dependency for no gain. Charts are inline ``<svg>``
elements with a ``viewBox``: they scale with the page and stay sharp when zoomed, and a
``<title>`` on each mark gives a hover tooltip without any JavaScript.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
STOP_COLORS = {"completed": "#0072B2", "early-stopped": "#E69F00", "failed": "#D55E00"}
GRID = "#e3e6ea"
INK = "#1f2933"
MUTED = "#616e7c"


def fmt_number(value: float) -> str:
    """A short tick label: 0.001 -> 1e-3 style only where plain digits get long."""
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 1e4 or magnitude < 1e-3:
        mantissa, exponent = f"{value:.0e}".split("e")
        return f"{mantissa}e{int(exponent)}"
    return f"{value:.4g}"


def _nice_step(span: float, target: int) -> float:
    raw = span / max(target, 1)
    power = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * power:
            return factor * power
    return 10 * power


class Scale:
    """Maps data values (numbers, or category names for `BandScale`) to pixels on one axis."""

    def __call__(self, value: Any) -> float:
        raise NotImplementedError

    def ticks(self) -> list[tuple[Any, str]]:
        """``(value, label)`` pairs where the axis gets a tick and a grid line."""
        raise NotImplementedError


class LinearScale(Scale):
    """A linear axis; ``nice`` widens the domain to round tick values."""

    def __init__(
        self,
        lo: float,
        hi: float,
        px_lo: float,
        px_hi: float,
        n_ticks: int = 5,
        nice: bool = True,
        integer: bool = False,
    ) -> None:
        if not (math.isfinite(lo) and math.isfinite(hi)):
            lo, hi = 0.0, 1.0
        if hi <= lo:  # one value: give it some room so it sits mid-axis
            pad = abs(lo) * 0.1 or 0.5
            lo, hi = lo - pad, hi + pad
        self.step = _nice_step(hi - lo, n_ticks)
        if integer:  # epochs, trial numbers: a tick at 1.5 would be meaningless
            self.step = max(1.0, round(self.step))
        if nice:
            lo = math.floor(lo / self.step + 1e-9) * self.step
            hi = math.ceil(hi / self.step - 1e-9) * self.step
        self.lo, self.hi, self.px_lo, self.px_hi = lo, hi, px_lo, px_hi

    def __call__(self, value: float) -> float:
        return self.px_lo + (value - self.lo) / (self.hi - self.lo) * (self.px_hi - self.px_lo)

    def ticks(self) -> list[tuple[float, str]]:
        first = math.ceil(self.lo / self.step - 1e-9)
        last = math.floor(self.hi / self.step + 1e-9)
        return [
            (k * self.step, fmt_number(round(k * self.step, 12))) for k in range(first, last + 1)
        ]


class LogScale(Scale):
    """A base-10 log axis with ticks at 1, 2 and 5 times powers of ten where they fit."""

    def __init__(self, lo: float, hi: float, px_lo: float, px_hi: float) -> None:
        lo, hi = max(lo, 1e-300), max(hi, 1e-300)
        if hi <= lo:
            lo, hi = lo / 2, hi * 2
        # A little room past the extremes keeps end points off the frame.
        self.lo, self.hi, self.px_lo, self.px_hi = lo / 1.15, hi * 1.15, px_lo, px_hi

    def __call__(self, value: float) -> float:
        span = math.log10(self.hi) - math.log10(self.lo)
        t = (math.log10(max(value, 1e-300)) - math.log10(self.lo)) / span
        return self.px_lo + t * (self.px_hi - self.px_lo)

    def ticks(self) -> list[tuple[float, str]]:
        decades = range(math.floor(math.log10(self.lo)), math.ceil(math.log10(self.hi)) + 1)
        # Under ~2.5 decades, powers of ten alone leave one or two ticks: add 2x and 5x.
        factors = (1, 2, 5) if math.log10(self.hi / self.lo) <= 2.5 else (1,)
        values = [f * 10.0**d for d in decades for f in factors]
        return [(v, fmt_number(v)) for v in values if self.lo <= v <= self.hi]


class BandScale(Scale):
    """Categories at evenly spaced band centres (categorical parameters, workers, classes).

    The first category sits at ``px_lo``: pass (left, right) for an x axis and (top,
    bottom) for a y axis that lists categories downwards, as a reader expects.
    """

    def __init__(self, categories: Sequence[str], px_lo: float, px_hi: float) -> None:
        self.categories = list(categories)
        self.px_lo, self.px_hi = px_lo, px_hi
        self.band = (px_hi - px_lo) / max(len(self.categories), 1)

    def __call__(self, value: float | str) -> float:
        index = self.categories.index(str(value))
        return self.px_lo + (index + 0.5) * self.band

    def ticks(self) -> list[tuple[Any, str]]:
        return [(c, c) for c in self.categories]


@dataclass
class Chart:
    """One plot area: call the mark methods, then ``svg()``.

    Pixel geometry is fixed in the viewBox (``width`` x ``height``); ``x``/``y`` are set by
    the caller from ``inner_x()``/``inner_y()`` so any scale type fits.
    """

    width: int = 520
    height: int = 300
    title: str = ""
    x_label: str = ""
    y_label: str = ""
    margin: tuple[int, int, int, int] = (12, 16, 46, 58)  # top, right, bottom, left
    x: Scale | None = None
    y: Scale | None = None
    marks: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # (label, colour, shape)

    def inner_x(self) -> tuple[float, float]:
        return self.margin[3], self.width - self.margin[1]

    def inner_y(self) -> tuple[float, float]:
        """Pixel range of the y axis, bottom first (SVG's y grows downwards)."""
        return self.height - self.margin[2], self.margin[0]

    # ---- marks ---------------------------------------------------------------------

    def line(
        self,
        xs: Sequence[float],
        ys: Sequence[float | None],
        color: str,
        width: float = 2.0,
        dash: str | None = None,
        step: bool = False,
        tip: str | None = None,
    ) -> None:
        """A polyline through the points; None breaks the line; ``step`` draws a staircase."""
        assert self.x is not None and self.y is not None
        runs: list[list[tuple[float, float]]] = [[]]
        for xv, yv in zip(xs, ys, strict=True):
            if yv is None or not math.isfinite(yv):
                runs.append([])
                continue
            point = (self.x(xv), self.y(yv))
            if step and runs[-1]:
                runs[-1].append((point[0], runs[-1][-1][1]))
            runs[-1].append(point)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        for run in runs:
            if len(run) < 2:
                continue
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            title = f"<title>{escape(tip)}</title>" if tip else ""
            self.marks.append(
                f'<polyline points="{points}" fill="none" stroke="{color}" '
                f'stroke-width="{width}" stroke-linejoin="round"{dash_attr}>{title}</polyline>'
            )

    def point(
        self,
        xv: float | str,
        yv: float | str,
        color: str,
        shape: str = "circle",
        size: float = 4.0,
        tip: str | None = None,
        opacity: float = 0.85,
    ) -> None:
        """One marker: circle, cross (an early stop, a failure) or square."""
        assert self.x is not None and self.y is not None
        px, py = self.x(xv), self.y(yv)
        title = f"<title>{escape(tip)}</title>" if tip else ""
        if shape == "cross":
            s = size
            self.marks.append(
                f'<path d="M{px - s:.1f},{py - s:.1f}L{px + s:.1f},{py + s:.1f}'
                f'M{px - s:.1f},{py + s:.1f}L{px + s:.1f},{py - s:.1f}" stroke="{color}" '
                f'stroke-width="2.2" opacity="{opacity}">{title}</path>'
            )
        elif shape == "square":
            self.marks.append(
                f'<rect x="{px - size:.1f}" y="{py - size:.1f}" width="{2 * size:.1f}" '
                f'height="{2 * size:.1f}" fill="{color}" opacity="{opacity}">{title}</rect>'
            )
        else:
            self.marks.append(
                f'<circle cx="{px:.1f}" cy="{py:.1f}" r="{size:.1f}" fill="{color}" '
                f'opacity="{opacity}" stroke="#fff" stroke-width="0.8">{title}</circle>'
            )

    def rect_px(
        self,
        x0: float,
        y0: float,
        x1: float,
        y1: float,
        color: str,
        tip: str | None = None,
        label: str | None = None,
    ) -> None:
        """A rectangle in pixel coordinates (bars, Gantt spans), with an optional label."""
        title = f"<title>{escape(tip)}</title>" if tip else ""
        w, h = max(x1 - x0, 1.0), abs(y1 - y0)
        top = min(y0, y1)
        self.marks.append(
            f'<rect x="{x0:.1f}" y="{top:.1f}" width="{w:.1f}" height="{h:.1f}" rx="2" '
            f'fill="{color}" opacity="0.9">{title}</rect>'
        )
        if label and w > 7 * len(label):
            self.marks.append(
                f'<text x="{x0 + w / 2:.1f}" y="{top + h / 2 + 4:.1f}" text-anchor="middle" '
                f'font-size="11" fill="#fff">{escape(label)}</text>'
            )

    def text_px(
        self,
        x: float,
        y: float,
        text: str,
        anchor: str = "start",
        size: int = 11,
        color: str = MUTED,
    ) -> None:
        self.marks.append(
            f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'fill="{color}">{escape(text)}</text>'
        )

    def add_legend(self, label: str, color: str, shape: str = "line") -> None:
        self.legend.append((label, color, shape))

    # ---- output --------------------------------------------------------------------

    def _axes(self) -> list[str]:
        assert self.x is not None and self.y is not None
        out: list[str] = []
        (x0, x1), (y0, y1) = self.inner_x(), self.inner_y()
        for value, label in self.y.ticks():
            py = self.y(value)
            out.append(f'<line x1="{x0}" x2="{x1}" y1="{py:.1f}" y2="{py:.1f}" stroke="{GRID}"/>')
            out.append(
                f'<text x="{x0 - 6}" y="{py + 4:.1f}" text-anchor="end" font-size="11" '
                f'fill="{MUTED}">{escape(label)}</text>'
            )
        x_ticks = self.x.ticks()
        # Thin out crowded category labels rather than let them overlap.
        every = max(1, math.ceil(len(x_ticks) * 42 / max(x1 - x0, 1)))
        for i, (value, label) in enumerate(x_ticks):
            px = self.x(value)
            out.append(f'<line x1="{px:.1f}" x2="{px:.1f}" y1="{y0}" y2="{y1}" stroke="{GRID}"/>')
            if i % every == 0:
                out.append(
                    f'<text x="{px:.1f}" y="{y0 + 16}" text-anchor="middle" font-size="11" '
                    f'fill="{MUTED}">{escape(label)}</text>'
                )
        out.append(f'<line x1="{x0}" x2="{x1}" y1="{y0}" y2="{y0}" stroke="{MUTED}"/>')
        out.append(f'<line x1="{x0}" x2="{x0}" y1="{y0}" y2="{y1}" stroke="{MUTED}"/>')
        if self.x_label:
            out.append(
                f'<text x="{(x0 + x1) / 2:.1f}" y="{self.height - 8}" text-anchor="middle" '
                f'font-size="12" fill="{INK}">{escape(self.x_label)}</text>'
            )
        if self.y_label:
            cy = (y0 + y1) / 2
            out.append(
                f'<text x="14" y="{cy:.1f}" text-anchor="middle" font-size="12" fill="{INK}" '
                f'transform="rotate(-90 14 {cy:.1f})">{escape(self.y_label)}</text>'
            )
        return out

    def _legend(self) -> tuple[list[str], int]:
        """Legend entries in rows that wrap at the chart's width; returns (svg, height)."""
        out: list[str] = []
        x, y, row_px = self.margin[3], 12, 18
        for label, color, shape in self.legend:
            item_px = 30 + int(6.6 * len(label))
            if x + item_px > self.width and x > self.margin[3]:
                x, y = self.margin[3], y + row_px
            if shape == "line":
                out.append(
                    f'<line x1="{x}" x2="{x + 16}" y1="{y}" y2="{y}" stroke="{color}" '
                    'stroke-width="2.5"/>'
                )
            elif shape == "cross":
                out.append(
                    f'<path d="M{x + 4},{y - 4}L{x + 12},{y + 4}M{x + 4},{y + 4}'
                    f'L{x + 12},{y - 4}" stroke="{color}" stroke-width="2.2"/>'
                )
            else:
                out.append(f'<circle cx="{x + 8}" cy="{y}" r="4.5" fill="{color}"/>')
            out.append(
                f'<text x="{x + 21}" y="{y + 4}" font-size="11.5" fill="{INK}">'
                f"{escape(label)}</text>"
            )
            x += item_px
        return out, (y + 12 if self.legend else 0)

    def svg(self) -> str:
        """The chart as an inline ``<svg>`` element (with an accessible title).

        The legend takes rows above the plot, which moves down by their height; the
        ``max-width`` keeps a chart from being scaled past its drawn size, where its
        text would grow larger than the page's.
        """
        legend, legend_px = self._legend()
        height = self.height + legend_px
        plot = [
            *(self._axes() if self.x is not None and self.y is not None else []),
            *self.marks,
        ]
        parts = [
            f'<svg class="chart" viewBox="0 0 {self.width} {height}" role="img" '
            f'style="max-width:{self.width}px" font-family="inherit">',
            f"<title>{escape(self.title or self.y_label)}</title>",
            *legend,
            f'<g transform="translate(0 {legend_px})">',
            *plot,
            "</g>",
            "</svg>",
        ]
        return "\n".join(parts)
