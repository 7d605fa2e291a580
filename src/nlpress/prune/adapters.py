"""Architecture adapters for structured pruning: where the blocks, attention and MLP live, and
how a pruned model is rebuilt as a smaller *plain* Hugging Face model.

Why this design (STYLE.md habit 5): the pruning code never names an architecture; it asks the
:class:`Layout` for the block list and the projection names, and :func:`shrink` slices a state
dict by the kept units and builds the smaller model with transformers' own class from an updated
config, so whatever ``save_pretrained`` writes is what plain ``AutoModel.from_pretrained`` loads.

What transformers 5 can express, and what that forces:

* Every layer must have the same head count and FFN width (no config field holds per-layer
  sizes, and BERT's ``pruned_heads`` / ``prune_heads`` are gone in transformers 5). So structured
  pruning removes the same *number* of heads and neurons in every layer (which ones differs).
* BERT derives its head size as ``hidden_size / num_attention_heads`` (and transformers 5.24 has
  no other BERT-equivalent encoder with a free head count: DeBERTa-v2 has ``attention_head_size``
  but a square attention output projection). So a BERT with fewer heads of the same size cannot be
  written as a plain BERT config. FFN- and layer-pruned BERTs *are* plain BERTs; a head-pruned
  BERT keeps ``num_attention_heads`` (so the head size stays right), records the kept count in
  ``nlpress_attention_heads``, and is loaded by :func:`narrow_attention` (``nlpress.load`` does
  this) or run from its ONNX export, which any ONNX runtime loads. Plain
  ``AutoModel.from_pretrained`` refuses it with a size mismatch, so it never loads it wrongly.
* Llama-style models have ``head_dim`` and ``num_key_value_heads`` in their config; heads are
  removed a whole key/value group at a time (one KV head with its query heads), so grouped-query
  attention stays valid.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass

import torch
from torch import nn

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Layout:
    """Module names inside one block, and how heads are grouped."""

    family: str  # "bert" or "llama"
    q: str
    k: str
    v: str
    o: str
    ffn_in: tuple[str, ...]  # projections whose output rows are FFN neurons
    ffn_out: str  # projection whose input columns are FFN neurons


BERT = Layout(
    "bert",
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    ("intermediate.dense",),
    "output.dense",
)
LLAMA = Layout(
    "llama",
    "self_attn.q_proj",
    "self_attn.k_proj",
    "self_attn.v_proj",
    "self_attn.o_proj",
    ("mlp.gate_proj", "mlp.up_proj"),
    "mlp.down_proj",
)
FAMILIES = {"bert": BERT, "llama": LLAMA, "mistral": LLAMA}
BLOCK_PATHS = ("bert.encoder.layer", "encoder.layer", "model.layers", "layers")


def layout_for(model: nn.Module) -> Layout:
    kind = getattr(model.config, "model_type", "?")
    if kind not in FAMILIES:
        raise NlpressError(
            f"structured pruning supports {', '.join(FAMILIES)} models, not {kind!r}; "
            "use prune-magnitude or prune-nm, which work on any model"
        )
    return FAMILIES[kind]


def blocks_path(model: nn.Module) -> str:
    for path in BLOCK_PATHS:
        try:
            mod = model.get_submodule(path)
        except AttributeError:
            continue
        if isinstance(mod, nn.ModuleList):
            return path
    raise NlpressError(f"cannot find the transformer blocks of {type(model).__name__}")


def blocks(model: nn.Module) -> nn.ModuleList:
    return model.get_submodule(blocks_path(model))


@dataclass(frozen=True)
class Geometry:
    """Head geometry: a "unit" is what is removed together (a head; a KV group for GQA)."""

    heads: int  # query heads per layer
    kv_heads: int
    head_dim: int

    @property
    def units(self) -> int:
        return self.kv_heads

    @property
    def group(self) -> int:  # query heads per unit
        return self.heads // self.kv_heads


def geometry(model: nn.Module) -> Geometry:
    cfg = model.config
    heads = cfg.num_attention_heads
    kv = getattr(cfg, "num_key_value_heads", None) or heads
    hd = getattr(cfg, "head_dim", None) or getattr(cfg, "attention_head_size", None)
    return Geometry(heads, kv, hd or cfg.hidden_size // heads)


def _rows(units: torch.Tensor, width: int) -> torch.Tensor:
    """Row indices of ``units`` that are ``width`` rows each: unit u -> u*width .. u*width+width-1."""
    return (units[:, None] * width + torch.arange(width)[None, :]).reshape(-1)


def unit_rows(units: torch.Tensor, geo: Geometry) -> tuple[torch.Tensor, torch.Tensor]:
    """(query rows, key/value rows) of the kept ``units`` (KV groups) in the projections."""
    q_heads = _rows(units, geo.group)  # query heads of each kept group
    return _rows(q_heads, geo.head_dim), _rows(units, geo.head_dim)


def slice_block(
    sd: dict[str, torch.Tensor],
    prefix: str,
    lay: Layout,
    geo: Geometry,
    units: torch.Tensor | None,
    neurons: torch.Tensor | None,
) -> None:
    """Slice one block's projections in the state dict ``sd`` in place (keys start with prefix)."""

    def take(name: str, idx: torch.Tensor, dim: int, bias_too: bool) -> None:
        w = f"{prefix}{name}.weight"
        sd[w] = sd[w].index_select(dim, idx).contiguous()
        b = f"{prefix}{name}.bias"
        if bias_too and b in sd:
            sd[b] = sd[b].index_select(0, idx).contiguous()

    if units is not None:
        q_rows, kv_rows = unit_rows(units, geo)
        take(lay.q, q_rows, 0, True)
        take(lay.k, kv_rows, 0, True)
        take(lay.v, kv_rows, 0, True)
        take(lay.o, q_rows, 1, False)  # o's bias is per output feature: kept whole
    if neurons is not None:
        for name in lay.ffn_in:
            take(name, neurons, 0, True)
        take(lay.ffn_out, neurons, 1, False)


def shrink(
    model: nn.Module,
    keep_layers: list[int],
    keep_units: list[torch.Tensor] | None,
    keep_neurons: list[torch.Tensor] | None,
) -> nn.Module:
    """A new, smaller model holding only the kept layers, head groups and FFN neurons.

    ``keep_units`` / ``keep_neurons`` hold one sorted index tensor per *kept* layer (or None to
    keep them all). Built with transformers' own classes from an updated config.
    """
    lay, geo = layout_for(model), geometry(model)
    path = blocks_path(model)
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    old_n = len(blocks(model))
    new_sd: dict[str, torch.Tensor] = {}
    for k, v in sd.items():
        if not k.startswith(path + "."):
            new_sd[k] = v
            continue
        idx, _, rest = k[len(path) + 1 :].partition(".")
        if int(idx) in keep_layers:
            new_sd[f"{path}.{keep_layers.index(int(idx))}.{rest}"] = v
    for j in range(len(keep_layers)):
        units = keep_units[j] if keep_units is not None else None
        neurons = keep_neurons[j] if keep_neurons is not None else None
        slice_block(new_sd, f"{path}.{j}.", lay, geo, units, neurons)
    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = len(keep_layers)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = [cfg.layer_types[i] for i in keep_layers]
    if keep_neurons is not None:
        cfg.intermediate_size = int(keep_neurons[0].numel())
    heads_changed = keep_units is not None and int(keep_units[0].numel()) != geo.units
    if heads_changed:
        kept = int(keep_units[0].numel())
        cfg.num_attention_heads = kept * geo.group
        if lay.family == "llama":
            cfg.num_key_value_heads = kept
            cfg.head_dim = geo.head_dim
        else:
            cfg.nlpress_attention_heads = cfg.num_attention_heads  # see module doc
            cfg.num_attention_heads = geo.heads  # BERT reads its head size from this
    log.info("pruned model: %d of %d layers", len(keep_layers), old_n)
    return _build(type(model), cfg, new_sd)


def narrow_attention(model: nn.Module) -> None:
    """Resize a BERT's attention projections to ``config.nlpress_attention_heads`` heads.

    BERT's forward infers the head count from the projection width (``view(..., -1, size)``),
    so narrower q/k/v/o layers are all it takes; the weights are loaded afterwards.
    """
    kept = getattr(model.config, "nlpress_attention_heads", None)
    if kept is None:
        return
    lay, geo = layout_for(model), geometry(model)
    width, hidden = kept * geo.head_dim, model.config.hidden_size
    for block in blocks(model):
        for name, shape in (
            (lay.q, (hidden, width)),
            (lay.k, (hidden, width)),
            (lay.v, (hidden, width)),
            (lay.o, (width, hidden)),
        ):
            parent, _, leaf = name.rpartition(".")
            old = block.get_submodule(name)
            new = nn.Linear(*shape, bias=old.bias is not None, device=old.weight.device)
            setattr(block.get_submodule(parent), leaf, new)


def _build(cls, cfg, sd: dict[str, torch.Tensor]) -> nn.Module:
    with torch.device("meta"):
        new = cls(cfg)
    narrow_attention(new)
    missing, unexpected = new.load_state_dict(sd, strict=False, assign=True)
    buffers = {n for n, _ in new.named_buffers()}
    missing = [k for k in missing if k not in buffers]
    if missing or unexpected:
        raise NlpressError(
            f"internal error rebuilding the pruned model: missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    _materialize_buffers(new, cls, cfg)
    return new.eval()


def _materialize_buffers(new: nn.Module, cls, cfg) -> None:
    """Non-persistent buffers (position ids, rotary tables) left on meta: rebuild them on CPU."""
    if not any(b.is_meta for b in new.buffers()):
        return
    fresh = cls(cfg)  # small cost: only to copy computed buffers
    for name, buf in fresh.named_buffers():
        parent, _, leaf = name.rpartition(".")
        mod = new.get_submodule(parent) if parent else new
        if getattr(mod, leaf).is_meta:
            mod._buffers[leaf] = buf
