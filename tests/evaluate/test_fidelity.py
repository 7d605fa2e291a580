"""Fidelity: cosine by hand, KL against scipy.stats.entropy, masks for next-token logits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special, stats

from nlpress.evaluate.fidelity import (
    cosine_rows,
    embedding_fidelity,
    logits_fidelity,
    pair_similarity_fidelity,
)


def test_cosine_rows_by_hand() -> None:
    a = np.array([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [3.0, 4.0]], dtype=np.float32)
    b = np.array([[0.0, 2.0], [2.0, 2.0], [1.0, 0.0], [-3.0, -4.0]], dtype=np.float32)
    cos = cosine_rows(a, b)
    assert cos.dtype == np.float64
    np.testing.assert_allclose(cos, [0.0, 1.0, 0.0, -1.0], atol=1e-12)
    with pytest.raises(ValueError, match="shapes differ"):
        cosine_rows(a, b[:2])


def test_embedding_fidelity() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(200, 16))
    new = ref + rng.normal(scale=0.1, size=ref.shape)
    cos = cosine_rows(ref, new)
    out = embedding_fidelity(ref, new)
    assert out["cosine_mean"] == pytest.approx(cos.mean())
    assert out["cosine_min"] == pytest.approx(cos.min())
    assert out["cosine_min"] <= out["cosine_p01"] <= out["cosine_mean"] < 1.0
    assert embedding_fidelity(ref, ref)["cosine_min"] == pytest.approx(1.0)


def test_pair_similarity_keeps_a_rotated_space_and_catches_a_shuffled_one() -> None:
    # a student may rotate the embedding space: every vector moves (mean cosine near 0) yet
    # every pair's similarity, all an STS user sees, is kept
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(64, 16)), rng.normal(size=(64, 16))
    q, _ = np.linalg.qr(rng.normal(size=(16, 16)))  # a random rotation
    assert abs(embedding_fidelity(a, a @ q)["cosine_mean"]) < 0.3
    kept = pair_similarity_fidelity(a, b, a @ q, b @ q)["similarity_spearman"]
    assert kept == pytest.approx(1.0)
    noisy_a = a + rng.normal(scale=0.5, size=a.shape)
    noisy = pair_similarity_fidelity(a, b, noisy_a, b)["similarity_spearman"]
    assert noisy == pytest.approx(
        stats.spearmanr(cosine_rows(a, b), cosine_rows(noisy_a, b)).statistic
    )
    assert 0.3 < noisy < 0.99
    # the pairs shuffled against each other: the ranking is gone
    lost = pair_similarity_fidelity(a, b, a, b[rng.permutation(64)])["similarity_spearman"]
    assert abs(lost) < 0.35


def test_logits_fidelity_matches_scipy_entropy() -> None:
    rng = np.random.default_rng(1)
    ref = rng.normal(scale=3.0, size=(40, 5))
    new = ref + rng.normal(scale=1.0, size=ref.shape)
    expected_kl = np.mean(
        [
            stats.entropy(special.softmax(r), special.softmax(q))
            for r, q in zip(ref, new, strict=True)
        ]
    )
    out = logits_fidelity(ref, new)
    assert out["kl_mean"] == pytest.approx(expected_kl, rel=1e-10)
    assert out["top1_agreement"] == pytest.approx(np.mean(ref.argmax(1) == new.argmax(1)))
    same = logits_fidelity(ref.astype(np.float32), ref.astype(np.float32))
    assert same["top1_agreement"] == 1.0 and same["kl_mean"] == pytest.approx(0.0, abs=1e-12)


def test_logits_fidelity_next_token_with_mask() -> None:
    rng = np.random.default_rng(2)
    ref = rng.normal(size=(2, 6, 9))  # (N, T, V)
    new = ref.copy()
    new[1, 4:] = rng.normal(size=(2, 9)) * 10  # differences only where the mask is 0
    mask = np.ones((2, 6), dtype=np.int64)
    mask[1, 4:] = 0
    out = logits_fidelity(ref, new, mask=mask)
    assert out["top1_agreement"] == 1.0 and out["kl_mean"] == pytest.approx(0.0, abs=1e-12)
    unmasked = logits_fidelity(ref, new)
    kl_rows = [
        stats.entropy(special.softmax(r), special.softmax(q))
        for r, q in zip(ref.reshape(-1, 9), new.reshape(-1, 9), strict=True)
    ]
    assert unmasked["kl_mean"] == pytest.approx(np.mean(kl_rows), rel=1e-10)
    with pytest.raises(ValueError, match="mask"):
        logits_fidelity(ref, new, mask=np.ones((2, 5)))


def test_logits_fidelity_stable_for_large_logits() -> None:
    ref = np.array([[1000.0, 0.0], [0.0, 1000.0]])
    out = logits_fidelity(ref, ref + np.array([[0.0, 999.0], [0.0, 0.0]]))
    assert np.isfinite(out["kl_mean"]) and out["top1_agreement"] == 1.0
