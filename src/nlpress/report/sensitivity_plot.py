"""The per-layer sensitivity plot of a mixed-precision step (:mod:`nlpress.quantize.mixed`).

One horizontal bar per linear layer, in graph order, so a reader sees at a glance which blocks
and which projections carry the quantization error: left, the fidelity loss when the layer alone
is int8; right, the loss regained when it alone stays fp32 (all others int8). The layers the
search kept in fp32 are drawn in a different colour. Object-oriented matplotlib, as in
:mod:`nlpress.report.plots`, for the same reason (no global pyplot state).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpress.report.plots import AFTER_COLOR, BEFORE_COLOR, _figure

log = logging.getLogger(__name__)

KEPT_COLOR = "#d62728"


def mixed_precision_record(metrics: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The ``mixed_precision`` record of the first step that has one, else None."""
    for step in metrics.get("steps") or []:
        info = step.get("info") if isinstance(step, Mapping) else None
        if isinstance(info, Mapping) and isinstance(info.get("mixed_precision"), Mapping):
            return info["mixed_precision"]
    return None


def short_name(layer: str) -> str:
    """``/model/encoder/layer.3/attention/self/query/MatMul`` -> ``layer.3/attention/self/query``."""
    parts = [p for p in layer.split("/") if p and p not in ("model", "encoder", "MatMul", "Gemm")]
    return "/".join(parts) or layer


def plot_layer_sensitivity(metrics: Mapping[str, Any], path: Path) -> Path | None:
    rec = mixed_precision_record(metrics)
    rows = (rec or {}).get("sensitivity") or []
    if not rows:
        return None
    kept = set(rec.get("kept_fp32") or [])
    base = (rec.get("all_int8_sensitivity") or {}).get("loss")
    panels = []
    if any("quantize_one_loss" in r for r in rows):
        panels.append(("int8 alone: loss", [r.get("quantize_one_loss", 0.0) for r in rows]))
    if any("keep_one_loss" in r for r in rows) and base is not None:
        gains = [base - r.get("keep_one_loss", base) for r in rows]
        panels.append(("fp32 alone (rest int8): loss regained", gains))
    labels = [short_name(r["layer"]) for r in rows]
    colors = [KEPT_COLOR if r["layer"] in kept else AFTER_COLOR for r in rows]
    fig = _figure(5 + 3.5 * len(panels), 1.5 + 0.22 * len(rows))
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, (title, values) in zip(axes, panels, strict=True):
        ax.barh(range(len(rows)), values, color=colors)
        ax.axvline(0, color=BEFORE_COLOR, lw=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel(rec.get("loss_metric", "loss"))
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize=7)
    axes[0].invert_yaxis()
    fig.suptitle(
        f"Per-layer sensitivity ({len(kept)} of {len(rows)} kept fp32 in red; "
        f"{rec.get('metric')} {rec.get('fidelity', float('nan')):.5f})",
        fontsize=10,
    )
    fig.savefig(path, format="png")
    return path
