"""The two report plots, as PNG files: speed against fidelity, and size and throughput bars.

Why the object-oriented matplotlib API (``Figure`` + ``FigureCanvasAgg``) instead of pyplot:
pyplot keeps global state and ``matplotlib.use("Agg")`` would switch the backend of a user's
notebook under them. A bare ``Figure`` rendered by the Agg canvas has no global state, needs no
display, and is imported only when a report is written, so ``import nlpress`` stays fast.
Each function returns the written path, or None when the metrics lack the numbers to plot.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpress.report.tables import headline_fidelity, number

log = logging.getLogger(__name__)

BEFORE_COLOR = "#8c8c8c"
AFTER_COLOR = "#1f77b4"


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _entry(metrics: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = metrics.get(key)
    return value if isinstance(value, Mapping) else {}


def plot_throughput_fidelity(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Scatter of throughput (x) against fidelity (y): baseline at 1.0, the result labelled."""
    base, result = _entry(metrics, "baseline"), _entry(metrics, "result")
    key, fidelity = headline_fidelity(result)
    x_base, x_result = number(base.get("throughput")), number(result.get("throughput"))
    if fidelity is None or x_result is None:
        log.info("no throughput/fidelity pair in the metrics; skipping %s", path.name)
        return None
    fig = _figure(6, 4)
    ax = fig.add_subplot()
    points = [(x_result, fidelity, result.get("name") or "result", AFTER_COLOR)]
    if x_base is not None:
        points.insert(
            0, (x_base, 1.0, f"{base.get('name') or 'baseline'} (baseline)", BEFORE_COLOR)
        )
    for x, y, label, color in points:
        ax.scatter([x], [y], s=80, color=color, zorder=3)
        ax.annotate(
            f"{label}\n{x:.1f} seq/s, {y:.4g}",
            (x, y),
            textcoords="offset points",
            xytext=(8, -4),
            fontsize=9,
            va="top",
        )
    xs = [p[0] for p in points]
    ax.set_xlim(0, max(xs) * 1.45)
    low = min(fidelity, 1.0)
    pad = max((1.0 - low) * 0.5, 0.005)
    ax.set_ylim(low - pad, 1.0 + pad)
    ax.axhline(1.0, color=BEFORE_COLOR, lw=0.8, ls="--")
    ax.set_xlabel("throughput (sequences/s, higher is better)")
    ax.set_ylabel(f"fidelity: {key} (1.0 = same as baseline)")
    ax.set_title("Speed vs fidelity")
    ax.grid(alpha=0.3)
    fig.savefig(path, format="png")
    return path


def _bars(
    ax: Any,
    values: list[float | None],
    labels: list[str],
    unit: str,
    title: str,
    errors: list[float] | None = None,
) -> None:
    heights = [v if v is not None else 0.0 for v in values]
    bars = ax.bar(labels, heights, color=[BEFORE_COLOR, AFTER_COLOR], yerr=errors, capsize=4)
    ax.bar_label(bars, labels=[f"{v:.1f}" if v is not None else "n/a" for v in values], padding=3)
    ax.set_ylabel(unit)
    ax.set_title(title)
    ax.margins(y=0.15)


def plot_size_throughput(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Side-by-side bars: size on disk (MB) and throughput (seq/s), before and after."""
    base, result = _entry(metrics, "baseline"), _entry(metrics, "result")
    sizes = [number(e.get("size_bytes")) for e in (base, result)]
    sizes = [None if s is None else s / 1e6 for s in sizes]
    tputs = [number(e.get("throughput")) for e in (base, result)]
    if all(v is None for v in sizes + tputs):
        log.info("no sizes or throughputs in the metrics; skipping %s", path.name)
        return None
    labels = [
        f"before\n{base.get('name') or 'baseline'}",
        f"after\n{result.get('name') or 'result'}",
    ]
    errors = [  # the IQR as a bar around the median
        (t or 0.0) * (number(e.get("throughput_spread")) or 0.0) / 2
        for t, e in zip(tputs, (base, result), strict=True)
    ]
    fig = _figure(8, 3.6)
    ax_size, ax_tput = fig.subplots(1, 2)
    _bars(ax_size, sizes, labels, "MB", "Size on disk (lower is better)")
    _bars(ax_tput, tputs, labels, "sequences/s", "Throughput (higher is better)", errors)
    fig.savefig(path, format="png")
    return path
