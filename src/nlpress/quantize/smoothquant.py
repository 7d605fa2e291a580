"""SmoothQuant: move activation outliers into the weights before int8 quantization.

Xiao et al. 2022, "SmoothQuant: Accurate and Efficient Post-Training Quantization for Large
Language Models" (arXiv:2211.10438). Per input channel ``j`` of the linears that read a norm's
(or linear's) output, ``s_j = max|X_j|^alpha / max|W_j|^(1-alpha)`` (eq. 4); the producer's output
is divided by ``s`` and the consumers' columns multiplied by it (eq. 3), which leaves the fp32
function unchanged and flattens the activation range that int8 (dynamic or static) must cover.
``alpha`` trades activation range against weight range: 0.5 is the paper's default.

Why this shape: the statistics (per-channel max |x|) come from the same sequential engine as
GPTQ/AWQ (:mod:`nlpress.calib.sequential`), the producer/consumer pairs from the architecture
adapters, the arithmetic from the scale folding AWQ uses (:mod:`nlpress.quantize.scale_fold`):
SmoothQuant itself is only the scale formula (:func:`nlpress.quantize.awq.smooth_scales`).
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from nlpress.quantize.awq import smooth_scales
from nlpress.quantize.scale_fold import fold_scales

log = logging.getLogger(__name__)


def check_smoothable(model: nn.Module) -> None:
    """A clear error for architectures without norm -> linear pairs to fold into (post-LN BERT)."""
    from nlpress.calib.adapters import block_scale_groups, find_blocks
    from nlpress.errors import NlpressError

    adapter, _, blocks = find_blocks(model)
    if not block_scale_groups(adapter, blocks[0]):
        raise NlpressError(
            f"smoothquant needs norm -> linear pairs to fold scales into; {adapter.name}-style "
            "blocks have none (their LayerNorm outputs are also the residual stream); use "
            "--recipe int8 or int8-static for this model"
        )


def smooth_model(model: nn.Module, cfg, batches: list, progress: bool = True) -> dict:
    """Fold SmoothQuant scales into ``model`` in place; returns how many groups were smoothed."""
    from nlpress.calib.sequential import run_sequential

    check_smoothable(model)
    done: list[str] = []

    def transform(ctx) -> dict:
        by_module = {id(m): n for n, m in ctx.linears.items()}
        for producer, consumers, prod_name, _ in ctx.scale_groups:
            first = by_module.get(id(consumers[0]))
            if first is None or first not in ctx.stats:
                continue
            with torch.no_grad():
                w_max = torch.stack([c.weight.abs().amax(0) for c in consumers]).amax(0)  # (in,)
            s = smooth_scales(ctx.stats[first].abs_max, w_max, cfg.alpha)
            fold_scales(producer, consumers, s)
            done.append(f"{ctx.prefix}.{prod_name}")
        return {}

    run_sequential(model, batches, transform, collect=("abs_max",), progress=progress)
    log.info("SmoothQuant: smoothed %d producer/consumer groups", len(done))
    return {"alpha": cfg.alpha, "groups": len(done)}
