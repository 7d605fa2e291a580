"""The report's "Backend selection" table: what ``select-backend`` measured and why it chose.

One row per candidate (throughput, latency, fidelity, whether it met the bar), the winner
marked, then the margin over the others and the CPU the choice holds for. Read from the step's
info in metrics.json, so the report and the JSON cannot disagree.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from nlpress.report.tables import NA, fmt

HEADER = ("candidate", "seq/s", "p50 ms", "fidelity", "meets bar", "")


def _selection(metrics: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for s in metrics.get("steps") or []:
        if isinstance(s, Mapping) and s.get("name") == "select-backend":
            info = s.get("info")
            return info if isinstance(info, Mapping) else None
    return None


def _fid(fid: Mapping[str, Any]) -> str:
    if "cosine_mean" in fid:
        return f"cosine mean {fmt(fid['cosine_mean'], '.4f')} / min {fmt(fid.get('cosine_min'), '.4f')}"
    return f"top-1 {fmt(fid.get('top1_agreement'), '.4f')}"


def backend_rows(metrics: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """Rows for the table; [] when the recipe had no select-backend step."""
    sel = _selection(metrics)
    if not sel or not isinstance(sel.get("candidates"), Mapping):
        return []
    rows: list[tuple[str, ...]] = []
    for name, r in sel["candidates"].items():
        rows.append(
            (
                name,
                fmt(r.get("throughput")),
                fmt(r.get("latency_p50_ms"), ".2f"),
                _fid(r.get("fidelity") or {}),
                "yes" if r.get("meets_bar") else "no",
                "kept" if name == sel.get("winner") else "",
            )
        )
    margin = ", ".join(f"{v:.2f}x {k}" for k, v in (sel.get("speedup_vs") or {}).items())
    isa = sel.get("isa") or {}
    note = f"{sel.get('winner', NA)}: {margin or 'the only candidate'}"
    if not sel.get("met_bar", True):
        note += " (no candidate met the bar: the most faithful was kept)"
    rows.append((note, "", "", "", "", ""))
    flags = ", ".join(isa.get("flags") or []) or NA
    rows.append((f"ISA: {isa.get('int8_kernel', NA)} ({flags})", "", "", "", "", ""))
    return rows
