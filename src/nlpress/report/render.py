"""Markdown and self-contained HTML renderings of a compression report.

Why hand-written strings and no template engine: the report is five small tables and two
images; a dependency (jinja2) would cost more than the forty lines it saves. The HTML is one file
that can be mailed or attached to a ticket: the CSS is inline, the PNGs are embedded as base64
``data:`` URIs, and there are no links to anything outside the file. All text from the metrics
is escaped, since model names and step info come from user input.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from nlpress.report import pruning, tables
from nlpress.report.backend import HEADER, backend_rows

CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, Helvetica, Arial, sans-serif;
       max-width: 960px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; margin-bottom: 0.2em; }
.meta { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.7em; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
img { max-width: 100%; display: block; margin: 1em 0; }
"""


def _md_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """GitHub Markdown table; ``align`` is one char per column ("l" or "r")."""
    align = align or "l" * len(header)

    def cell(text: str) -> str:
        return str(text).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |"]
    lines.append("|" + "|".join("---:" if a == "r" else "---" for a in align) + "|")
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _sections(
    metrics: Mapping[str, Any],
) -> list[tuple[str, Sequence[str], list[Sequence[str]], str]]:
    """(heading, header, rows, align) for every table the report shows, in order."""
    before, after = tables.names(metrics)
    out: list[tuple[str, Sequence[str], list[Sequence[str]], str]] = [
        (
            "Before and after",
            ("", before, after, "change"),
            list(tables.comparison_rows(metrics)),
            "lrrl",
        )
    ]
    extra = tables.extra_rows(metrics)
    if extra:
        out.append(("Other sequence lengths", tables.EXTRA_HEADER, list(extra), "rrrlrrl"))
    prune_rows = pruning.pruning_rows(metrics)
    if prune_rows:
        prune_rows += [("warning", w) for w in pruning.warnings(metrics)]
        out.append(("Pruning", ("", "value"), prune_rows, "ll"))
        out.append(
            ("Sparsity per layer", ("layer", "removed"), pruning.per_layer_rows(metrics), "lr")
        )
    chosen = backend_rows(metrics)
    if chosen:
        out.append(("Backend selection", HEADER, chosen, "lrrlll"))
    steps = tables.steps_rows(metrics)
    out.append(
        ("Steps", ("step", "seconds", "info"), list(steps) or [(tables.NA, tables.NA, "")], "lrl")
    )
    env = tables.env_rows(metrics)
    if env:
        out.append(("Environment", ("", "value"), list(env), "ll"))
    return out


def render_markdown(metrics: Mapping[str, Any], images: Sequence[Path]) -> str:
    """The report as Markdown; ``images`` are referenced by file name (written alongside)."""
    parts = [f"# {tables.title(metrics)}", "", _meta(metrics), ""]
    for heading, header, rows, align in _sections(metrics):
        parts += [f"## {heading}", "", _md_table(header, rows, align), ""]
    if images:
        parts += ["## Plots", ""]
        parts += [f"![{img.stem}]({img.name})" for img in images] + [""]
    return "\n".join(parts)


def _meta(metrics: Mapping[str, Any]) -> str:
    created = metrics.get("created") or tables.NA
    return f"Created {created}. Measured on {tables.settings_text(metrics)}."


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], align: str) -> str:
    e = html.escape
    head = "".join(f"<th>{e(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="num">{e(str(c))}</td>' if a == "r" else f"<td>{e(str(c))}</td>"
            for c, a in zip(row, align, strict=False)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img_tag(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(path.stem)}" src="data:image/png;base64,{data}">'


def render_html(metrics: Mapping[str, Any], images: Sequence[Path]) -> str:
    """The report as one self-contained HTML page with the PNGs embedded."""
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{e(tables.title(metrics))}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<h1>{e(tables.title(metrics))}</h1>",
        f'<p class="meta">{e(_meta(metrics))}</p>',
    ]
    for heading, header, rows, align in _sections(metrics):
        parts += [f"<h2>{e(heading)}</h2>", _html_table(header, rows, align)]
    if images:
        parts.append("<h2>Plots</h2>")
        parts += [_img_tag(img) for img in images]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
