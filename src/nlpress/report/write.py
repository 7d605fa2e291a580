"""Write a compression report: Markdown, self-contained HTML and the PNG plots.

Why both formats: the Markdown sits next to the artifact and reads well on a code host; the HTML
is a single file with the plots embedded, for people who will never open a terminal. Both are
rendered from the same rows (:mod:`nlpress.report.tables`), so they cannot disagree.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError
from nlpress.report.plots import plot_size_throughput, plot_throughput_fidelity
from nlpress.report.pruning import plot_sparsity
from nlpress.report.render import render_html, render_markdown
from nlpress.report.sensitivity_plot import plot_layer_sensitivity

log = logging.getLogger(__name__)

PLOTS = {
    "throughput_vs_fidelity.png": plot_throughput_fidelity,
    "size_and_throughput.png": plot_size_throughput,
    "sparsity_per_layer.png": plot_sparsity,  # pruning results only
    "layer_sensitivity.png": plot_layer_sensitivity,
}


def write_report(out_dir: Path, metrics: Mapping[str, Any]) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the plots into ``out_dir``; return their paths.

    Missing metrics render as "n/a", and a plot without the numbers it needs is left out.
    """
    if not isinstance(metrics, Mapping):
        raise NlpressError(f"report metrics must be a dict, got {type(metrics).__name__}")
    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise NlpressError(f"cannot create report folder {out_dir}: {exc.strerror}") from exc
    images = [p for name, plot in PLOTS.items() if (p := plot(metrics, out_dir / name)) is not None]
    md = out_dir / "report.md"
    md.write_text(render_markdown(metrics, images), encoding="utf-8")
    page = out_dir / "report.html"
    page.write_text(render_html(metrics, images), encoding="utf-8")
    log.info("wrote report to %s", page)
    return [md, page, *images]
