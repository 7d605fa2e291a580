"""Architecture adapters: where a model's blocks live and which linears read a foldable output.

A few lines per architecture family (STYLE.md, habit 5): the attribute path of the block list,
and the *scale groups* of a block, ``(producer, (consumer linears...))``, where the producer is a
norm or linear whose output feeds only those linears. AWQ and SmoothQuant divide the producer's
output channels by a per-channel scale and multiply the consumers' input columns by it, which
leaves the function unchanged before quantization (:mod:`nlpress.quantize.scale_fold`).

Llama-style (Llama, Mistral, Qwen2, SmolLM2): RMSNorm -> q/k/v, RMSNorm -> gate/up, up -> down
(``down(act(gate) * up)`` is linear in ``up``'s output). v -> o is left out: with grouped-query
attention (SmolLM2) v's outputs are shared by several heads and do not map 1:1 onto o's inputs.
BERT-style (post-LN) blocks have no such pair: every LayerNorm output is also the residual
stream of the next sub-layer (``LayerNorm(dense(h) + x)``), so scaling it would change the model,
and the FFN's first linear is followed by GELU, which scaling does not commute with. GPTQ and the
statistics work on BERT blocks; AWQ's scales and SmoothQuant need a Llama-style (pre-LN) block.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from nlpress.errors import NlpressError


@dataclass(frozen=True)
class ArchAdapter:
    name: str
    blocks: tuple[str, ...]  # candidate attribute paths of the block list, first found wins
    scale_groups: tuple[tuple[str, tuple[str, ...]], ...] = ()


LLAMA = ArchAdapter(
    "llama",
    ("model.layers",),
    (
        ("input_layernorm", ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj")),
        ("post_attention_layernorm", ("mlp.gate_proj", "mlp.up_proj")),
        ("mlp.up_proj", ("mlp.down_proj",)),
    ),
)
BERT = ArchAdapter("bert", ("encoder.layer", "bert.encoder.layer", "roberta.encoder.layer"))
ADAPTERS = (LLAMA, BERT)


def _get(root: nn.Module, path: str) -> nn.Module | None:
    mod = root
    for part in path.split("."):
        mod = getattr(mod, part, None)
        if mod is None:
            return None
    return mod


def find_blocks(model: nn.Module) -> tuple[ArchAdapter, str, nn.ModuleList]:
    """(adapter, attribute path, block list) of ``model``; an error names the supported families."""
    for adapter in ADAPTERS:
        for path in adapter.blocks:
            blocks = _get(model, path)
            if isinstance(blocks, nn.ModuleList) and len(blocks):
                return adapter, path, blocks
    raise NlpressError(
        f"{type(model).__name__} has no block list nlpress knows (Llama-style model.layers or "
        "BERT-style encoder.layer); block-by-block calibration needs one of those"
    )


def block_linears(model: nn.Module) -> tuple[ArchAdapter, str, nn.ModuleList, dict[str, nn.Linear]]:
    """:func:`find_blocks` plus every ``nn.Linear`` inside the blocks, by full module name."""
    adapter, path, blocks = find_blocks(model)
    linears = {
        f"{path}.{i}.{n}": m
        for i, b in enumerate(blocks)
        for n, m in b.named_modules()
        if isinstance(m, nn.Linear)
    }
    return adapter, path, blocks, linears


def block_scale_groups(
    adapter: ArchAdapter, block: nn.Module
) -> list[tuple[nn.Module, list[nn.Linear], str, list[str]]]:
    """The adapter's scale groups that exist in ``block``: (producer, consumers, their names)."""
    out = []
    for prod_name, cons_names in adapter.scale_groups:
        prod = _get(block, prod_name)
        cons = [_get(block, c) for c in cons_names]
        if prod is None or any(not isinstance(c, nn.Linear) for c in cons):
            continue
        out.append((prod, cons, prod_name, list(cons_names)))
    return out
