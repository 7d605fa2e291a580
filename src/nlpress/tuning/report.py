"""``tuned/report.md`` and ``report.html``: the front as a plot, every trial as a table row."""

from __future__ import annotations

import html
from pathlib import Path

SPEED_LABEL = {
    "throughput": "throughput speedup vs fp32 (batch)",
    "latency": "latency speedup vs fp32 (batch 1, p50)",
    "size": "size on disk (MB)",
}


def plot_front(
    rows: list[dict], front: list[dict], chosen: dict | None, objective: str, path: Path
):
    done = [r for r in rows if r["state"] == "complete" and r["value"] is not None]
    if not done:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    top = max((r["size_mb"] or 1) for r in done)

    def size(r):
        return 20 + 280 * (r["size_mb"] or 0) / top

    for feas, color, label in (
        (True, "tab:blue", "within budget"),
        (False, "tab:gray", "over budget"),
    ):
        pts = [r for r in done if bool(r["feasible"]) == feas]
        if pts:
            ax.scatter(
                [r["value"] for r in pts],
                [-r["drop"] for r in pts],
                s=[size(r) for r in pts],
                c=color,
                alpha=0.5,
                label=label,
            )
    if front:
        f = sorted(front, key=lambda r: r["value"])
        ax.plot(
            [r["value"] for r in f], [-r["drop"] for r in f], "-o", c="tab:red", ms=3, label="front"
        )
    if chosen is not None:
        ax.scatter(
            [chosen["value"]],
            [-chosen["drop"]],
            marker="*",
            s=300,
            c="gold",
            edgecolors="k",
            label="chosen",
            zorder=5,
        )
    ax.axhline(0, c="k", lw=0.5)
    ax.set(xlabel=SPEED_LABEL[objective], ylabel="quality change vs fp32 (points, search split)")
    ax.set_title("nlpress tune: candidates (marker area: size on disk)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _f(v, nd: int = 3) -> str:
    if v is None:
        return ""
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def render(summary: dict, rows: list[dict], image: Path | None) -> str:
    g = summary["goal"]
    ch = summary.get("chosen")
    lines = [
        f"# nlpress tune: {summary['model']}",
        "",
        f"- task: {summary['task']}; metric: {g['metric']}; budget: --max-drop {g['max_drop']} points",
        f"- objective: {g['objective']}; trials finished: {summary['n_finished']}"
        f" ({summary['n_pruned']} stopped early, {summary['n_failed']} failed)",
        f"- search split: {summary['split']['search']} rows; held-out split: "
        f"{summary['split']['heldout']} rows (seed {summary['split']['seed']})",
        f"- baseline {g['metric']}: search {_f(summary['baseline']['search'].get(g['metric']))}, "
        f"held-out {_f(summary['baseline']['heldout'].get(g['metric']))}",
    ]
    if summary.get("first_feasible_s") is not None:
        lines.append(f"- first feasible model after {summary['first_feasible_s']:.0f} s of search")
    if ch:
        h = ch.get("heldout") or {}
        lines += [
            "",
            f"## Chosen: trial {ch['number']} (`{ch['recipe_name']}`)",
            "",
            f"Why: {summary['why']}.",
            "",
            f"- search split: drop {_f(ch['drop'])} points, {g['objective']} {_f(ch['value'])}",
            f"- held-out split: drop {_f(h.get('drop'))} points, throughput speedup "
            f"{_f(h.get('throughput_speedup'), 2)}x, latency speedup "
            f"{_f(h.get('latency_speedup'), 2)}x, size {_f(h.get('size_mb'), 2)} MB",
            f"- artifact: `best/`; reproduce: `nlpress compress --recipe trials/{ch['number']:04d}/recipe.yaml`",
        ]
    else:
        lines += ["", f"## No model chosen: {summary['why']}"]
    lines += ["", "## Front (search split, re-measured on held-out)", ""]
    lines += [
        "| trial | recipe | drop (search) | drop (held-out) | thr. x | lat. x | MB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["front"]:
        h = r.get("heldout") or {}
        lines.append(
            f"| {r['number']} | {r['recipe_name']} | {_f(r['drop'])} | {_f(h.get('drop'))} | "
            f"{_f(h.get('throughput_speedup', r['throughput_speedup']), 2)} | "
            f"{_f(h.get('latency_speedup', r['latency_speedup']), 2)} | {_f(r['size_mb'], 2)} |"
        )
    if image is not None:
        lines += ["", f"![front]({image.name})"]
    lines += ["", "## Every trial", ""]
    from nlpress.tuning.trial import FIDELITY_LABELS

    kinds = sorted({r["fidelity_kind"] for r in rows if r.get("fidelity_kind")})
    if kinds:
        lines += ["fidelity: " + "; ".join(FIDELITY_LABELS[k] for k in kinds) + ".", ""]
    lines += [
        "| trial | status | steps | drop | fidelity | thr. x | lat. x | MB | s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(rows, key=lambda r: r["number"]):
        lines.append(
            f"| {r['number']} | {r['status']} | {r['recipe_name']} | {_f(r['drop'])} | "
            f"{_f(r['fidelity'], 4)} | {_f(r['throughput_speedup'], 2)} | "
            f"{_f(r['latency_speedup'], 2)} | {_f(r['size_mb'], 2)} | {_f(r['seconds'], 1)} |"
        )
    return "\n".join(lines) + "\n"


def write(out: Path, summary: dict, rows: list[dict]) -> None:
    image = plot_front(
        rows,
        summary["front"],
        summary.get("chosen"),
        summary["goal"]["objective"],
        out / "front.png",
    )
    md = render(summary, rows, image)
    (out / "report.md").write_text(md)
    body = html.escape("\n".join(ln for ln in md.splitlines() if not ln.startswith("![")))
    img = f'<img src="{image.name}">\n' if image is not None else ""
    (out / "report.html").write_text(
        f"<!doctype html><meta charset='utf-8'><title>nlpress tune</title><body>{img}<pre>{body}</pre></body>\n"
    )
