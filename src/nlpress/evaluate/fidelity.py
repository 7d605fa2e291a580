"""How closely a compressed model reproduces its reference model's outputs, without labels.

Task metrics need labelled data and move in coarse steps (one flipped prediction in 872 is 0.11
points of accuracy); fidelity compares the outputs themselves on any text, so it catches damage
early and on the user's unlabelled data: cosine to the reference embeddings for embedding models,
top-1 agreement and KL(reference || compressed) for classifiers and next-token prediction. All in
float64 numpy, so small differences between close models are not lost to rounding.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of ``a`` with the same row of ``b``, in float64."""
    a = np.asarray(a, dtype=np.float64)  # (N, D)
    b = np.asarray(b, dtype=np.float64)  # (N, D)
    if a.shape != b.shape:
        raise ValueError(f"shapes differ: {a.shape} vs {b.shape}")
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)  # (N,)
    return np.sum(a * b, axis=-1) / np.maximum(norms, _EPS)


def embedding_fidelity(ref: np.ndarray, new: np.ndarray) -> dict[str, float]:
    """Mean, minimum and 1st percentile of the per-row cosine between reference and new."""
    cos = cosine_rows(ref, new)
    return {
        "cosine_mean": float(cos.mean()),
        "cosine_min": float(cos.min()),
        "cosine_p01": float(np.percentile(cos, 1)),
    }


def pair_similarity_fidelity(
    ref_a: np.ndarray, ref_b: np.ndarray, new_a: np.ndarray, new_b: np.ndarray
) -> dict[str, float]:
    """Spearman correlation between the reference's and the new model's cosine similarity of
    each text pair (row i of ``*_a`` with row i of ``*_b``).

    What an STS or retrieval user sees is which pairs an embedding model ranks as similar, not
    where each vector points. A distilled student can rotate its embedding space and keep the
    ranking: an untrained 3-layer MiniLM student had a mean cosine of only 0.71 to its teacher,
    yet lost only 3.3 Spearman points on 1,500 STS-B pairs, and this agreement read 0.94 on 64
    of them. Needs no labels, only pairs.
    """
    from scipy import stats

    r, n = cosine_rows(ref_a, ref_b), cosine_rows(new_a, new_b)  # (N,) each
    if r.size < 3 or np.ptp(r) == 0 or np.ptp(n) == 0:
        return {"similarity_spearman": float(np.allclose(r, n))}  # nothing to rank
    return {"similarity_spearman": float(stats.spearmanr(r, n).statistic)}


def logits_fidelity(
    ref_logits: np.ndarray, new_logits: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Top-1 agreement and mean KL(softmax(ref) || softmax(new)) over rows.

    Logits are ``(N, C)`` for classifiers or ``(N, T, V)`` for next-token prediction, where
    ``mask`` ``(N, T)`` keeps only real tokens (an attention mask, for instance).
    """
    acc = FidelitySums()
    acc.add(ref_logits, new_logits, mask)
    return acc.result()


# Rows of (rows, V) logits turned into float64 at a time, here, in perplexity's scoring
# (nlpress.evaluate.metrics) and in a causal LM's output head (nlpress.runtime.predictor). The
# KL below holds five float64 temporaries of the block at once: with SmolLM2's 49,152-word
# vocabulary, 256 rows made the fidelity pass peak 540 MiB above the two loaded models (1,674
# MiB in all, over the 3x-the-model bound of a causal-LM compress). 64 rows make each temporary
# 25 MB, and the head's matmul of 64 x 576 x 49,152 is still large enough to run at full speed.
ROW_CHUNK = 64


class FidelitySums:
    """Running sums for :func:`logits_fidelity`, so logits can be compared a window at a time."""

    def __init__(self) -> None:
        self.kl, self.agree, self.rows = 0.0, 0, 0

    def add(self, ref_logits, new_logits, mask=None) -> None:
        ref, new = np.asarray(ref_logits), np.asarray(new_logits)
        if ref.shape != new.shape:
            raise ValueError(f"shapes differ: {ref.shape} vs {new.shape}")
        ref, new = ref.reshape(-1, ref.shape[-1]), new.reshape(-1, new.shape[-1])  # (rows, V)
        if mask is not None:
            keep = np.asarray(mask, dtype=bool).reshape(-1)  # (rows,)
            if keep.shape[0] != ref.shape[0]:
                raise ValueError(f"mask {np.shape(mask)} does not match logits rows {ref.shape[0]}")
            ref, new = ref[keep], new[keep]
        for i in range(0, ref.shape[0], ROW_CHUNK):
            r, q = ref[i : i + ROW_CHUNK], new[i : i + ROW_CHUNK]
            log_p, log_q = log_softmax(r), log_softmax(q)  # float64 (chunk, V)
            diff = np.subtract(log_p, log_q, out=log_q)  # in place: no third temporary
            self.kl += float(np.vdot(np.exp(log_p, out=log_p), diff))  # sum of p (log p - log q)
            self.agree += int(np.sum(np.argmax(r, axis=-1) == np.argmax(q, axis=-1)))
            self.rows += r.shape[0]

    def result(self) -> dict[str, float]:
        if self.rows == 0:
            raise ValueError("no rows to compare")
        return {"top1_agreement": self.agree / self.rows, "kl_mean": self.kl / self.rows}


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, in float64, stable for large logits."""
    shifted = np.array(x, dtype=np.float64)  # a copy, then worked on in place
    shifted -= shifted.max(axis=-1, keepdims=True)
    shifted -= np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return shifted
