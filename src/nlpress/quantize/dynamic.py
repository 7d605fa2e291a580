"""Dynamic int8 quantization: int8 weights, activations quantized on the fly per batch.

Two backends, one config (:class:`~nlpress.recipe.QuantizeDynamicInt8Config`):

* **onnxruntime** (default): ``onnxruntime.quantization.quantize_dynamic`` on the (fused) ONNX
  graph. ORT then runs ``QAttention``/``DynamicQuantizeMatMul`` kernels that use VNNI where the
  CPU has it. We use ORT's quantizer rather than our own because its graph rewriting is what
  its kernels expect; the per-channel default and the embedding handling are ours.
* **torch**: ``torch.ao`` dynamic quantization of every ``nn.Linear`` with per-channel scales.
  The artifact stores int8 weights with their scales in safetensors (see
  :mod:`nlpress.quantize.torch_io`), never a pickle.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from nlpress.recipe import QuantizeDynamicInt8Config
from nlpress.select import match_names

log = logging.getLogger(__name__)

EMBEDDING_OPS = ("Gather", "EmbedLayerNormalization")


def quantize_onnx_dynamic(
    src: Path, dst: Path, cfg: QuantizeDynamicInt8Config, keep_fp32: Sequence[str] = ()
) -> dict:
    """``keep_fp32``: exact node names left in float on top of ``cfg.ignore`` (mixed precision)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    graph = onnx.load(str(src), load_external_data=False).graph
    node_names = [n.name for n in graph.node]
    exclude = match_names(node_names, cfg.ignore) if cfg.ignore else []
    exclude += [n for n in keep_fp32 if n not in exclude]
    op_types = sorted(IntegerOpsRegistry)
    if not cfg.quantize_embeddings:
        op_types = [t for t in op_types if t not in EMBEDDING_OPS]
    quantize_dynamic(
        str(src),
        str(dst),
        per_channel=cfg.per_channel,
        reduce_range=cfg.reduce_range,
        weight_type=QuantType.QInt8 if cfg.weight_type == "int8" else QuantType.QUInt8,
        op_types_to_quantize=op_types,
        nodes_to_exclude=exclude,
        # the optimizer's fused graph lacks some type annotations the quantizer needs (DESIGN.md);
        # MatMulConstBOnly false also quantizes MatMuls of two activations (QK^T, attention x V)
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "MatMulConstBOnly": not cfg.quantize_attention,
        },
    )
    from nlpress.export.ort_optimize import op_counts

    counts = {t: n for t, n in op_counts(dst).items() if _is_int8_op(t)}
    if not counts and not _has_int8_tables(dst):
        from nlpress.errors import NlpressError

        raise NlpressError("quantize-dynamic-int8: the model has no layer that can be quantized")
    return {"backend": "onnxruntime", "quantized_ops": counts, "excluded": exclude}


def activation_matmuls(graph) -> list[str]:
    """MatMul nodes whose both inputs are activations (attention's QK^T and attention x V):
    neither an initializer nor a Constant's output."""
    consts = {i.name for i in graph.initializer}
    consts |= {o for n in graph.node if n.op_type == "Constant" for o in n.output}
    return [
        n.name
        for n in graph.node
        if n.op_type == "MatMul" and not any(i in consts for i in n.input[:2])
    ]


def _has_int8_tables(path: Path) -> bool:
    """Whether ORT stored some weight in int8 (an embedding table is quantized without any
    integer op: its rows are dequantized after the lookup)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    return any(i.name.endswith("_quantized") for i in graph.initializer)


def _is_int8_op(op_type: str) -> bool:
    return op_type in ("MatMulInteger", "DynamicQuantizeMatMul") or (
        op_type.startswith("Q") and op_type[1].isupper()
    )


def quantize_torch_dynamic(model, cfg: QuantizeDynamicInt8Config) -> dict:
    """Replace every selected ``nn.Linear`` in place by a dynamic int8 linear."""
    import torch
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    from nlpress.errors import NlpressError

    if cfg.weight_type != "int8":
        raise NlpressError(
            "quantize-dynamic-int8 with backend torch supports weight_type: int8 only"
        )
    linear = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    if not linear:
        raise NlpressError("quantize-dynamic-int8: the model has no linear layer to quantize")
    excluded = set(match_names(linear, cfg.ignore)) if cfg.ignore else set()
    qconfig = per_channel_dynamic_qconfig if cfg.per_channel else default_dynamic_qconfig
    spec = {n: qconfig for n in linear if n not in excluded}
    quantize_dynamic(model, spec, dtype=torch.qint8, inplace=True)
    return {"backend": "torch", "quantized_linear": len(spec), "excluded": sorted(excluded)}
