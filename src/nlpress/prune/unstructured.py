"""Apply unstructured magnitude and N:M pruning to a model: the glue around :mod:`.masks`.

Layers are chosen by name with the one selection helper (``targets`` minus ``ignore``, exact
names or ``re:`` patterns; a pattern that matches nothing is an error). ``nn.Linear`` weights (the
matrix products) and, when targeted by name, ``nn.Embedding`` tables (half of a small encoder's
bytes, so they decide its size on disk) are pruned; biases and LayerNorms are too few to matter. The masks are returned (``dict`` parameter name -> bool tensor) so a later fine-tuning
loop can re-apply them after each optimizer step with :func:`nlpress.prune.masks.apply_masks`.
"""

from __future__ import annotations

import logging

from torch import nn

from nlpress.errors import NlpressError
from nlpress.prune.masks import (
    Masks,
    apply_masks,
    global_masks,
    importance,
    magnitude_mask,
    mask_sparsity,
    nm_mask,
)
from nlpress.recipe import PruneMagnitudeConfig, PruneNMConfig
from nlpress.select import select

log = logging.getLogger(__name__)


def target_linears(model: nn.Module, targets: list[str], ignore: list[str]) -> list[str]:
    """Names of the ``nn.Linear`` / ``nn.Embedding`` modules selected by targets and ignore."""
    names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear | nn.Embedding)]
    chosen = select(names, targets, ignore)
    if not chosen:
        raise NlpressError(
            "the targets/ignore patterns leave no linear layer to prune; loosen ignore or targets"
        )
    return chosen


def magnitude_masks(model: nn.Module, cfg: PruneMagnitudeConfig) -> Masks:
    layers = target_linears(model, cfg.targets, cfg.ignore)
    scores = {f"{n}.weight": importance(model.get_submodule(n).weight, cfg.norm) for n in layers}
    if cfg.scope == "global":
        return global_masks(scores, cfg.sparsity)
    per_row = cfg.scope == "row"
    return {n: magnitude_mask(s, cfg.sparsity, per_row) for n, s in scores.items()}


def nm_masks(model: nn.Module, cfg: PruneNMConfig) -> Masks:
    layers = target_linears(model, cfg.targets, cfg.ignore)
    out = {}
    for n in layers:
        w = model.get_submodule(n).weight
        if w.shape[-1] % cfg.m:
            raise NlpressError(
                f"{n}: input size {w.shape[-1]} is not divisible by m={cfg.m}; "
                f"add it to ignore or pick another m"
            )
        out[f"{n}.weight"] = nm_mask(importance(w, cfg.norm), cfg.n, cfg.m)
    return out


def prune_unstructured(
    model: nn.Module, cfg: PruneMagnitudeConfig | PruneNMConfig
) -> tuple[Masks, dict]:
    """Prune ``model`` in place; return its masks and a summary (sparsity per layer, overall)."""
    masks = (
        magnitude_masks(model, cfg)
        if isinstance(cfg, PruneMagnitudeConfig)
        else nm_masks(model, cfg)
    )
    apply_masks(model, masks)
    per_layer = mask_sparsity(masks)
    total = sum(m.numel() for m in masks.values())
    removed = sum(m.numel() - int(m.sum()) for m in masks.values())
    info = {
        "method": "magnitude" if isinstance(cfg, PruneMagnitudeConfig) else f"{cfg.n}:{cfg.m}",
        "layers": len(masks),
        "sparsity": removed / max(total, 1),
        "pruned_weights": removed,
    }
    log.info("pruned %d of %d weights in %d layers", removed, total, len(masks))
    return masks, {
        "info": info,
        "per_layer": {k.removesuffix(".weight"): v for k, v in per_layer.items()},
    }
