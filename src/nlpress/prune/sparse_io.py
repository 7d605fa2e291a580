"""Sparse weights on disk: a bitmask of the non-zeros plus the packed non-zero values.

Why a bitmask: for a tensor of N fp32 weights at sparsity s it costs N/8 + 4N(1-s) bytes instead
of 4N, so size on disk falls with sparsity from about 3% sparsity on (at 50%: 53% of dense; at 90%:
13%); CSR's int32 column indices cost more than the values they index until sparsity is very
high. A tensor is stored sparse only where that is smaller, dense otherwise (embeddings, norms).

It loads back *bit-identical*: the mask marks entries whose bit pattern is non-zero (so a stored
``-0.0`` survives), and the values are stored in the tensor's own dtype. The file is ordinary
safetensors (never a pickle): for a sparse tensor ``NAME``, ``NAME::mask`` (uint8, bits packed
little-endian) and ``NAME::values``; the shapes and dtypes are in the header's metadata.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
FORMAT = "nlpress-bitmask"
_INT_VIEW = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def nonzero_bits(t: torch.Tensor) -> torch.Tensor:
    """True where the entry's bit pattern is not all zeros (so -0.0 counts as a value)."""
    return t.contiguous().view(_INT_VIEW[t.element_size()]) != 0


def encode(t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(packed mask uint8, non-zero values) of a tensor."""
    keep = nonzero_bits(t).reshape(-1)
    bits = np.packbits(keep.numpy(), bitorder="little")
    return torch.from_numpy(bits), t.reshape(-1)[keep].contiguous()


def decode(bits: torch.Tensor, values: torch.Tensor, shape: list[int]) -> torch.Tensor:
    numel = int(np.prod(shape)) if shape else 1
    keep = torch.from_numpy(
        np.unpackbits(bits.numpy(), count=numel, bitorder="little").astype(bool)
    )
    if int(keep.sum()) != values.numel():
        raise NlpressError("sparse weights file is damaged (mask and values disagree); rebuild it")
    out = torch.zeros(numel, dtype=values.dtype)
    out[keep] = values
    return out.reshape(shape)


def _pays(t: torch.Tensor) -> bool:
    if not t.is_floating_point() or t.numel() < 64:
        return False
    nnz = int(nonzero_bits(t).sum())
    return t.numel() / 8 + nnz * t.element_size() < t.numel() * t.element_size()


def save_sparse(model: nn.Module, folder: Path) -> dict:
    """Write ``model``'s state dict as ``model.safetensors`` (bitmask layout) plus its config."""
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    sparse: dict[str, list[int]] = {}
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        if _pays(t):
            tensors[f"{name}::mask"], tensors[f"{name}::values"] = encode(t)
            sparse[name] = list(t.shape)
        else:
            tensors[name] = t.clone().contiguous()  # clone: tied weights share memory
    save_file(
        tensors, str(folder / WEIGHTS), metadata={"format": FORMAT, "sparse": json.dumps(sparse)}
    )
    model.config.save_pretrained(folder)
    return {"sparse_tensors": len(sparse), "dense_tensors": len(tensors) - 2 * len(sparse)}


def read_sparse(path: Path) -> dict[str, torch.Tensor]:
    """The dense state dict stored in a bitmask weights file."""
    from nlpress.models.weights_file import read_tagged

    sparse, raw = read_tagged(path, FORMAT, "bitmask", "sparse")
    out = {k: v for k, v in raw.items() if "::" not in k}
    for name, shape in sparse.items():
        out[name] = decode(raw[f"{name}::mask"], raw[f"{name}::values"], shape)
    return out


def load_sparse(folder: Path, auto_cls) -> nn.Module:
    """Rebuild the model from its config (narrowing head-pruned BERT attention) and load it."""
    from transformers import AutoConfig

    from nlpress.models.weights_file import empty_model, load_float_part
    from nlpress.prune.adapters import narrow_attention

    state = read_sparse(Path(folder) / WEIGHTS)
    model = empty_model(auto_cls, AutoConfig.from_pretrained(folder))
    narrow_attention(model)
    load_float_part(model, state, (), Path(folder) / WEIGHTS)
    return model.eval()
