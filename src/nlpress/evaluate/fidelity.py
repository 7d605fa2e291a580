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


def logits_fidelity(
    ref_logits: np.ndarray, new_logits: np.ndarray, mask: np.ndarray | None = None
) -> dict[str, float]:
    """Top-1 agreement and mean KL(softmax(ref) || softmax(new)) over rows.

    Logits are ``(N, C)`` for classifiers or ``(N, T, V)`` for next-token prediction, where
    ``mask`` ``(N, T)`` keeps only real tokens (an attention mask, for instance).
    """
    ref = np.asarray(ref_logits, dtype=np.float64)
    new = np.asarray(new_logits, dtype=np.float64)
    if ref.shape != new.shape:
        raise ValueError(f"shapes differ: {ref.shape} vs {new.shape}")
    ref, new = ref.reshape(-1, ref.shape[-1]), new.reshape(-1, new.shape[-1])  # (rows, V)
    if mask is not None:
        keep = np.asarray(mask, dtype=bool).reshape(-1)  # (rows,)
        if keep.shape[0] != ref.shape[0]:
            raise ValueError(f"mask {np.shape(mask)} does not match logits rows {ref.shape[0]}")
        ref, new = ref[keep], new[keep]
    if ref.shape[0] == 0:
        raise ValueError("no rows to compare")
    log_p, log_q = log_softmax(ref), log_softmax(new)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)  # (rows,)
    top1 = np.argmax(ref, axis=-1) == np.argmax(new, axis=-1)
    return {"top1_agreement": float(top1.mean()), "kl_mean": float(kl.mean())}


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Log-softmax over the last axis, in float64, stable for large logits."""
    x = np.asarray(x, dtype=np.float64)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
