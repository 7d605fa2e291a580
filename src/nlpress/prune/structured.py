"""Structured pruning: remove attention heads, FFN neurons and whole blocks, physically.

Units are ranked by an importance score and the lowest are cut out of the weight matrices, so the
saved model is smaller and every matrix product in it is narrower: the speedup needs no sparse
kernel (Michel et al. 2019, "Are Sixteen Heads Really Better than One?"; for FFN neurons and
blocks, e.g. Sajjad et al. 2023 "On the Effect of Dropping Layers", Men et al. 2024 "ShortGPT").

Scores (pure functions, tested alone):

* ``magnitude`` (default, no data): the L2 norm of all weights belonging to a unit: a head's rows
  of Q, K, V and its columns of the attention output; a neuron's rows of the FFN input
  projection(s) and its column of the output projection.
* ``activation`` (calibration texts): how much a unit writes into the residual stream, the mean
  over real tokens of its output norm times the norm of its output weights; a block's score is
  ShortGPT's block influence, 1 - cos(block input, block output).

Why the same count in every layer: transformers configs hold one head count and one FFN width for
all layers (see :mod:`nlpress.prune.adapters`); which units go is still decided per layer.
Counts are exact: ``round(fraction * units)`` per layer, ties broken by position.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import torch
from torch import nn

from nlpress.errors import NlpressError
from nlpress.prune.adapters import Geometry, Layout, blocks, geometry, layout_for, shrink, unit_rows
from nlpress.recipe import PruneStructuredConfig

log = logging.getLogger(__name__)


def keep_indices(scores: torch.Tensor, n_remove: int) -> torch.Tensor:
    """Sorted indices kept after removing the ``n_remove`` lowest scores (ties: lower index goes)."""
    order = torch.sort(scores.float(), stable=True).indices
    return torch.sort(order[n_remove:]).values


def head_magnitude(block: nn.Module, lay: Layout, geo: Geometry) -> torch.Tensor:
    """(units,) L2 norm of each head group's weights in Q, K, V (rows) and O (columns)."""
    out = torch.zeros(geo.units)
    for u in range(geo.units):
        q_rows, kv_rows = unit_rows(torch.tensor([u]), geo)
        sq = block.get_submodule(lay.q).weight[q_rows].pow(2).sum()
        sq += block.get_submodule(lay.k).weight[kv_rows].pow(2).sum()
        sq += block.get_submodule(lay.v).weight[kv_rows].pow(2).sum()
        sq += block.get_submodule(lay.o).weight[:, q_rows].pow(2).sum()
        out[u] = sq.sqrt()
    return out


def neuron_magnitude(block: nn.Module, lay: Layout) -> torch.Tensor:
    """(intermediate,) L2 norm of each neuron's input rows and output column."""
    sq = block.get_submodule(lay.ffn_out).weight.detach().float().pow(2).sum(0)
    for name in lay.ffn_in:
        sq = sq + block.get_submodule(name).weight.detach().float().pow(2).sum(1)
    return sq.sqrt()


def counts(cfg: PruneStructuredConfig, n_layers: int, geo: Geometry, width: int) -> tuple[int, int]:
    """(head units, FFN neurons) removed per layer; refuses to empty a layer."""
    heads = int(round(cfg.head_fraction * geo.units))
    neurons = int(round(cfg.ffn_fraction * width))
    if heads >= geo.units:
        raise NlpressError(
            f"head_fraction {cfg.head_fraction:g} would remove all {geo.units} heads "
            f"{'groups ' if geo.group > 1 else ''}of every layer; keep at least one: lower head_fraction"
        )
    if neurons >= width:
        raise NlpressError(f"ffn_fraction {cfg.ffn_fraction:g} would remove every FFN neuron")
    return heads, neurons


def layers_to_drop(cfg: PruneStructuredConfig, n: int, influence: torch.Tensor | None) -> list[int]:
    bad = [i for i in cfg.drop_layers if not 0 <= i < n]
    if bad:
        raise NlpressError(f"drop_layers {bad}: the model has layers 0-{n - 1}")
    k = int(round(cfg.layer_fraction * n))
    if k and influence is None:
        raise NlpressError(
            "layer_fraction ranks blocks by their effect on calibration data: set "
            "score: activation, or name the blocks with drop_layers"
        )
    ranked = [] if not k else keep_indices(-influence, n - k).tolist()  # the k least influential
    dropped = sorted(set(cfg.drop_layers) | set(ranked))
    if len(dropped) >= n:
        raise NlpressError(f"that would drop all {n} layers; keep at least one")
    return dropped


def activation_scores(
    model: nn.Module, batches: Iterable[dict[str, torch.Tensor]]
) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
    """(head unit scores per layer, neuron scores per layer, block influence) on ``batches``."""
    lay, geo, blks = layout_for(model), geometry(model), blocks(model)
    n = len(blks)
    heads = [torch.zeros(geo.units) for _ in range(n)]
    neurons: list[torch.Tensor] = [torch.zeros(0)] * n
    influence = torch.zeros(n)
    state = {"mask": None, "tokens": 0.0}

    def real(x: torch.Tensor) -> torch.Tensor:  # (B, T, D) -> (tokens, D), padding dropped
        return x.reshape(-1, x.shape[-1])[state["mask"].reshape(-1)].float()

    def on_o(i):
        def hook(mod, args):
            x = real(args[0]).reshape(-1, geo.units, geo.group * geo.head_dim)  # (N, U, G*hd)
            heads[i] += x.norm(dim=-1).sum(0)

        return hook

    def on_ffn_out(i):
        def hook(mod, args):
            a = real(args[0]).abs().sum(0)  # (I,)
            neurons[i] = a if neurons[i].numel() == 0 else neurons[i] + a

        return hook

    def on_block(i):
        def hook(mod, args, kwargs, out):
            x = args[0] if args else kwargs["hidden_states"]
            y = out[0] if isinstance(out, tuple) else out
            cos = nn.functional.cosine_similarity(real(x), real(y), dim=-1)
            influence[i] += (1 - cos).sum()

        return hook

    handles = []
    for i, b in enumerate(blks):
        handles.append(b.get_submodule(lay.o).register_forward_pre_hook(on_o(i)))
        handles.append(b.get_submodule(lay.ffn_out).register_forward_pre_hook(on_ffn_out(i)))
        handles.append(b.register_forward_hook(on_block(i), with_kwargs=True))
    try:
        with torch.no_grad():
            for batch in batches:
                state["mask"] = batch["attention_mask"].bool()
                state["tokens"] += float(state["mask"].sum())
                model(**batch)
    finally:
        for h in handles:
            h.remove()
    t = max(state["tokens"], 1.0)
    for i, b in enumerate(blks):  # mean output size times the norm of the weights it feeds
        o = b.get_submodule(lay.o).weight.detach().float()
        w_o = o.reshape(o.shape[0], geo.units, -1).pow(2).sum((0, 2)).sqrt()
        heads[i] = heads[i] / t * w_o
        neurons[i] = (
            neurons[i] / t * b.get_submodule(lay.ffn_out).weight.detach().float().norm(dim=0)
        )
    return heads, neurons, influence / t


def prune_structured(
    model: nn.Module,
    cfg: PruneStructuredConfig,
    batches: Iterable[dict[str, torch.Tensor]] | None = None,
) -> tuple[nn.Module, dict]:
    """A new, smaller model (the input is left as it was) and a summary of what was removed."""
    lay, geo, blks = layout_for(model), geometry(model), blocks(model)
    n, width = len(blks), blks[0].get_submodule(lay.ffn_out).weight.shape[1]
    n_heads, n_neurons = counts(cfg, n, geo, width)
    influence = None
    if cfg.score == "activation":
        if batches is None:
            raise NlpressError("score: activation needs calibration texts (--calib or --data)")
        h_scores, f_scores, influence = activation_scores(model, batches)
    else:
        with torch.no_grad():
            h_scores = [head_magnitude(b, lay, geo) for b in blks]
            f_scores = [neuron_magnitude(b, lay) for b in blks]
    dropped = layers_to_drop(cfg, n, influence)
    kept = [i for i in range(n) if i not in dropped]
    units = [keep_indices(h_scores[i], n_heads) for i in kept] if n_heads else None
    neurons = [keep_indices(f_scores[i], n_neurons) for i in kept] if n_neurons else None
    before = sum(p.numel() for p in model.parameters())
    small = shrink(model, kept, units, neurons)
    after = sum(p.numel() for p in small.parameters())
    info = {
        "score": cfg.score,
        "layers_kept": len(kept),
        "layers_dropped": dropped,
        "heads_per_layer": f"{(geo.units - n_heads) * geo.group} of {geo.heads}",
        "ffn_per_layer": f"{width - n_neurons} of {width}",
        "parameters": f"{after} of {before}",
        "parameter_fraction": after / before,
    }
    new_blocks = iter(blocks(small))
    per_layer = {  # share of each block's parameters removed
        f"layer {i}": 1.0 if i in dropped else 1 - _numel(next(new_blocks)) / _numel(blks[i])
        for i in range(n)
    }
    return small, {"info": info, "per_layer": per_layer}


def _numel(mod: nn.Module) -> int:
    return sum(p.numel() for p in mod.parameters())
