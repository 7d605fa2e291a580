"""The pure parts of per-layer sensitivity: scores against plain loops, rankings, bisection."""

import math

import numpy as np
import pytest

from nlpress.quantize.sensitivity import (
    rank_keep_one,
    rank_quantize_one,
    score_rows,
    smallest_passing,
)


def test_embedding_score_matches_a_plain_loop():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(7, 5))
    new = ref + 0.3 * rng.normal(size=(7, 5))
    cos = []
    for a, b in zip(ref, new, strict=True):
        dot = sum(x * y for x, y in zip(a, b, strict=True))
        cos.append(dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))))
    s = score_rows("sentence-embedding", ref, new)
    assert s.fidelity == pytest.approx(sum(cos) / len(cos), abs=1e-12)
    assert s.loss == pytest.approx(1 - sum(cos) / len(cos), abs=1e-12)
    assert s.fidelity < 0.99  # the noise is visible: the check can fail


@pytest.mark.parametrize("task", ["text-classification", "causal-lm"])
def test_logits_score_matches_a_plain_loop(task):
    rng = np.random.default_rng(1)
    ref = rng.normal(size=(9, 4)) * 3
    new = ref + rng.normal(size=(9, 4))
    agree, kls = 0, []
    for r, q in zip(ref, new, strict=True):
        p = [math.exp(v) / sum(math.exp(w) for w in r) for v in r]
        qq = [math.exp(v) / sum(math.exp(w) for w in q) for v in q]
        kls.append(sum(pi * math.log(pi / qi) for pi, qi in zip(p, qq, strict=True)))
        agree += int(np.argmax(r) == np.argmax(q))
    s = score_rows(task, ref, new)
    assert s.fidelity == pytest.approx(agree / 9, abs=1e-12)
    assert s.loss == pytest.approx(sum(kls) / 9, rel=1e-9)
    assert 0 < s.fidelity < 1 and s.loss > 0.01


def test_rankings_put_the_most_sensitive_first_and_keep_ties_in_graph_order():
    quant_one = {"a": 0.1, "b": 0.5, "c": 0.1, "d": 0.3}  # loss with the layer alone int8
    assert rank_quantize_one(quant_one) == ["b", "d", "a", "c"]
    keep_one = {"a": 0.2, "b": 0.05, "c": 0.2, "d": 0.1}  # loss left with the layer alone fp32
    assert rank_keep_one(keep_one) == ["b", "d", "a", "c"]


def _scan(values, target, lo, hi):
    return next((k for k in range(lo, hi + 1) if values[k] >= target), None)


@pytest.mark.parametrize("seed", range(25))
def test_bisection_agrees_with_a_linear_scan_on_monotone_curves(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 40))
    values = np.sort(rng.uniform(0.9, 1.0, n + 1))  # fidelity grows with layers kept fp32
    target = float(rng.uniform(0.88, 1.0))
    calls = []

    def measure(k):
        calls.append(k)
        return float(values[k])

    assert smallest_passing(measure, target, 0, n) == _scan(values, target, 0, n)
    assert len(calls) == len(set(calls))  # nothing measured twice
    assert len(calls) <= math.ceil(math.log2(n + 1)) + 2


@pytest.mark.parametrize("seed", range(25))
def test_bisection_on_a_bumpy_curve_returns_a_measured_pass_after_a_measured_fail(seed):
    rng = np.random.default_rng(100 + seed)
    values = rng.uniform(0.0, 1.0, 30)
    seen = {}

    def measure(k):
        seen[k] = float(values[k])
        return seen[k]

    k = smallest_passing(measure, 0.5, 0, 29)
    if k is None:
        assert seen[29] < 0.5
    else:
        assert seen[k] >= 0.5
        assert k == 0 or seen[k - 1] < 0.5


def test_bisection_edges():
    assert smallest_passing(lambda k: 1.0, 0.9, 0, 10) == 0
    assert smallest_passing(lambda k: 0.0, 0.9, 0, 10) is None
    assert smallest_passing(lambda k: k / 10, 0.9, 0, 10) == 9
    with pytest.raises(ValueError, match="empty range"):
        smallest_passing(lambda k: 1.0, 0.9, 3, 2)
