"""Metrics against hand-computed values, scipy, and a plain torch reference for perplexity."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from nlpress.errors import NlpressError
from nlpress.evaluate.metrics import (
    accuracy,
    classification_metrics,
    f1,
    pearson,
    perplexity,
    spearman,
    sts_metrics,
)


def test_accuracy_and_binary_f1_by_hand() -> None:
    pred = np.array([1, 1, 0, 0, 1, 0])
    labels = np.array([1, 0, 0, 1, 1, 0])
    assert accuracy(pred, labels) == pytest.approx(4 / 6)
    # class 1: tp=2, fp=1, fn=1 -> 2*2 / (4 + 1 + 1)
    assert f1(pred, labels) == pytest.approx(4 / 6)
    assert f1(np.zeros(3), np.zeros(3)) == 0.0  # no positives at all


def test_macro_f1_by_hand() -> None:
    pred = np.array([0, 1, 2, 2, 1, 0])
    labels = np.array([0, 1, 1, 2, 2, 0])
    # class 0: 1.0; class 1: tp=1 fp=1 fn=1 -> 0.5; class 2: tp=1 fp=1 fn=1 -> 0.5
    assert f1(pred, labels, average="macro") == pytest.approx((1.0 + 0.5 + 0.5) / 3)
    with pytest.raises(ValueError, match="average"):
        f1(pred, labels, average="micro")


def test_correlations_match_scipy() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=50), rng.normal(size=50)
    y = x + 0.5 * y
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y).statistic, abs=1e-12)
    with pytest.raises(ValueError, match="lengths differ"):
        spearman(x, y[:-1])


def test_classification_metrics() -> None:
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [0.2, 0.1]])
    out = classification_metrics(logits, np.array([0, 1, 1, 0]))
    assert out == pytest.approx({"accuracy": 0.75, "f1": 2 / 3})
    three = np.eye(3)[[0, 1, 2, 2]]  # predictions 0, 1, 2, 2
    out = classification_metrics(three, np.array([0, 1, 2, 1]))
    assert out["f1"] == pytest.approx(f1(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), "macro"))


def test_sts_metrics_scaled_by_100() -> None:
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(20, 8)), rng.normal(size=(20, 8))
    scores = rng.uniform(0, 5, size=20)
    cos = np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    out = sts_metrics(a, b, scores)
    assert out["spearman"] == pytest.approx(100 * stats.spearmanr(cos, scores).statistic)
    assert out["pearson"] == pytest.approx(100 * stats.pearsonr(cos, scores).statistic)


VOCAB = 11
TABLE = np.random.default_rng(2).normal(scale=2.0, size=(VOCAB, VOCAB))  # bigram logits


def bigram_logits(ids: np.ndarray) -> np.ndarray:
    """A fixed "model": logits at t depend on token t only (plus position, to see the context)."""
    assert ids.dtype == np.int64 and ids.ndim == 2 and ids.shape[0] == 1
    positions = np.arange(ids.shape[1])[:, None] * 0.1  # (T, 1): window position matters
    return (TABLE[ids[0]] + positions)[None].astype(np.float32)  # (1, T, V)


def reference_perplexity(ids: np.ndarray, max_length: int, stride: int) -> tuple[float, int]:
    """The HF guide's loop, but summing CrossEntropyLoss over scored tokens (ignore_index=-100)."""
    loss_fn = torch.nn.CrossEntropyLoss(reduction="sum")  # ignore_index defaults to -100
    nll_sum, count, prev_end = 0.0, 0, 0
    for begin in range(0, len(ids), stride):
        end = min(begin + max_length, len(ids))
        window = torch.from_numpy(ids[begin:end])
        targets = window.clone()
        targets[: -(end - prev_end)] = -100
        logits = torch.from_numpy(bigram_logits(ids[None, begin:end])[0]).double()  # (T, V)
        shift_logits, shift_targets = logits[:-1], targets[1:]
        nll_sum += loss_fn(shift_logits, shift_targets).item()
        count += int((shift_targets != -100).sum())
        prev_end = end
        if end == len(ids):
            break
    return float(np.exp(nll_sum / count)), count


@pytest.mark.parametrize(
    ("n", "max_length", "stride"),
    [(50, 8, 8), (50, 8, 4), (50, 8, 3), (50, 8, 1), (7, 16, 8), (33, 10, 10), (2, 2, 1)],
)
def test_perplexity_matches_torch_reference(n: int, max_length: int, stride: int) -> None:
    ids = np.random.default_rng(n + stride).integers(0, VOCAB, size=n)
    out = perplexity(bigram_logits, ids, max_length, stride)
    expected, count = reference_perplexity(ids, max_length, stride)
    assert out["perplexity"] == pytest.approx(expected, rel=1e-9)
    assert out["tokens"] == count
    assert out["nll"] == pytest.approx(np.log(expected), rel=1e-9)


def test_perplexity_token_counts() -> None:
    ids = np.arange(20) % VOCAB
    assert (
        perplexity(bigram_logits, ids, 20, 20)["tokens"] == 19
    )  # one window: first token unscored
    assert perplexity(bigram_logits, ids, 5, 5)["tokens"] == 16  # 4 windows, each loses its first
    assert perplexity(bigram_logits, ids, 5, 2)["tokens"] == 19  # overlapping: every token but 0
    assert perplexity(bigram_logits, ids[None], 5, 2, progress=True)["tokens"] == 19


def test_perplexity_of_uniform_model_is_vocab_size() -> None:
    out = perplexity(lambda ids: np.zeros((1, ids.shape[1], 7)), np.arange(30) % 7, 8, 4)
    assert out["perplexity"] == pytest.approx(7.0)


@pytest.mark.parametrize(
    ("n", "max_length", "stride", "expected"),
    [(1, 8, 4, "at least 2"), (10, 8, 9, "stride"), (10, 8, 0, "stride"), (10, 1, 1, "max_length")],
)
def test_perplexity_rejects_bad_settings(
    n: int, max_length: int, stride: int, expected: str
) -> None:
    with pytest.raises(NlpressError, match=expected):
        perplexity(bigram_logits, np.zeros(n, dtype=np.int64), max_length, stride)
