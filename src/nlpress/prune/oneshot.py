"""One-shot LLM pruning math: Wanda and SparseGPT, as pure functions on one layer.

**Wanda** (Sun, Liu, Bair, Kolter 2023, "A Simple and Effective Pruning Approach for Large
Language Models", arXiv:2306.11695): a weight's importance is ``|W_ij| * ||X_j||_2``, its
magnitude times the L2 norm of its input channel over the calibration tokens, and weights are
compared *per output row* (each row loses the same share) or per group of ``m`` inputs for N:M.
No weight update: the mask functions of :mod:`nlpress.prune.masks` do the selection, so ties and
exact counts behave like magnitude pruning.

**SparseGPT** (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models Can Be Accurately
Pruned in One-Shot", arXiv:2301.00774, Algorithm 1): the GPTQ column loop with "prune" in place
of "round". Columns are visited left to right; every ``block_size`` (128) columns the mask of that
block is chosen by the OBS saliency ``w^2 / [H^-1]_jj^2`` (adaptive mask selection, over the whole
block for unstructured sparsity, per group of ``m`` columns for N:M), and each pruned column's
error is spread over the columns not yet visited with the upper Cholesky factor of
``(H + damp I)^-1``. That factor, its damping and its retry-then-raise on a non positive definite
Hessian are GPTQ's (:func:`nlpress.quantize.gptq.inverse_hessian_chol`), shared rather than copied;
the glue falls back to Wanda's mask on a layer whose factorisation fails.

Why this design: tensors in, tensors out, tested against plain reference loops (the per-row
sort of Wanda, the explicit OBS update with a fresh inverse per column for SparseGPT); the model
walk is the one sequential calibration engine (:mod:`nlpress.calib.sequential`), in
:mod:`nlpress.prune.oneshot_steps`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from nlpress.prune.masks import check_sparsity, magnitude_mask, nm_mask


def wanda_scores(weight: Tensor, input_norms: Tensor) -> Tensor:
    """``|W_ij| * ||X_j||_2``: (out, in) scores from the weight and per-input-channel L2 norms."""
    if input_norms.shape != (weight.shape[1],):
        raise ValueError(
            f"input_norms has shape {tuple(input_norms.shape)}, not ({weight.shape[1]},)"
        )
    return weight.detach().float().abs() * input_norms.float()[None, :]  # (out, in)


def wanda_mask(
    weight: Tensor,
    input_norms: Tensor,
    sparsity: float | None = None,
    nm: tuple[int, int] | None = None,
) -> Tensor:
    """Keep-mask (True = kept) of Wanda: per output row at ``sparsity``, or N:M with ``nm``."""
    scores = wanda_scores(weight, input_norms)
    if nm is not None:
        return nm_mask(scores, *nm)
    if sparsity is None:
        raise ValueError("give sparsity or nm")
    return magnitude_mask(scores, sparsity, per_row=True)


def _block_mask(w1: Tensor, d: Tensor, sparsity: float) -> Tensor:
    """Pruned-mask (True = pruned) of the ``round(sparsity * numel)`` lowest ``w^2 / d^2``."""
    scores = (w1**2 / d[None, :] ** 2).reshape(-1)  # (out * B,)
    k = int(round(sparsity * scores.numel()))
    pruned = torch.zeros(scores.numel(), dtype=torch.bool)
    pruned[torch.sort(scores, stable=True).indices[:k]] = True
    return pruned.reshape(w1.shape)


def _nm_pruned(w: Tensor, d: Tensor, n: int, m: int) -> Tensor:
    """Pruned-mask of ``m`` columns: the ``m - n`` lowest ``w^2 / d^2`` of each row."""
    return ~nm_mask(w**2 / d[None, :] ** 2, n, m)


def sparsegpt_prune(
    weight: Tensor,
    hessian: Tensor,
    sparsity: float | None = None,
    nm: tuple[int, int] | None = None,
    *,
    percdamp: float = 0.01,
    block_size: int = 128,
) -> tuple[Tensor, Tensor, float]:
    """SparseGPT on one layer: (new weight, keep-mask, damping used).

    ``hessian`` is ``2/n X^T X`` (in, in) of the layer's inputs. Raises
    :class:`nlpress.quantize.gptq.GPTQError` when the Hessian stays singular after damping.
    Unstructured sparsity is exact per block of ``block_size`` columns (so per layer too, up to
    rounding); N:M is exact per group of ``m`` inputs.
    """
    from nlpress.quantize.gptq import inverse_hessian_chol

    if nm is None:
        if sparsity is None:
            raise ValueError("give sparsity or nm")
        check_sparsity(sparsity)
    else:
        n, m = nm
        if weight.shape[1] % m or block_size % m:
            raise ValueError(
                f"N:M {n}:{m} needs in ({weight.shape[1]}) and block size divisible by m"
            )
    w = weight.detach().to(torch.float32).clone()  # (out, in)
    h = hessian.detach().to(torch.float32).clone()  # (in, in)
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    hinv, damp = inverse_hessian_chol(h, percdamp)  # upper factor of (H + damp I)^-1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # thousands of tiny column ops: see gptq_quantize
    try:
        w, pruned = _columns(w, hinv, sparsity, nm, block_size)
    finally:
        torch.set_num_threads(threads)
    w[pruned] = 0.0  # exact zeros (the updates never touch a visited column, but be explicit)
    return w.to(weight.dtype), ~pruned, damp


def _columns(w, hinv, sparsity, nm, block_size) -> tuple[Tensor, Tensor]:
    """The lazy-batch column loop of Algorithm 1; returns (weight, pruned-mask)."""
    cols = w.shape[1]
    pruned = torch.zeros_like(w, dtype=torch.bool)
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].clone()  # (out, B)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]  # (B, B)
        d1 = torch.diag(hinv1)  # (B,)
        p1 = _block_mask(w1, d1, sparsity) if nm is None else torch.zeros_like(w1, dtype=torch.bool)
        for i in range(i2 - i1):
            if nm is not None and i % nm[1] == 0:
                p1[:, i : i + nm[1]] = _nm_pruned(w1[:, i : i + nm[1]], d1[i : i + nm[1]], *nm)
            col = w1[:, i]  # (out,)
            q = torch.where(p1[:, i], torch.zeros_like(col), col)
            e = (col - q) / hinv1[i, i]  # (out,)
            w1[:, i:] -= e[:, None] @ hinv1[i, i:][None, :]
            w1[:, i] = q
            err1[:, i] = e
        w[:, i1:i2] = w1
        pruned[:, i1:i2] = p1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return w, pruned
