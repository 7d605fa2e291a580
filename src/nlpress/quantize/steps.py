"""The int8 and cast recipe steps: glue between the steps' shared state and the quantizers."""

from __future__ import annotations

import copy
import time
from pathlib import Path

from nlpress.recipe import CastConfig, QuantizeDynamicInt8Config, QuantizeStaticInt8Config
from nlpress.state import CheckContext, State


def check_int8(
    cfg: QuantizeDynamicInt8Config | QuantizeStaticInt8Config, ctx: CheckContext, i: int = 0
) -> None:
    """Mixed precision (min_fidelity) needs enough texts to measure fidelity on."""
    from nlpress.errors import NlpressError
    from nlpress.quantize.mixed import MIN_TEXTS

    if cfg.min_fidelity is not None and len(ctx.fidelity_texts) < MIN_TEXTS:
        raise NlpressError(
            f"min_fidelity needs at least {MIN_TEXTS} texts to measure fidelity on, got "
            f"{len(ctx.fidelity_texts)}; pass a larger --data file"
        )


def step_quantize(st: State, cfg: QuantizeDynamicInt8Config) -> dict:
    from nlpress.quantize.dynamic import quantize_onnx_dynamic, quantize_torch_dynamic

    if cfg.backend == "onnxruntime":
        dst = st.tmp / "model.int8.onnx"
        if cfg.min_fidelity is not None:
            info = _mixed(st, cfg, dst)
        else:
            info = quantize_onnx_dynamic(st.onnx, dst, cfg)
        st.onnx.unlink()
        st.onnx = dst
        return info
    st.torch_model = copy.deepcopy(st.current())  # the baseline keeps the fp32 original
    st.weights_format = "dynamic-int8"  # a pruning step before may have set another
    return quantize_torch_dynamic(st.torch_model, cfg)


def step_quantize_static(st: State, cfg: QuantizeStaticInt8Config) -> dict:
    from nlpress.quantize.static import CALIB_BATCH, calibration_batches, quantize_onnx_static

    texts = st.calib_texts[: cfg.num_samples]
    t0 = time.perf_counter()
    batches = calibration_batches(texts, st.tokenize, CALIB_BATCH)
    dst = st.tmp / "model.int8.onnx"
    if cfg.min_fidelity is not None:
        info = _mixed(st, cfg, dst, batches)
    else:
        info = quantize_onnx_static(st.onnx, dst, cfg, batches)
    st.onnx.unlink()
    st.onnx = dst
    info["calibration_source"] = st.calib_source
    info["calibration_seconds"] = round(time.perf_counter() - t0, 2)
    return info


def _mixed(st: State, cfg, dst: Path, calib_batches: list | None = None) -> dict:
    from nlpress.quantize.mixed import quantize_mixed

    return quantize_mixed(
        st.onnx,
        dst,
        cfg,
        task=st.lm.task,
        texts=st.fidelity_texts,
        tokenize=st.tokenize,
        calib_batches=calib_batches,
        progress=st.progress,
    )


def step_cast(st: State, cfg: CastConfig) -> dict:
    from nlpress.quantize.cast import cast_model

    st.torch_model = copy.deepcopy(st.current())  # the baseline keeps the fp32 original
    st.weights_format = "hf"
    return cast_model(st.torch_model, cfg)
