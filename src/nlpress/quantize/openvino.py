"""OpenVINO int8 by NNCF: post-training quantization, or int8 weight compression.

Two modes, one config (:class:`~nlpress.recipe.QuantizeOpenVinoInt8Config`):

* **static** (default): ``nncf.quantize`` with ``model_type=TRANSFORMER``, NNCF's post-training
  quantization (min-max ranges on calibration texts, SmoothQuant on the MatMuls, fast bias
  correction). It inserts FakeQuantize nodes that OpenVINO's CPU plugin runs as int8 GEMMs
  (oneDNN, VNNI where the CPU has it). With the transformer model type NNCF quantizes the
  linear layers' MatMuls; on the tiny test BERT attention's own (fused into
  ScaledDotProductAttention by OpenVINO) stayed in float.
* **weights**: ``nncf.compress_weights`` (INT8_ASYM by default), int8 weights per output channel
  decompressed on the fly, fp32 compute; no calibration needed. The most faithful int8 there is
  (mean / min cosine 0.9996 / 0.9989 on MiniLM, issue 13); the speed is fp32's plus less memory
  traffic.

We call NNCF rather than write our own quantizer for OpenVINO for the same reason we call ORT's
for ONNX Runtime: its graph patterns are what the runtime's int8 kernels were built to fuse.
Calibration texts are fed one per sample, unpadded, so padding never enters a range.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

import numpy as np

from nlpress.errors import NlpressError
from nlpress.recipe import QuantizeOpenVinoInt8Config
from nlpress.runtime.openvino import quiet_nncf, require_nncf

log = logging.getLogger(__name__)

_OVERFLOW = {"first_layer": "FIRST_LAYER", "enable": "ENABLE", "disable": "DISABLE"}


def resolve_overflow_fix(choice: str, flags: frozenset[str] | None = None) -> str:
    """``auto``: 7-bit weights everywhere where U8S8 pairs saturate (no VNNI), none elsewhere."""
    from nlpress.runtime.isa import u8s8_saturates

    if choice != "auto":
        return choice
    return "enable" if u8s8_saturates(flags) else "disable"


def calibration_samples(
    texts: Sequence, tokenize: Callable[[list], dict[str, np.ndarray]], input_names: list[str]
) -> list[dict[str, np.ndarray]]:
    """One tokenized, unpadded sample per text, with the model's input names only."""
    return [{k: v for k, v in tokenize([t]).items() if k in input_names} for t in texts]


def quantize_openvino(
    model,
    cfg: QuantizeOpenVinoInt8Config,
    samples: list[dict[str, np.ndarray]] | None = None,
    progress: bool = False,
):
    """(quantized ``openvino.Model``, info). ``samples`` are needed in static mode only."""
    nncf = require_nncf("quantize-openvino-int8")
    t0 = time.perf_counter()
    with quiet_nncf(progress):
        if cfg.mode == "weights":
            mode = (
                nncf.CompressWeightsMode.INT8_SYM
                if cfg.symmetric_weights
                else nncf.CompressWeightsMode.INT8_ASYM
            )
            q = nncf.compress_weights(model, mode=mode)
            info: dict = {"mode": "weights", "weights": mode.value}
        else:
            if not samples:
                raise NlpressError(
                    "quantize-openvino-int8 (static) needs calibration texts; pass --calib or "
                    "--data, or use mode: weights"
                )
            from nncf.quantization.advanced_parameters import (
                AdvancedQuantizationParameters,
                OverflowFix,
            )

            overflow = resolve_overflow_fix(cfg.overflow_fix)
            q = nncf.quantize(
                model,
                nncf.Dataset(samples),
                model_type=nncf.ModelType.TRANSFORMER,
                preset=getattr(nncf.QuantizationPreset, cfg.preset.upper()),
                subset_size=len(samples),
                fast_bias_correction=cfg.fast_bias_correction,
                advanced_parameters=AdvancedQuantizationParameters(
                    overflow_fix=getattr(OverflowFix, _OVERFLOW[overflow])
                ),
            )
            info = {
                "mode": "static",
                "preset": cfg.preset,
                "calibration_samples": len(samples),
                "overflow_fix": overflow,
            }
    counts = int8_counts(q)
    if not any(counts.values()):
        raise NlpressError("quantize-openvino-int8: the model has no layer that NNCF quantized")
    info.update(counts, seconds=round(time.perf_counter() - t0, 2))
    return q, info


def int8_counts(model) -> dict[str, int]:
    """FakeQuantize nodes (static int8) and int8/uint8 weight constants (both modes)."""
    fq = consts = 0
    for op in model.get_ops():
        kind = op.get_type_name()
        if kind == "FakeQuantize":
            fq += 1
        elif kind == "Constant" and op.get_element_type().get_type_name() in ("i8", "u8"):
            consts += 1
    return {"fake_quantize": fq, "int8_weights": consts}


def calib_samples_wanted(steps) -> int:
    """Calibration texts the recipe's OpenVINO steps need (0: none), checked before any work."""
    from nlpress.step_configs import QuantizeOpenVinoInt8Config, SelectBackendConfig

    wanted = 0
    for s in steps:
        if isinstance(s, QuantizeOpenVinoInt8Config) and s.mode == "static":
            wanted = max(wanted, s.num_samples)
        if isinstance(s, SelectBackendConfig) and "openvino-int8" in s.candidates:
            wanted = max(wanted, s.openvino.num_samples)
    return wanted


def step_quantize_openvino(st, cfg: QuantizeOpenVinoInt8Config) -> dict:
    """``quantize-openvino-int8`` on the IR that export-openvino wrote."""
    from nlpress.export.openvino import save_ir
    from nlpress.runtime.openvino import ir_files, require_openvino, shared_core

    require_openvino("quantize-openvino-int8")
    model = shared_core().read_model(str(st.openvino))
    samples = None
    if cfg.mode == "static":
        names = [i.get_any_name() for i in model.inputs]
        samples = calibration_samples(st.calib_texts[: cfg.num_samples], st.tokenize, names)
    q, info = quantize_openvino(model, cfg, samples, st.progress)
    dst = st.openvino.with_name("model.int8.xml")
    save_ir(q, dst)
    del model, q
    for f in ir_files(st.openvino):
        f.unlink()
    st.openvino = dst
    if "overflow_fix" in info:  # recorded in nlpress.json: the load-time ISA check reads it
        st.openvino_meta["overflow_fix"] = info["overflow_fix"]
    if samples is not None:
        info["calibration_source"] = st.calib_source
    return info
