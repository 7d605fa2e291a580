"""GPTQ: weight quantization that corrects each column's rounding error on the columns not yet quantized.

Frantar, Ashkboos, Hoefler, Alistarh 2022, "GPTQ: Accurate Post-Training Quantization for
Generative Pre-trained Transformers" (arXiv:2210.17323), Algorithm 1. For a linear layer with
weight ``W`` (out, in) and inputs ``X``, minimise ``||W X - Q X||^2`` column by column: quantize
column ``j``, then spread its error over the remaining columns with the inverse Hessian
``H^-1 = (2 X X^T)^-1``, taken from the upper Cholesky factor so each step is one row of it.
"Lazy batch" updates (``block_size`` columns at a time, the rest updated once per block) make it
fast; the result is the same as the plain column loop (tested against one).

Options as in the reference implementation (IST-DASLab/gptq): ``percdamp`` adds that fraction of
the mean diagonal to H (numerical stability); ``act_order`` quantizes columns in order of
decreasing ``H_jj`` (large activations first), and then uses group parameters computed from the
original weight ("static groups") so that groups stay contiguous in the stored layout; dead inputs
(``H_jj = 0``) get zero weight; ``range_search`` picks each group's range by the reference
quantizer's ``mse`` option: the min/max range shrunk on a grid (1, 0.99, ..., 0.21) to the
factor with the smallest ``sum |q - w|^2.4`` per row, which spends the few int4 levels on the
bulk of the weights rather than on one outlier (GPTQ then corrects the clipped outlier's error on
the later columns). When the Cholesky factorisation fails, damping is raised tenfold
and retried; after that :class:`GPTQError` is raised and the caller falls back to round-to-nearest.

Pure function: tensors in, tensors out; the model glue is in :mod:`nlpress.quantize.weight_only`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch
from torch import Tensor

from nlpress.quantize.primitives import QuantSpec, compute_qparams

log = logging.getLogger(__name__)

DAMP_RETRIES = 3  # damping x10 per retry: 0.01 -> 10x the mean diagonal, then give up
# the reference quantizer's mse search: grid 100, shrink down to 0.2 of the range, norm 2.4
RANGE_GRID, RANGE_MAX_SHRINK, RANGE_NORM = 100, 0.8, 2.4


class GPTQError(RuntimeError):
    """The Hessian stayed not positive definite even with raised damping."""


@dataclass
class GPTQResult:
    weight: Tensor  # (out, in) dequantized weight, the layer's new weight
    scale: Tensor  # (out, in // G) or (out, 1)
    zero_point: Tensor  # same shape, int32
    loss: float  # sum of (w - q)^2 / [H^-1]_jj / 2 over all weights, GPTQ's error estimate
    damp: float  # damping actually used (fraction of the mean diagonal)


def _qcol(w: Tensor, scale: Tensor, zero: Tensor, spec: QuantSpec) -> Tensor:
    """Fake-quantize one column ``w`` (out,) with per-row ``scale``/``zero`` (out,)."""
    q = torch.clamp(torch.round(w / scale) + zero, spec.qmin, spec.qmax)
    return (q - zero) * scale


def inverse_hessian_chol(h: Tensor, percdamp: float) -> tuple[Tensor, float]:
    """Upper Cholesky factor of ``(H + damp I)^-1``; raises damping on failure (module docstring)."""
    mean_diag = torch.mean(torch.diag(h)).item()
    damp = percdamp
    eye = torch.eye(h.shape[0], dtype=h.dtype)
    for attempt in range(DAMP_RETRIES + 1):
        try:
            lower = torch.linalg.cholesky(h + eye * (damp * mean_diag))
            hinv = torch.cholesky_inverse(lower)
            return torch.linalg.cholesky(hinv, upper=True), damp
        except torch.linalg.LinAlgError:
            if attempt == DAMP_RETRIES:
                break
            log.info("GPTQ: Hessian not positive definite at damping %.3g; retrying x10", damp)
            damp *= 10
    raise GPTQError(f"Hessian not positive definite even with damping {damp:g}")


def _params(w: Tensor, spec: QuantSpec, search: bool = False) -> tuple[Tensor, Tensor]:
    """Per-row scale/zero (out, 1) of a slice ``w`` (out, k); ``search``: shrunk range (above)."""
    row = QuantSpec(bits=spec.bits, symmetric=spec.symmetric, granularity="channel")
    scale, zero = compute_qparams(w, row)
    if not search:
        return scale, zero
    lo = w.min(1, keepdim=True).values.clamp(max=0.0)
    hi = w.max(1, keepdim=True).values.clamp(min=0.0)
    best = torch.full_like(scale, float("inf"))
    for i in range(int(RANGE_MAX_SHRINK * RANGE_GRID)):
        p = 1 - i / RANGE_GRID
        s, z = compute_qparams(w, row, xmin=p * lo, xmax=p * hi)
        q = (torch.clamp(torch.round(w / s) + z, row.qmin, row.qmax) - z) * s
        err = (q - w).abs().pow(RANGE_NORM).sum(1, keepdim=True)
        better = err < best
        best = torch.where(better, err, best)
        scale, zero = torch.where(better, s, scale), torch.where(better, z, zero)
    return scale, zero


def gptq_quantize(
    weight: Tensor,
    hessian: Tensor,
    spec: QuantSpec,
    *,
    percdamp: float = 0.01,
    block_size: int = 128,
    act_order: bool = False,
    range_search: bool = False,
) -> GPTQResult:
    """GPTQ for one layer. ``spec`` is per-channel or per-group along the input dim."""
    if spec.granularity == "tensor":
        raise ValueError("GPTQ quantizes per channel or per group, not per tensor")
    w = weight.detach().to(torch.float32).clone()  # (out, in)
    h = hessian.detach().to(torch.float32).clone()  # (in, in)
    cols = w.shape[1]
    g = spec.group_size if spec.granularity == "group" else cols
    if cols % g:
        raise ValueError(f"group size {g} does not divide {cols}")
    dead = torch.diag(h) == 0
    h[dead, dead] = 1.0
    w[:, dead] = 0.0
    # group parameters: static (from the original weight) with act_order, else when reached
    scales = torch.zeros(w.shape[0], cols // g)
    zeros = torch.zeros(w.shape[0], cols // g)
    static = act_order or g == cols
    if static:
        for k in range(cols // g):
            s, z = _params(w[:, k * g : (k + 1) * g], spec, range_search)
            scales[:, k], zeros[:, k] = s[:, 0], z[:, 0].float()
    perm = torch.arange(cols)
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
        w, h = w[:, perm], h[perm][:, perm]
    hinv, damp = inverse_hessian_chol(h, percdamp)
    threads = torch.get_num_threads()
    # The column loop is thousands of tiny ops (one column of `out` floats each): extra OpenMP
    # threads only add barriers. On the shared 2-core machine a 1536x576 layer took 8.7 s with
    # 2 threads and 0.65 s with 1.
    torch.set_num_threads(1)
    try:
        q_all, loss = _columns(
            w, hinv, scales, zeros, perm, spec, g, static, block_size, range_search
        )
    finally:
        torch.set_num_threads(threads)
    if act_order:
        q_all = q_all[:, torch.argsort(perm)]
    return GPTQResult(
        weight=q_all.to(weight.dtype),
        scale=scales,
        zero_point=zeros.to(torch.int32),
        loss=loss,
        damp=damp,
    )


def _columns(
    w, hinv, scales, zeros, perm, spec, g, static, block_size, search
) -> tuple[Tensor, float]:
    """The lazy-batch column loop of Algorithm 1; fills ``scales``/``zeros`` when not static."""
    cols = w.shape[1]
    q_all = torch.zeros_like(w)
    loss = 0.0
    for i1 in range(0, cols, block_size):
        i2 = min(i1 + block_size, cols)
        w1 = w[:, i1:i2].clone()  # (out, B)
        q1, err1 = torch.zeros_like(w1), torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]  # (B, B)
        for i in range(i2 - i1):
            col = int(perm[i1 + i])
            if not static and col % g == 0:  # first column of a group: params from current W
                # the group's columns past this block lack this block's lazy updates so far
                ahead = w[:, i2 : i1 + i + g] - err1[:, :i] @ hinv[i1 : i1 + i, i2 : i1 + i + g]
                cur = torch.cat([w1[:, i:], ahead], dim=1)[:, :g]
                s, z = _params(cur, spec, search)
                scales[:, col // g], zeros[:, col // g] = s[:, 0], z[:, 0].float()
            d = hinv1[i, i]
            q = _qcol(w1[:, i], scales[:, col // g], zeros[:, col // g], spec)  # (out,)
            q1[:, i] = q
            loss += float(((w1[:, i] - q) ** 2).sum() / d**2 / 2)
            e = (w1[:, i] - q) / d  # (out,)
            w1[:, i:] -= e[:, None] @ hinv1[i, i:][None, :]
            err1[:, i] = e
        q_all[:, i1:i2] = q1
        w[:, i2:] -= err1 @ hinv[i1:i2, i2:]
    return q_all, loss
