"""Pruning masks as pure functions: magnitude (per layer or global) and N:M, and applying them.

Unstructured magnitude pruning keeps the weights of largest |w| (L1) or w^2 (L2) importance
(Han et al. 2015, "Learning both Weights and Connections"); with one threshold for all layers
("global") or one per layer. N:M sparsity keeps the N largest of every M consecutive weights along
the input dimension, the pattern sparse tensor cores run (Mishra et al. 2021, "Accelerating
Sparse Deep Neural Networks", NVIDIA 2:4).

Why this design: every function takes tensors and returns tensors, so it is tested alone against
exact counts; the achieved sparsity is *exactly* the target (``round(sparsity * numel)`` weights
removed), never "about" it, because ties at the threshold are broken by position (the earlier
index is pruned first) instead of by a ``<=`` comparison that could remove more. A mask is a bool
tensor, True = kept, and a model's masks are a ``dict[str, Tensor]`` from parameter name to mask,
the one representation gradual pruning, Wanda and SparseGPT will reuse with :func:`apply_masks`.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from nlpress.errors import NlpressError

Masks = dict[str, torch.Tensor]


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise NlpressError(f"sparsity {sparsity!r} is outside [0, 1); use e.g. 0.5 for 50%")


def importance(weight: torch.Tensor, norm: str = "l1") -> torch.Tensor:
    """|w| for L1, w^2 for L2, in float32 (the ranking is the same; L2 is kept for parity)."""
    w = weight.detach().float()
    if norm == "l1":
        return w.abs()
    if norm == "l2":
        return w * w
    raise NlpressError(f"unknown norm {norm!r}; use l1 or l2")


def _lowest(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Flat indices of the ``k`` smallest scores; ties go to the lower index (stable sort)."""
    order = torch.sort(scores.reshape(-1), stable=True).indices
    return order[:k]


def magnitude_mask(scores: torch.Tensor, sparsity: float, per_row: bool = False) -> torch.Tensor:
    """Keep-mask removing exactly ``round(sparsity * numel)`` entries of lowest score.

    ``per_row``: each row of a 2-D ``scores`` loses exactly ``round(sparsity * columns)``, the
    comparison group Wanda uses (per output neuron), so its scores can be passed here as they are.
    """
    check_sparsity(sparsity)
    if per_row:
        k = int(round(sparsity * scores.shape[-1]))
        rows = scores.float().reshape(-1, scores.shape[-1])
        mask = torch.ones_like(rows, dtype=torch.bool)
        mask.scatter_(1, torch.sort(rows, dim=1, stable=True).indices[:, :k], False)
        return mask.reshape(scores.shape)
    k = int(round(sparsity * scores.numel()))
    mask = torch.ones(scores.numel(), dtype=torch.bool)
    mask[_lowest(scores, k)] = False
    return mask.reshape(scores.shape)


def global_masks(scores: Mapping[str, torch.Tensor], sparsity: float) -> Masks:
    """One threshold over all tensors: exactly ``round(sparsity * total)`` entries removed.

    Ties are broken by (tensor order, position), so the result does not depend on sort internals.
    """
    check_sparsity(sparsity)
    names = list(scores)
    flat = torch.cat([scores[n].reshape(-1).float() for n in names])
    keep = torch.ones(flat.numel(), dtype=torch.bool)
    keep[_lowest(flat, int(round(sparsity * flat.numel())))] = False
    out, start = {}, 0
    for n in names:
        size = scores[n].numel()
        out[n] = keep[start : start + size].reshape(scores[n].shape)
        start += size
    return out


def nm_mask(scores: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep the ``n`` highest of every ``m`` consecutive entries along the last dimension.

    ``scores`` is ``(out, in)`` with ``in`` divisible by ``m``; ties keep the earlier entry.
    """
    if not 0 < n < m:
        raise NlpressError(f"N:M sparsity needs 0 < N < M, got {n}:{m}; e.g. 2:4")
    if scores.shape[-1] % m:
        raise NlpressError(
            f"N:M {n}:{m} needs the input size ({scores.shape[-1]}) divisible by {m}"
        )
    groups = scores.float().reshape(-1, m)  # (out * in / m, m)
    # stable descending sort by position: negate and sort ascending, stable keeps earlier first
    top = torch.sort(-groups, dim=1, stable=True).indices[:, :n]  # (groups, n)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(1, top, True)
    return mask.reshape(scores.shape)


def apply_masks(model: torch.nn.Module, masks: Mapping[str, torch.Tensor]) -> None:
    """Zero every parameter entry whose mask is False (in place; call again after an optimizer
    step to keep pruned weights at zero)."""
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, mask in masks.items():
            if name not in params:
                raise NlpressError(f"mask for {name!r}, which is not a parameter of the model")
            p = params[name]
            if p.shape != mask.shape:
                raise NlpressError(
                    f"mask for {name!r} has shape {tuple(mask.shape)}, not {tuple(p.shape)}"
                )
            # masked_fill, not a multiply: w * 0 is -0.0 for negative w, a bit pattern the
            # sparse storage would have to keep as a value
            p.masked_fill_(~mask.to(p.device), 0.0)


def sparsity_of(t: torch.Tensor) -> float:
    """Share of exact zeros in a tensor."""
    return float((t == 0).sum()) / max(t.numel(), 1)


def mask_sparsity(masks: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Per-tensor share of removed entries."""
    return {n: 1.0 - float(m.sum()) / max(m.numel(), 1) for n, m in masks.items()}


def keep_masks_callback(masks: Mapping[str, torch.Tensor]):
    """``on_step_end(model, step)`` for a training loop: re-apply ``masks`` after each optimizer
    step, so pruned weights stay zero during fine-tuning or recovery."""

    def on_step_end(model: torch.nn.Module, step: int) -> None:
        apply_masks(model, masks)

    return on_step_end
