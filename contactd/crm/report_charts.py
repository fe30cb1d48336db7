"""A report's chart, drawn on the server by matplotlib: SVG for the page, PNG for the PDF.

matplotlib (maintained, on PyPI) writes plain SVG with inline styles and no script, which a
page can inline as it is and which looks the same in a PDF; its Agg backend makes the PNG
fpdf2 embeds. Figures are made without pyplot (no global state), so charts drawn in worker
threads do not share anything. Drawing is CPU work: callers run it in a thread.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from contactd.crm.reports import Chart

if TYPE_CHECKING:
    from matplotlib.figure import Figure

_COLOURS: Final = (
    "#2563eb",
    "#16a34a",
    "#dc2626",
    "#d97706",
    "#7c3aed",
    "#0891b2",
    "#db2777",
    "#65a30d",
    "#475569",
    "#ea580c",
)


@dataclass(frozen=True)
class Palette:
    """The colours a chart is drawn in: the page's theme for the panel, light for the PDF."""

    background: str = "#ffffff"
    text: str = "#1f2937"
    muted: str = "#475569"
    line: str = "#cbd5e1"
    alert: str = "#dc2626"  # the reference line (3 % abandoned)
    series: tuple[str, ...] = _COLOURS


LIGHT: Final = Palette()


def _figure(chart: Chart, title: str, empty: str, palette: Palette = LIGHT) -> Figure:
    # Imported here: matplotlib takes half a second to import, and the daemon's start (and so
    # its recovery after a crash) should not wait for a library only reports use.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), layout="constrained", facecolor=palette.background)
    axes = figure.add_subplot(facecolor=palette.background)
    axes.set_title(title, fontsize=11, color=palette.text)
    if not any(v for values in chart.series.values() for v in values):
        axes.text(
            0.5,
            0.5,
            empty,
            ha="center",
            va="center",
            fontsize=12,
            color=palette.muted,
            transform=axes.transAxes,
        )
        axes.set_axis_off()
        return figure
    colours = palette.series
    positions = list(range(len(chart.labels)))
    if chart.kind == "line":
        for index, (name, values) in enumerate(chart.series.items()):
            shown = [v * 100 for v in values] if chart.percent else values
            axes.plot(
                positions,
                shown,
                marker="o",
                markersize=3,
                label=name,
                color=colours[index % len(colours)],
            )
    else:
        bottom = [0.0] * len(positions)
        for index, (name, values) in enumerate(chart.series.items()):
            axes.bar(
                positions, values, bottom=bottom, label=name, color=colours[index % len(colours)]
            )
            bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    if chart.line is not None:
        level = chart.line * 100 if chart.percent else chart.line
        axes.axhline(
            level,
            color=palette.alert,
            linestyle="--",
            linewidth=1,
            label=f"{level:g}%" if chart.percent else f"{level:g}",
        )
    if chart.percent:
        axes.set_ylabel("%", color=palette.text)
    step = max(1, len(positions) // 16)
    axes.set_xticks(
        positions[::step],
        [chart.labels[i] for i in positions[::step]],
        rotation=45 if len(positions) > 8 else 0,
        ha="right",
        fontsize=8,
    )
    axes.tick_params(axis="y", labelsize=8)
    axes.tick_params(colors=palette.muted, labelcolor=palette.text)
    if not chart.percent and all(
        float(v).is_integer() for values in chart.series.values() for v in values
    ):  # counts: no 0.2 of a call on the axis
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    if len(chart.series) > 1 or chart.line is not None:
        axes.legend(
            fontsize=7,
            loc="upper left",
            bbox_to_anchor=(1.0, 1.0),
            facecolor=palette.background,
            edgecolor=palette.line,
            labelcolor=palette.text,
        )
    axes.spines[["top", "right"]].set_visible(False)
    axes.spines[["left", "bottom"]].set_color(palette.muted)
    return figure


def svg(
    chart: Chart, title: str, empty: str = "Nothing in this period.", palette: Palette = LIGHT
) -> str:
    out = io.StringIO()
    _figure(chart, title, empty, palette).savefig(
        out, format="svg", metadata={"Date": None}, facecolor=palette.background
    )
    text = out.getvalue()
    return text[text.index("<svg") :]  # inline: no XML declaration or doctype


def png(chart: Chart, title: str, empty: str = "Nothing in this period.") -> bytes:
    out = io.BytesIO()
    _figure(chart, title, empty).savefig(out, format="png", dpi=110)
    return out.getvalue()
