"""Wanda and SparseGPT on a model: the glue between the calibration engine and :mod:`.oneshot`.

The model is walked block by block by :func:`nlpress.calib.sequential.run_sequential` (the one
engine GPTQ and AWQ use): each block's selected linears get their input statistics (``sq_sum``
for Wanda's ``||X_j||_2``, the Hessian for SparseGPT), are pruned in place, and the block is
re-run so the next block calibrates on the pruned model's activations, as both papers do. The
result is the same ``dict`` of keep-masks and per-layer summary as magnitude pruning, so storage
(bitmask safetensors), the report and fine-tuning with re-applied masks work unchanged.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import torch
from torch import nn

from nlpress.errors import NlpressError
from nlpress.prune.masks import Masks, apply_masks, mask_sparsity
from nlpress.recipe import PruneSparseGPTConfig, PruneWandaConfig

log = logging.getLogger(__name__)

OneShotConfig = PruneWandaConfig | PruneSparseGPTConfig


def method_name(cfg: OneShotConfig) -> str:
    base = "wanda" if isinstance(cfg, PruneWandaConfig) else "sparsegpt"
    return f"{base} {cfg.n}:{cfg.m}" if cfg.n is not None else base


def block_linear_names(model: nn.Module, cfg: OneShotConfig) -> list[str]:
    """Selected linears inside the blocks; bad patterns or shapes fail here, before any work."""
    from nlpress.calib.adapters import block_linears
    from nlpress.select import select

    *_, linears = block_linears(model)
    names = select(list(linears), cfg.targets, cfg.ignore)
    if not names:
        raise NlpressError(
            "the targets/ignore patterns leave no linear layer to prune; loosen ignore or targets"
        )
    if cfg.m is not None:
        for n in names:
            if linears[n].weight.shape[1] % cfg.m:
                raise NlpressError(
                    f"{n}: input size {linears[n].weight.shape[1]} is not divisible by "
                    f"m={cfg.m}; add it to ignore or pick another m"
                )
    if isinstance(cfg, PruneSparseGPTConfig) and cfg.m is not None and cfg.block_size % cfg.m:
        raise NlpressError(
            f"prune-sparsegpt: block_size {cfg.block_size} is not divisible by m={cfg.m}; "
            "use a multiple of m (the default 128 works for 2:4)"
        )
    return names


def _wanda_layer(lin: nn.Linear, stats, cfg: OneShotConfig) -> torch.Tensor:
    from nlpress.prune.oneshot import wanda_mask

    nm = (cfg.n, cfg.m) if cfg.n is not None else None
    return wanda_mask(lin.weight, stats.sq_sum.sqrt(), cfg.sparsity, nm)


def _sparsegpt_layer(name: str, lin: nn.Linear, stats, cfg, fallbacks: list) -> torch.Tensor:
    from nlpress.prune.oneshot import sparsegpt_prune
    from nlpress.quantize.gptq import GPTQError

    nm = (cfg.n, cfg.m) if cfg.n is not None else None
    try:
        w, keep, _ = sparsegpt_prune(
            lin.weight,
            stats.hessian,
            cfg.sparsity,
            nm,
            percdamp=cfg.percdamp,
            block_size=cfg.block_size,
        )
    except GPTQError as e:
        from nlpress.prune.oneshot import wanda_mask

        # diag(H) = 2/n sum x_j^2: its square root ranks input channels as Wanda's norm does
        log.warning("SparseGPT failed on %s (%s); using the Wanda mask for it", name, e)
        fallbacks.append(name)
        return wanda_mask(lin.weight, torch.diag(stats.hessian).sqrt(), cfg.sparsity, nm)
    lin.weight.data.copy_(w.to(lin.weight.dtype))
    return keep


def prune_oneshot(
    model: nn.Module,
    cfg: OneShotConfig,
    batches: list[dict[str, torch.Tensor]],
    progress: bool = True,
) -> tuple[Masks, dict]:
    """Prune ``model``'s block linears in place; (masks by parameter name, summary)."""
    from nlpress.calib.sequential import BlockContext, run_sequential

    names = block_linear_names(model, cfg)
    if not batches:
        raise NlpressError(
            f"{method_name(cfg)} needs calibration data; pass --calib FILE or --data"
        )
    sgpt = isinstance(cfg, PruneSparseGPTConfig)
    masks: Masks = {}
    fallbacks: list[str] = []
    t0 = time.perf_counter()

    def transform(ctx: BlockContext) -> dict:
        for name, lin in ctx.linears.items():
            st = ctx.stats[name]
            if sgpt:
                keep = _sparsegpt_layer(name, lin, st, cfg, fallbacks)
            else:
                keep = _wanda_layer(lin, st, cfg)
            masks[f"{name}.weight"] = keep
            apply_masks(ctx.block, {_rel(name, ctx.prefix): keep})
        return {}

    collect = ("hessian",) if sgpt else ("sq_sum",)
    run_sequential(model, batches, transform, collect=collect, targets=names, progress=progress)
    total = sum(m.numel() for m in masks.values())
    removed = sum(m.numel() - int(m.sum()) for m in masks.values())
    info: dict[str, Any] = {
        "method": method_name(cfg),
        "layers": len(masks),
        "sparsity": removed / max(total, 1),
        "pruned_weights": removed,
        "calibration_samples": sum(int(b["input_ids"].shape[0]) for b in batches),
        "prune_seconds": round(time.perf_counter() - t0, 2),
    }
    if fallbacks:
        info["wanda_fallback_layers"] = fallbacks
    log.info("%s pruned %d of %d weights in %d layers", info["method"], removed, total, len(masks))
    per_layer = {k.removesuffix(".weight"): v for k, v in mask_sparsity(masks).items()}
    return masks, {"info": info, "per_layer": per_layer}


def _rel(name: str, prefix: str) -> str:
    """``model.layers.3.mlp.up_proj`` in block ``model.layers.3`` -> ``mlp.up_proj.weight``."""
    return name.removeprefix(prefix + ".") + ".weight"
