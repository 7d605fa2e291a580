"""Weight-only quantized linear layers: storage (safetensors) and the CPU kernels that run them.

Every quantized weight is kept as *unsigned* integer codes ``u`` with per-group (or per-channel)
float scales ``s`` and integer zero points ``z``: ``w = (u - z) * s``. Symmetric codes are shifted
by ``2^(b-1)`` (so ``z = 2^(b-1)``), which puts every method and bit width in one layout.
On disk (``model.safetensors``, never a pickle): ``NAME.qweight`` (int4: two codes per byte, low
nibble first, :func:`nlpress.quantize.primitives.pack_int4`, ONNX Runtime ``MatMulNBits``'s
layout; int8: one byte per code), ``NAME.scales`` (out, groups) float32, ``NAME.zeros`` (out,
groups) uint8, ``NAME.bias``; the metadata lists each layer's bits, group size and shape.

Kernels (measured on this project's 2-core AVX-512 CPU, shared with other jobs, one 1536x576
layer, group 64, one quick run of the code now in ``benchmarks/int4_kernels.py``): PyTorch's ``_weight_int4pack_mm_for_cpu`` with **bf16**
activations ran a batch-1 product in 36 us against 77 us for the fp32 matmul (2.1x), while
with fp32 activations it took a slow path (750 us, 10x slower than fp32). ONNX Runtime's
``MatMulNBits`` took 51 us at fp32 accuracy (1.5x) and 17 us with int8 activations
(``accuracy_level=4``) but with a 1-3% output error. The PyTorch kernel in bf16 is faster at
exact-enough accuracy and runs inside the Hugging Face model with its KV cache, so decode needs no
ONNX export of the cache; it is the one used. ``_weight_int8pack_mm`` was *slower* than fp32 here
(375 us), so int8 weight-only layers are stored as int8 (a quarter of the bytes) and dequantized
to fp32 once at load: smaller on disk, fp32 speed. Layouts the int4 kernel cannot take (group sizes
other than 32/64/128/256, bits other than 4) fall back the same way.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from nlpress.quantize.primitives import KERNEL_GROUPS, pack_int4, unpack_int4

log = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
FORMAT = "nlpress-weight-only"


@dataclass
class QuantizedWeight:
    """``w = (codes - zeros) * scales``, groups along the input dimension."""

    codes: Tensor  # (out, in) uint8, in [0, 2^bits - 1]
    scales: Tensor  # (out, groups) float32
    zeros: Tensor  # (out, groups) uint8
    bits: int
    group_size: int  # == in for per-channel

    def dequantize(self) -> Tensor:
        g = self.group_size
        s = self.scales.repeat_interleave(g, dim=1)  # (out, in)
        z = self.zeros.float().repeat_interleave(g, dim=1)
        return (self.codes.float() - z) * s


def codes_from(w: Tensor, scales: Tensor, zeros: Tensor, bits: int, group_size: int) -> Tensor:
    """Unsigned codes of an already-quantized (dequantized-values) weight ``w`` (out, in)."""
    s = scales.float().repeat_interleave(group_size, dim=1)
    z = zeros.float().repeat_interleave(group_size, dim=1)
    return (torch.round(w.float() / s) + z).clamp(0, 2**bits - 1).to(torch.uint8)


class WeightOnlyLinear(nn.Module):
    """A linear layer over int4 codes on torch's CPU int4 kernel (bf16 activations), or dequantized."""

    def __init__(self, qw: QuantizedWeight, bias: Tensor | None):
        super().__init__()
        self.out_features, self.in_features = qw.codes.shape
        self.bits, self.group_size = qw.bits, qw.group_size
        self.bias = None if bias is None else nn.Parameter(bias.float(), requires_grad=False)
        self.kernel = "int4pack" if _int4_kernel_ok(qw) else "dequantized"
        if self.kernel == "int4pack":
            self.register_buffer(
                "packed", torch.ops.aten._convert_weight_to_int4pack_for_cpu(qw.codes.int(), 2)
            )
            zero_f = (8.0 - qw.zeros.float()) * qw.scales  # tinygemm: w = (u - 8) * s + zero_f
            sz = torch.stack([qw.scales.t(), zero_f.t()], dim=-1)  # (groups, out, 2)
            self.register_buffer("scales_and_zeros", sz.to(torch.bfloat16).contiguous())
        else:
            self.register_buffer("weight", qw.dequantize())

    def forward(self, x: Tensor) -> Tensor:
        if self.kernel == "dequantized":
            return nn.functional.linear(x, self.weight, self.bias)
        shape = x.shape
        x2 = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (rows, in)
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(
            x2, self.packed, self.group_size, self.scales_and_zeros
        ).to(x.dtype)  # (rows, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (
            f"in={self.in_features}, out={self.out_features}, bits={self.bits}, "
            f"group={self.group_size}, kernel={self.kernel}"
        )


def _int4_kernel_ok(qw: QuantizedWeight) -> bool:
    out, k = qw.codes.shape
    return qw.bits == 4 and qw.group_size in KERNEL_GROUPS and k % qw.group_size == 0


def save_weight_only(model: nn.Module, quantized: dict[str, QuantizedWeight], folder: Path) -> None:
    """safetensors with packed codes for ``quantized`` layers and the float state for the rest."""
    from safetensors.torch import save_file

    from nlpress.models.weights_file import float_state

    tensors: dict[str, Tensor] = {}
    layers = {}
    for name, qw in quantized.items():
        codes = pack_int4(qw.codes) if qw.bits == 4 else qw.codes
        tensors[f"{name}.qweight"] = codes.contiguous()
        tensors[f"{name}.scales"] = qw.scales.float().contiguous()
        tensors[f"{name}.zeros"] = qw.zeros.to(torch.uint8).contiguous()
        bias = model.get_submodule(name).bias
        if bias is not None:
            tensors[f"{name}.bias"] = bias.detach().float().contiguous()
        layers[name] = {"bits": qw.bits, "group_size": qw.group_size, "shape": list(qw.codes.shape)}
    tensors.update(float_state(model, skip=quantized))
    meta = {"format": FORMAT, "layers": json.dumps(layers)}
    save_file(tensors, str(folder / WEIGHTS), metadata=meta)
    model.config.save_pretrained(folder)


def load_weight_only(folder: Path, auto_cls) -> nn.Module:
    """Rebuild the model from ``folder`` with :class:`WeightOnlyLinear` layers."""
    from transformers import AutoConfig

    from nlpress.models.weights_file import empty_model, load_float_part, read_tagged

    path = folder / WEIGHTS
    layers, tensors = read_tagged(path, FORMAT, "weight-only", "layers")
    model = empty_model(auto_cls, AutoConfig.from_pretrained(folder), dtype=torch.float32)
    load_float_part(model, tensors, layers, path)
    for name, info in layers.items():
        out, k = info["shape"]
        raw = tensors[f"{name}.qweight"]
        codes = unpack_int4(raw, (out, k)) if info["bits"] == 4 else raw
        qw = QuantizedWeight(
            codes,
            tensors[f"{name}.scales"],
            tensors[f"{name}.zeros"],
            info["bits"],
            info["group_size"],
        )
        parent, _, child = name.rpartition(".")
        setattr(
            model.get_submodule(parent), child, WeightOnlyLinear(qw, tensors.get(f"{name}.bias"))
        )
    return model.eval()
