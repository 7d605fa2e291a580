"""AWQ: activation-aware weight quantization by per-input-channel scaling.

Lin et al. 2023, "AWQ: Activation-aware Weight Quantization for LLM Compression and
Acceleration" (arXiv:2306.00978), section 3.2. Weight columns that meet large activations matter
most; scaling them up by ``s_j`` before rounding (and the activations down by ``s_j``, folded into
the previous norm or linear, :mod:`nlpress.quantize.scale_fold`) shrinks their relative rounding
error. The scales are ``s = mean|x|^alpha``, normalised so ``max(s) * min(s) = 1`` as in the
reference code (mit-han-lab/llm-awq ``auto_scale.py``), with ``alpha`` chosen on a grid in
[0, 1) to minimise the output error of the linears that share the input::

    err(alpha) = sum_i || x W_i^T - (x / s) Q(W_i diag(s))^T ||^2

measured on a subsample of the calibration rows. ``alpha = 0`` is plain round-to-nearest, so the
search never does worse than RTN on the calibration rows. Why the linears' outputs rather than the
whole attention/MLP block: it needs only the block inputs the sequential engine already keeps, and
the paper's ablation finds most of the gain in the scale itself.

After scaling, the reference code's clipping search (``auto_clip.py``): for each output row and
weight group, the range is shrunk to ``max|w| * (1 - i / 20)``, ``i < 10``, keeping the shrink
that minimises that group's contribution to the output error on 512 calibration rows. Rounding
error falls for the many small weights at the price of clipping a few large ones. As in the
reference, the query and key projections are not clipped (their error meets in the q.k product,
which a per-linear output error does not see).

Pure functions; the model glue is in :mod:`nlpress.quantize.weight_only`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from nlpress.quantize.primitives import QuantSpec, fake_quantize

GRID = 20  # alphas 0, 0.05, ..., 0.95: the reference implementation's grid
CLIP_GRID, CLIP_MAX_SHRINK = 20, 0.5  # shrinks 1, 0.95, ..., 0.55 of max|w|: the reference's
CLIP_ROWS = 512  # calibration rows the clipping error is measured on (the reference's 512)
CLIP_CHUNK = 64  # output rows per step: bounds the (rows, tokens, groups) work tensors


def awq_scales(act_abs_mean: Tensor, alpha: float, w_mean: Tensor | None = None) -> Tensor:
    """``s_j = mean|x_j|^alpha`` normalised by ``sqrt(max(s) min(s))`` (in,).

    With ``w_mean`` (AutoAWQ's "duo scaling"): ``s_j = mean|x_j|^alpha / w_mean_j^(1 - alpha)``,
    ``w_mean`` being each input column's mean weight magnitude relative to its group's maximum.
    """
    s = act_abs_mean.float().clamp(min=1e-4).pow(alpha)
    if w_mean is not None:
        s = (s / (w_mean.float().pow(1 - alpha) + 1e-4)).clamp(min=1e-4)
    return s / (s.max() * s.min()).sqrt()


def relative_weight_mean(weights: list[Tensor], spec: QuantSpec) -> Tensor:
    """Per input column, the mean over output rows of ``|w| / max|w|`` of its group (in,)."""
    w = torch.cat([x.float() for x in weights])  # (sum out, in)
    g = spec.group_size if spec.granularity == "group" and spec.group_size else w.shape[1]
    a = w.abs().reshape(w.shape[0], -1, g)
    return (a / (a.amax(-1, keepdim=True) + 1e-6)).reshape(w.shape).mean(0)


def scaled_output_error(x: Tensor, weights: list[Tensor], s: Tensor, spec: QuantSpec) -> float:
    """``sum_i ||x W_i^T - (x / s) Q(W_i diag(s))^T||^2`` for rows ``x`` (n, in)."""
    xs = x / s  # (n, in)
    err = 0.0
    for w in weights:  # (out, in)
        wq = fake_quantize(w.float() * s[None, :], spec)
        err += float((x @ w.float().t() - xs @ wq.t()).square().sum())
    return err


@dataclass
class AWQResult:
    alpha: float
    scales: Tensor  # (in,)
    error: float  # output error at the chosen alpha
    rtn_error: float  # output error at alpha = 0 (round-to-nearest)


def awq_search(
    x: Tensor,
    weights: list[Tensor],
    act_abs_mean: Tensor,
    spec: QuantSpec,
    grid: int = GRID,
    duo: bool = False,
) -> AWQResult:
    """Best ``alpha`` on the grid for linears ``weights`` sharing inputs ``x`` (n, in).

    Unit scales (round-to-nearest) are always a candidate, so the result is never worse than RTN
    on ``x``; with ``duo`` scaling alpha 0 is not RTN, hence the separate candidate.
    """
    x = x.float()
    w_mean = relative_weight_mean(weights, spec) if duo else None
    ones = torch.ones_like(act_abs_mean, dtype=torch.float32)
    rtn = scaled_output_error(x, weights, ones, spec)
    best = AWQResult(0.0, ones, rtn, rtn)
    for k in range(grid):
        alpha = k / grid
        if alpha == 0.0 and not duo:
            continue  # that is the unit-scale candidate above
        s = awq_scales(act_abs_mean, alpha, w_mean)
        err = scaled_output_error(x, weights, s, spec)
        if err < best.error:
            best = AWQResult(alpha, s, err, rtn)
    return best


def smooth_scales(act_abs_max: Tensor, weight_abs_max: Tensor, alpha: float) -> Tensor:
    """SmoothQuant's ``s_j = max|X_j|^alpha / max|W_j|^(1 - alpha)`` (Xiao et al. 2022, eq. 4)."""
    a = act_abs_max.float().clamp(min=1e-5)
    w = weight_abs_max.float().clamp(min=1e-5)
    return (a.pow(alpha) / w.pow(1 - alpha)).clamp(min=1e-5)


def clip_search(
    w: Tensor,
    x: Tensor,
    spec: QuantSpec,
    grid: int = CLIP_GRID,
    max_shrink: float = CLIP_MAX_SHRINK,
) -> Tensor:
    """Per (output row, group) clipping bound of ``w`` (out, in) on input rows ``x`` (n, in).

    Returns ``(out, in // group)`` bounds: for each group the shrink of ``max|w|`` on the grid
    whose clipped-and-rounded weights give the smallest mean squared error of that group's part
    of the output, ``x_g w_g^T``. Shrink 1 (no clipping) is on the grid, so no group gets worse
    on ``x``.
    """
    out_f, in_f = w.shape
    g = spec.group_size if spec.granularity == "group" and spec.group_size else in_f
    xg = x.float().reshape(x.shape[0], in_f // g, g)  # (n, groups, g)
    wg = w.float().reshape(out_f, in_f // g, g)
    org = wg.abs().amax(-1)  # (out, groups)
    best, best_err = org.clone(), torch.full_like(org, float("inf"))
    for c in range(0, out_f, CLIP_CHUNK):
        wc = wg[c : c + CLIP_CHUNK]
        ref = torch.einsum("ngk,cgk->cng", xg, wc)
        for i in range(int(max_shrink * grid)):
            bound = org[c : c + CLIP_CHUNK] * (1 - i / grid)
            clipped = torch.maximum(torch.minimum(wc, bound[..., None]), -bound[..., None])
            q = fake_quantize(clipped.reshape(-1, in_f), spec).reshape(wc.shape)
            err = (torch.einsum("ngk,cgk->cng", xg, q) - ref).square().mean(1)  # (chunk, groups)
            better = err < best_err[c : c + CLIP_CHUNK]
            best_err[c : c + CLIP_CHUNK][better] = err[better]
            best[c : c + CLIP_CHUNK][better] = bound[better]
    return best


def apply_clip(w: Tensor, bound: Tensor) -> None:
    """Clamp ``w`` (out, in) in place to ``[-bound, bound]`` per group (``bound``: out, groups)."""
    out_f, in_f = w.shape
    b = bound.to(w.dtype)[..., None]  # (out, groups, 1)
    view = w.data.view(out_f, bound.shape[1], in_f // bound.shape[1])
    torch.maximum(torch.minimum(view, b), -b, out=view)
