"""Save and load a torch dynamic-int8 model as safetensors (int8 weights + per-channel scales).

torch's quantized linears hold their weights in packed C++ objects that only ``torch.save``
(a pickle) can serialise. We never unpickle, so we store each quantized weight as its int8
values, scales and zero points, and rebuild the packed linears on load. The int8 tensors are
what make the artifact about a quarter of the fp32 size.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file
from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

from nlpress.models.weights_file import empty_model, float_state, load_float_part, read_tagged

WEIGHTS = "model.safetensors"
FORMAT = "nlpress-dynamic-int8"


def save_dynamic_int8(model: torch.nn.Module, folder: Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    quantized: list[str] = []
    for name, mod in model.named_modules():
        if isinstance(mod, DynamicLinear):
            w = mod.weight()
            tensors[f"{name}.qweight"] = w.int_repr().contiguous()
            if w.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
                tensors[f"{name}.scales"] = w.q_per_channel_scales().float().contiguous()
                tensors[f"{name}.zero_points"] = (
                    w.q_per_channel_zero_points().to(torch.int64).contiguous()
                )
            else:
                tensors[f"{name}.scales"] = torch.tensor([w.q_scale()], dtype=torch.float32)
                tensors[f"{name}.zero_points"] = torch.tensor([w.q_zero_point()], dtype=torch.int64)
            bias = mod.bias()
            if bias is not None:
                tensors[f"{name}.bias"] = bias.detach().contiguous()
            quantized.append(name)
    tensors.update(float_state(model, skip=quantized))
    save_file(
        tensors,
        str(folder / WEIGHTS),
        metadata={"format": FORMAT, "quantized": json.dumps(quantized)},
    )
    model.config.save_pretrained(folder)


def _qweight(t: dict[str, torch.Tensor], name: str) -> torch.Tensor:
    q, s, z = t[f"{name}.qweight"], t[f"{name}.scales"], t[f"{name}.zero_points"]
    if s.numel() == 1:
        return torch._make_per_tensor_quantized_tensor(q, float(s), int(z))
    return torch._make_per_channel_quantized_tensor(q, s.double(), z, 0)


def load_dynamic_int8(folder: Path, auto_cls) -> torch.nn.Module:
    from transformers import AutoConfig

    from nlpress.prune.adapters import narrow_attention

    path = folder / WEIGHTS
    quantized, tensors = read_tagged(path, FORMAT, "dynamic-int8", "quantized")
    model = empty_model(auto_cls, AutoConfig.from_pretrained(folder)).eval()
    narrow_attention(model)  # a head-pruned BERT (no-op otherwise)
    load_float_part(model, tensors, quantized, path)  # float parts first
    for name in quantized:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        old = getattr(parent, child)
        new = DynamicLinear(old.in_features, old.out_features, dtype=torch.qint8)
        new.set_weight_bias(_qweight(tensors, name), tensors.get(f"{name}.bias"))
        setattr(parent, child, new)
    return model
