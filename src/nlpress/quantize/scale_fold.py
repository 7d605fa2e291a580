"""Fold per-input-channel scales into a producer/consumers pair: shared by AWQ and SmoothQuant.

For consumers ``y_i = W_i x`` whose input ``x`` is the output of a producer (a LayerNorm/RMSNorm
or a linear), dividing the producer's output channels by ``s`` and multiplying the consumers'
input columns by ``s`` gives ``W_i diag(s) diag(s)^-1 x = W_i x``: the same function, with the
activation range moved into the weights (SmoothQuant, Xiao et al. 2022, arXiv:2211.10438, eq. 3)
or the salient weights' columns enlarged before rounding (AWQ, Lin et al. 2023,
arXiv:2306.00978, section 3.2). Which producer feeds which consumers is the architecture
adapters' business (:mod:`nlpress.calib.adapters`); this is only the arithmetic, written once.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def fold_scales(producer: nn.Module, consumers: list[nn.Linear], s: Tensor) -> None:
    """In place: producer output channels ``/ s``, consumer input columns ``* s``."""
    s = s.detach().float()
    with torch.no_grad():
        if isinstance(producer, nn.Linear):
            w = producer.weight  # (out = len(s), in)
            w.copy_((w.float() / s[:, None]).to(w.dtype))
        else:  # LayerNorm / RMSNorm: y = norm(x) * weight (+ bias)
            w = producer.weight  # (len(s),)
            w.copy_((w.float() / s).to(w.dtype))
        bias = getattr(producer, "bias", None)
        if bias is not None:
            bias.copy_((bias.float() / s).to(bias.dtype))
        for lin in consumers:
            lin.weight.copy_((lin.weight.float() * s[None, :]).to(lin.weight.dtype))
