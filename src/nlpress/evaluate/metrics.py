"""Task metrics: accuracy and F1, Spearman/Pearson for STS, sliding-window perplexity.

Pure numpy/scipy functions over model outputs, so every backend (PyTorch, ONNX Runtime) is scored
by the same code and each metric is tested alone against a reference.

Perplexity follows the Hugging Face guide "Perplexity of fixed-length models": the text is one long
token sequence read through windows of ``max_length`` tokens that start every ``stride`` tokens;
each window scores only its tokens not scored before, with the rest as context, so a smaller stride
gives every token more context (lower, more honest perplexity) at more compute. One difference:
the guide weights each window's mean loss by (scored tokens - 1), which is exact only when
``stride == max_length``; here the per-token losses are summed, so the mean is exact for any stride.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import stats
from tqdm.auto import tqdm

from nlpress.errors import NlpressError
from nlpress.evaluate.fidelity import ROW_CHUNK, cosine_rows, log_softmax


def accuracy(pred: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predictions equal to the labels."""
    pred, labels = _pair(pred, labels)
    return float(np.mean(pred == labels))


def f1(pred: np.ndarray, labels: np.ndarray, average: str = "binary") -> float:
    """F1 of class 1 (``"binary"``) or the unweighted mean over classes seen (``"macro"``).

    A class with no true or predicted members scores 0, as scikit-learn's ``zero_division=0``.
    """
    pred, labels = _pair(pred, labels)
    if average == "binary":
        return _f1_of(pred, labels, 1)
    if average == "macro":
        classes = np.union1d(pred, labels)
        return float(np.mean([_f1_of(pred, labels, c) for c in classes]))
    raise ValueError(f"average must be 'binary' or 'macro', got {average!r}")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman rank correlation."""
    x, y = _pair(x, y)
    return float(stats.spearmanr(x, y).statistic)


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson correlation."""
    x, y = _pair(x, y)
    return float(stats.pearsonr(x, y).statistic)


def classification_metrics(logits: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Accuracy and F1 (binary for two classes, macro otherwise) of ``argmax(logits)``, in [0, 1]."""
    logits = np.asarray(logits)  # (N, C)
    pred = np.argmax(logits, axis=-1)  # (N,)
    average = "binary" if logits.shape[-1] == 2 else "macro"
    return {"accuracy": accuracy(pred, labels), "f1": f1(pred, labels, average=average)}


def sts_metrics(emb_a: np.ndarray, emb_b: np.ndarray, scores: np.ndarray) -> dict[str, float]:
    """Spearman and Pearson (x100, as STS-B is reported) of the pair cosine against gold scores."""
    cos = cosine_rows(emb_a, emb_b)  # (N,)
    return {"spearman": 100 * spearman(cos, scores), "pearson": 100 * pearson(cos, scores)}


def perplexity(
    logits_fn: Callable[[np.ndarray], np.ndarray] | None,
    token_ids: np.ndarray,
    max_length: int,
    stride: int,
    progress: bool = False,
    *,
    log_probs_fn: Callable[[np.ndarray, int], np.ndarray] | None = None,
) -> dict[str, float]:
    """Strided sliding-window perplexity of one token sequence.

    ``logits_fn`` maps int64 ids ``(1, T)`` to logits ``(1, T, V)``; logits at ``t`` predict token
    ``t + 1``. ``log_probs_fn(window, skip)``, where given, replaces it: the float64 log-probability
    of each token ``window[skip + 1:]`` given the ones before it (a model can then score a window
    without ever holding its whole logits). Returns ``{"perplexity", "nll" (mean per token),
    "tokens" (number scored)}``.
    """
    ids = np.asarray(token_ids, dtype=np.int64).reshape(-1)  # (N,)
    n = ids.shape[0]
    if max_length < 2:
        raise NlpressError(f"max_length must be at least 2, got {max_length}; pass a larger one")
    if not 1 <= stride <= max_length:
        raise NlpressError(
            f"stride must be between 1 and max_length ({max_length}), got {stride}; "
            "pass a stride of max_length or less"
        )
    if n < 2:
        raise NlpressError(f"the text has {n} token(s), need at least 2; pass a longer text")
    nll_sum, scored, prev_end = 0.0, 0, 0
    for begin in tqdm(
        _window_starts(n, max_length, stride), desc="perplexity", disable=not progress
    ):
        end = min(begin + max_length, n)
        window = ids[begin:end]  # (T,)
        first = max(prev_end, begin + 1)  # first target scored here; token 0 has no context
        log_p = (log_probs_fn or _logits_scorer(logits_fn))(window, first - begin - 1)
        nll_sum -= float(np.sum(log_p))
        scored += end - first
        prev_end = end
    mean_nll = nll_sum / scored
    return {"perplexity": float(np.exp(mean_nll)), "nll": mean_nll, "tokens": scored}


# ROW_CHUNK rows at a time: a 2,048-token window of a 49,152-word vocabulary is 805 MB in
# float64 per temporary


def target_log_probs(logits: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """log_softmax(logits[i])[targets[i]] per row ``(rows,)``, in float64, ROW_CHUNK rows at a time."""
    out = []
    for i in range(0, targets.shape[0], ROW_CHUNK):
        log_p = log_softmax(logits[i : i + ROW_CHUNK])  # (chunk, V)
        out.append(log_p[np.arange(log_p.shape[0]), targets[i : i + ROW_CHUNK]])
    return np.concatenate(out) if out else np.zeros(0)


def _logits_scorer(logits_fn):
    """``log_probs_fn`` from a ``logits_fn``: the whole window's logits, scored from ``skip``."""

    def score(window: np.ndarray, skip: int) -> np.ndarray:
        logits = np.asarray(logits_fn(window[None, :]))  # (1, T, V)
        return target_log_probs(logits[0, skip:-1], window[skip + 1 :])

    return score


def _window_starts(n: int, max_length: int, stride: int) -> list[int]:
    """Window starts 0, stride, 2*stride, ... up to the first window that reaches the end."""
    starts = []
    for begin in range(0, n, stride):
        starts.append(begin)
        if begin + max_length >= n:
            break
    return starts


def _f1_of(pred: np.ndarray, labels: np.ndarray, positive: int) -> float:
    tp = np.sum((pred == positive) & (labels == positive))
    fp = np.sum((pred == positive) & (labels != positive))
    fn = np.sum((pred != positive) & (labels == positive))
    denominator = 2 * tp + fp + fn
    return float(2 * tp / denominator) if denominator else 0.0


def _pair(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(a).reshape(-1), np.asarray(b).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"lengths differ: {a.shape[0]} vs {b.shape[0]}")
    if a.shape[0] == 0:
        raise ValueError("no values to score")
    return a, b
