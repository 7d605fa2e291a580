"""The pruning part of a report: sparsity per layer (table and plot), size, speed and warnings.

Why a section of its own: users' top complaint about pruning is sparsity that gives no speedup.
So every pruning result states, next to the per-layer sparsity, the size on disk and the
throughput measured against the unpruned model on the same backend in the same run, and says
plainly when the format has no kernel that makes it faster there.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nlpress.report.tables import fmt, fraction_change, number, ratio, speed_change

log = logging.getLogger(__name__)


def _pruning(metrics: Mapping[str, Any]) -> Mapping[str, Any]:
    p = metrics.get("pruning")
    return p if isinstance(p, Mapping) else {}


def pruning_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(item, value) rows: kind, overall sparsity, size and speed against the unpruned model."""
    p = _pruning(metrics)
    if not p:
        return []
    b, r = metrics.get("baseline") or {}, metrics.get("result") or {}
    rows = [("kind", str(p.get("kind", "?"))), ("weights format", str(p.get("weights_format")))]
    for step in p.get("steps") or []:
        if number(step.get("sparsity")) is not None:
            rows.append(
                (f"{step.get('kind')} sparsity of targeted weights", fmt(step["sparsity"], ".4f"))
            )
        if step.get("parameters"):
            rows.append(("parameters kept", str(step["parameters"])))
    size = ratio(r.get("size_bytes"), b.get("size_bytes"))
    rows.append(("size on disk vs unpruned", fraction_change(size)))
    tput = ratio(r.get("throughput"), b.get("throughput"))
    rows.append(
        (
            f"throughput vs unpruned ({b.get('backend', '?')} -> {r.get('backend', '?')}, same run)",
            speed_change(tput),
        )
    )
    same = p.get("same_backend")
    if isinstance(same, Mapping):
        u, r2 = same.get("unpruned") or {}, same.get("result") or {}
        rows.append(
            (
                f"throughput vs the unpruned model on {same.get('backend')} (same steps, same run)",
                f"{speed_change(ratio(r2.get('throughput'), u.get('throughput')))} "
                f"({fmt(u.get('throughput'))} -> {fmt(r2.get('throughput'))} seq/s)",
            )
        )
        rows.append(
            (
                "size on disk vs the unpruned model, same steps",
                fraction_change(ratio(r2.get("size_bytes"), u.get("size_bytes"))),
            )
        )
    return rows


def per_layer_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    per = _pruning(metrics).get("per_layer") or {}
    return [(str(k), fmt(v, ".3f")) for k, v in per.items()]


def warnings(metrics: Mapping[str, Any]) -> list[str]:
    p = _pruning(metrics)
    out = [str(w) for w in p.get("warnings") or []]
    backend = (metrics.get("result") or {}).get("backend")
    if p.get("kind") != "structured" and backend == "onnxruntime":
        out.append("The ONNX file stores the pruned zeros densely: it is no smaller than unpruned.")
    return out


def plot_sparsity(metrics: Mapping[str, Any], path: Path) -> Path | None:
    """Horizontal bars: share of each layer's weights removed."""
    per = _pruning(metrics).get("per_layer") or {}
    values = [(str(k), number(v)) for k, v in per.items() if number(v) is not None]
    if not values:
        return None
    from nlpress.report.plots import AFTER_COLOR, _figure

    fig = _figure(7, max(2.5, 0.18 * len(values) + 1.2))
    ax = fig.add_subplot()
    labels = [k for k, _ in values][::-1]
    ax.barh(labels, [v for _, v in values][::-1], color=AFTER_COLOR)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of weights removed")
    ax.set_title(f"Sparsity per layer ({_pruning(metrics).get('kind', '')})")
    ax.tick_params(axis="y", labelsize=7)
    ax.grid(axis="x", alpha=0.3)
    fig.savefig(path, format="png")
    return path
