"""Static int8 quantization: int8 weights and int8 activations with ranges fixed by calibration.

ONNX Runtime's ``quantize_static`` in QDQ format: every selected MatMul gets QuantizeLinear /
DequantizeLinear pairs on its inputs, with activation scales measured once on calibration texts
(Jacob et al. 2018, "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-
Only Inference"; entropy calibration as in NVIDIA TensorRT's "8-bit inference with TensorRT",
Migacz 2017). ORT's graph optimizer then fuses each QDQ group into integer kernels
(``QLinearMatMul``, ``MatMulIntegerToFloat``), so the runtime skips the per-batch range scan that
dynamic quantization does.

Why this design: ORT's quantizer and calibrators rather than our own, because the graph it writes
is the one its kernels are fused for; what is ours is the calibration feed (tokenized with the
model's own tokenizer, in small batches padded per batch, so no padding dominates the ranges),
the choice of what stays float, and the check that something was quantized. Calibration feeds
one batch at a time, so the histogram calibrators (entropy, percentile) never hold more than one
batch of activations; the ranges are handed to ``quantize_static`` through its
calibration cache.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nlpress.errors import NlpressError
from nlpress.recipe import QuantizeStaticInt8Config
from nlpress.select import match_names

log = logging.getLogger(__name__)

MIN_CALIB_TEXTS = 8
CALIB_BATCH = 8  # texts per calibration batch: padding stays short, ranges see real batches


def check_calibration_texts(texts: Sequence, source: str = "calibration") -> None:
    if len(texts) < MIN_CALIB_TEXTS:
        raise NlpressError(
            f"calibration needs at least {MIN_CALIB_TEXTS} texts, got {len(texts)} ({source})"
        )


def calibration_batches(
    texts: Sequence, tokenize: Callable[[list], dict[str, np.ndarray]], batch_size: int
) -> list[dict[str, np.ndarray]]:
    """Tokenized batches of ``texts``, each padded to its own longest text."""
    return [tokenize(list(texts[i : i + batch_size])) for i in range(0, len(texts), batch_size)]


class _Reader:
    """ORT ``CalibrationDataReader`` over prepared batches, with the range API strided runs use."""

    def __init__(self, batches: list[dict[str, np.ndarray]], input_names: list[str]):
        self.batches = [{k: v for k, v in b.items() if k in input_names} for b in batches]
        self.set_range(0, len(self.batches))

    def __len__(self) -> int:
        return len(self.batches)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.batches[start_index:end_index])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._it, None)


def quantize_onnx_static(
    src: Path,
    dst: Path,
    cfg: QuantizeStaticInt8Config,
    batches: list[dict[str, np.ndarray]],
    keep_fp32: Sequence[str] = (),
    ranges: Path | None = None,
) -> dict:
    """``keep_fp32``: exact node names left in float on top of ``cfg.ignore``; ``ranges``: a
    calibration cache file, calibrated into when missing and reused when present, so several
    quantizations of one model (mixed precision) calibrate once."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.registry import QDQRegistry

    if not batches:
        raise NlpressError("quantize-static-int8: no calibration batches")
    graph = onnx.load(str(src), load_external_data=False).graph
    exclude = match_names([n.name for n in graph.node], cfg.ignore) if cfg.ignore else []
    if cfg.float_after_gelu:
        exclude += [n for n in after_gelu(graph.node) if n not in exclude]
    exclude += [n for n in keep_fp32 if n not in exclude]
    if not cfg.quantize_attention:  # ORT's QDQ quantizer ignores MatMulConstBOnly: name them
        from nlpress.quantize.dynamic import activation_matmuls

        exclude += [n for n in activation_matmuls(graph) if n not in exclude]
    op_types = sorted(t for t in QDQRegistry if t not in cfg.exclude_op_types)
    if not op_types:  # ORT reads an empty list as "every op type"
        raise NlpressError("quantize-static-int8: exclude_op_types leaves no layer to quantize")
    reader = _Reader(batches, [i.name for i in graph.input])
    method = {
        "minmax": CalibrationMethod.MinMax,
        "percentile": CalibrationMethod.Percentile,
        "entropy": CalibrationMethod.Entropy,
    }[cfg.method]
    with tempfile.TemporaryDirectory(prefix="nlpress-calib-") as tmp:
        cache = ranges or Path(tmp) / "ranges.json"
        if not cache.is_file():
            _calibrate(src, reader, method, op_types, cfg, Path(tmp), cache)
        quantize_static(
            str(src),
            str(dst),
            None,  # ranges come from the cache written by _calibrate
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=op_types,
            per_channel=cfg.per_channel,
            reduce_range=cfg.reduce_range,
            activation_type=QuantType.QUInt8 if cfg.activation_type == "uint8" else QuantType.QInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
            calibrate_method=method,
            calibration_cache_path=cache,
            # the exported graph lacks some type annotations the quantizer needs (DESIGN.md)
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    from nlpress.export.ort_optimize import op_counts

    ops = op_counts(dst)
    counts = {t: ops[t] for t in ("QuantizeLinear", "DequantizeLinear") if t in ops}
    quantized = _quantized_nodes(dst, op_types)
    if not quantized:
        raise NlpressError(
            "quantize-static-int8: no layer was quantized; check exclude_op_types and ignore"
        )
    return {
        "format": "QDQ",
        "method": cfg.method,
        "activation_type": cfg.activation_type,
        "calibration_batches": len(batches),
        "calibration_texts": sum(len(next(iter(b.values()))) for b in batches),
        "quantized_ops": quantized,
        "qdq_nodes": counts,
        "excluded": exclude,
    }


def _calibrate(src, reader, method, op_types, cfg, tmp: Path, cache: Path) -> None:
    """Activation ranges of ``src`` on ``reader``'s batches, saved as ORT's calibration cache.

    We drive ORT's calibrator ourselves rather than through ``quantize_static`` because (ORT 1.32)
    ``quantize_static`` cannot set the histogram size: entropy then gets 128 bins for 128
    quantized bins, which leaves it a single candidate threshold, i.e. plain min-max.
    """
    from onnxruntime.quantization.calibrate import create_calibrator, save_tensors_data

    options = {"percentile": cfg.percentile}
    if cfg.method == "entropy":
        options.update(num_bins=2048, num_quantized_bins=128)  # TensorRT's KL search sizes
    calibrator = create_calibrator(
        Path(src),
        op_types,
        augmented_model_path=str(tmp / "augmented.onnx"),
        calibrate_method=method,
        extra_options=options,
    )
    # one batch per call: the histogram collectors stack a call's batches into one array, which
    # fails for batches padded to different lengths, and one batch is also the least memory
    for start in range(len(reader)):
        reader.set_range(start, start + 1)
        calibrator.collect_data(reader)
    save_tensors_data(calibrator.compute_data(), cache)


GELU_OPS = ("Erf", "Gelu", "FastGelu", "BiasGelu", "Tanh")  # Tanh: GPT-2's approximate GELU


def after_gelu(nodes, depth: int = 4) -> list[str]:
    """Names of MatMul/Gemm nodes whose input is a GELU's output (found within ``depth`` ops
    upstream, as exporters spell GELU out as Div -> Erf -> Add -> Mul -> Mul)."""
    producer = {o: n for n in nodes for o in n.output}

    def reaches_gelu(tensor: str, left: int) -> bool:
        n = producer.get(tensor)
        if n is None or left == 0 or n.op_type in ("MatMul", "Gemm"):
            return False
        return n.op_type in GELU_OPS or any(reaches_gelu(i, left - 1) for i in n.input)

    return [
        n.name
        for n in nodes
        if n.op_type in ("MatMul", "Gemm") and n.input and reaches_gelu(n.input[0], depth)
    ]


def _quantized_nodes(path: Path, op_types: list[str]) -> dict[str, int]:
    """Op types whose input comes from a DequantizeLinear: the nodes that will run in int8."""
    import onnx

    nodes = onnx.load(str(path), load_external_data=False).graph.node
    dq_out = {o for n in nodes if n.op_type == "DequantizeLinear" for o in n.output}
    hits = [n.op_type for n in nodes if n.op_type in op_types and any(i in dq_out for i in n.input)]
    return {t: hits.count(t) for t in sorted(set(hits))}
