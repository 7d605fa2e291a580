"""Task glue: quality on labelled data and fidelity to a reference predictor.

The metric math lives in :mod:`nlpress.evaluate.metrics` and :mod:`nlpress.evaluate.fidelity`
as pure functions; this module only decides, per task, which outputs to feed them.
"""

from __future__ import annotations

import logging

import numpy as np

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

# causal-lm fidelity: next-token distributions over this many windows of this length
LM_FIDELITY_WINDOWS, LM_FIDELITY_LEN = 8, 256


def quality(pred, data, progress: bool = False) -> dict:
    """Task metrics where the data has labels/scores; {} where it has none."""
    from nlpress.evaluate import metrics

    if pred.task == "text-classification":
        if data.labels is None:
            return {}
        labels = _label_ids(pred, data)  # checked before the model runs: errors come first
        n_classes = len(pred.id2label) or None
        if n_classes and (int(labels.max()) >= n_classes or int(labels.min()) < 0):
            raise NlpressError(
                f"the data has label {int(labels.max())} but the model has {n_classes} classes; "
                "check --label-column or the model"
            )
        logits = pred.run(data.inputs(), progress=progress)
        if int(labels.max()) >= logits.shape[1] or int(labels.min()) < 0:
            raise NlpressError(
                f"the data has label {int(labels.max())} but the model has {logits.shape[1]} classes; "
                "check --label-column or the model"
            )
        return {
            k: 100.0 * v if k in ("accuracy", "f1") else v
            for k, v in metrics.classification_metrics(logits, labels).items()
        }
    if pred.task == "sentence-embedding":
        if data.pairs is None or data.scores is None:
            return {}
        a = pred.run(data.texts, progress=progress)
        b = pred.run(data.pairs, progress=progress)
        return metrics.sts_metrics(a, b, np.asarray(data.scores, dtype=np.float64))
    return _lm_quality(pred, data, progress)


def _lm_quality(pred, text: str, progress: bool) -> dict:
    d = pred.perplexity_details(text, progress=progress)
    return {"perplexity": d["perplexity"], "tokens": d["tokens"]}


def _label_ids(pred, data) -> np.ndarray:
    if data.label_names is None:
        return np.asarray(data.labels, dtype=np.int64)
    label2id = {v: k for k, v in pred.id2label.items()}
    unknown = [n for n in data.label_names if n not in label2id]
    if unknown:
        raise NlpressError(
            f"data label {unknown[0]!r} is not one of the model's labels {sorted(label2id)}; "
            "use the model's label names or integer ids"
        )
    return np.asarray([label2id[data.label_names[i]] for i in data.labels], dtype=np.int64)


def fidelity(ref, new, data, progress: bool = False) -> dict:
    """How closely ``new`` reproduces ``ref`` on the data; needs no labels."""
    from nlpress.evaluate.fidelity import (
        embedding_fidelity,
        logits_fidelity,
        pair_similarity_fidelity,
    )

    if ref.task == "sentence-embedding":
        texts = list(data.texts) + list(data.pairs or [])
        r, c = ref.run(texts, progress=progress), new.run(texts, progress=progress)
        out = embedding_fidelity(r, c)
        if data.pairs:  # STS pairs: also how well the pairs' similarity ranking is kept
            n = len(data.texts)
            out |= pair_similarity_fidelity(r[:n], r[n:], c[:n], c[n:])
        return out
    if ref.task == "text-classification":
        inputs = data.inputs()
        return logits_fidelity(
            ref.run(inputs, progress=progress), new.run(inputs, progress=progress)
        )
    return _lm_fidelity(ref, new, data)


def _lm_fidelity(ref, new, text: str) -> dict:
    from nlpress.evaluate.fidelity import FidelitySums

    ids = np.asarray(ref.tokenizer(text, return_tensors="np")["input_ids"], dtype=np.int64)[0]
    n = min(LM_FIDELITY_LEN, ref.max_length)
    starts = np.linspace(0, max(ids.size - n, 0), LM_FIDELITY_WINDOWS).astype(int)
    acc = FidelitySums()  # one block of rows of each model's (T, V) logits alive at a time
    for s in sorted(set(starts.tolist())):
        window = ids[s : s + n]  # (T,)
        for a, b in zip(ref.logit_blocks(window), new.logit_blocks(window), strict=True):
            acc.add(a, b)
    return acc.result()
