"""``evaluate()``: the API behind ``nlpress eval``."""

from __future__ import annotations

import os

from nlpress.errors import NlpressError


def load_eval_data(task: str, data, limit: int | None, columns: dict):
    from nlpress.data.readers import builtin_sentences, check_limit, read_data, read_text

    check_limit(limit)
    if task == "causal-lm":
        return read_text(data) if data else "\n".join(builtin_sentences().texts)
    if data is None:
        return builtin_sentences().head(limit) if limit else builtin_sentences()
    return read_data(data, limit=limit, **columns)


def bench_texts(task: str, d) -> list:
    """What one benchmark call runs on: single sentences for embeddings, inputs (with pairs) for
    classification, and lines of at least four words of a causal-LM text."""
    if isinstance(d, str):
        return [ln for ln in d.splitlines() if len(ln.split()) >= 4][:256] or [d[:2000]]
    return list(d.texts if task == "sentence-embedding" else d.inputs())


def evaluate(
    model: str | os.PathLike,
    data: str | os.PathLike | None = None,
    *,
    task: str | None = None,
    vs: str | os.PathLike | None = None,
    limit: int | None = 2000,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    progress: bool = False,
    device: str | None = None,
) -> dict:
    """Task quality of ``model`` on ``data``; with ``vs``, also its fidelity to that model.

    ``device``: where ``model`` runs (None: an artifact's own device); ``vs`` runs on the CPU."""
    from nlpress.evaluate.task_eval import fidelity, quality
    from nlpress.runtime import load

    pred = load(model, task=task, verify=True, device=device)  # files checked against sha256
    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
    }
    d = load_eval_data(pred.task, data, limit, columns)
    ref = (
        load(vs, task=pred.task, verify=True) if vs is not None else None
    )  # fail before any long work
    if vs is None and not _has_targets(pred.task, d):
        raise NlpressError(
            "the data has no labels or scores to evaluate against; pass --label-column, "
            "or --vs REFERENCE to measure fidelity instead"
        )
    res: dict = {
        "model": str(model),
        "task": pred.task,
        "backend": pred.backend,
        "data": {
            "source": str(data) if data else "builtin",
            "n": len(d) if not isinstance(d, str) else len(d.split()),
        },
    }
    res["quality"] = quality(pred, d, progress)
    if ref is not None:
        res["fidelity"] = fidelity(ref, pred, d, progress)
        res["vs"] = str(vs)
    return res


def _has_targets(task: str, d) -> bool:
    """Whether :func:`quality` has something to score: labels, scores, or text for perplexity."""
    if task == "causal-lm":
        return True
    if task == "text-classification":
        return d.labels is not None
    return d.pairs is not None and d.scores is not None
