"""The ONNX recipe steps: ``export-onnx`` and ``ort-optimize`` on the steps' shared state."""

from __future__ import annotations

import dataclasses

from nlpress.recipe import ExportOnnxConfig, OrtOptimizeConfig
from nlpress.state import State


def step_export(st: State, cfg: ExportOnnxConfig) -> dict:
    from nlpress.export.onnx_export import export_onnx

    st.onnx = st.tmp / "model.export.onnx"
    lm = dataclasses.replace(st.lm, model=st.current())  # a pruned model, if a step pruned it
    return export_onnx(lm, st.onnx, cfg, st.sample)


def step_optimize(st: State, cfg: OrtOptimizeConfig) -> dict:
    from nlpress.export.ort_optimize import ort_optimize

    dst = st.tmp / "model.opt.onnx"
    info = ort_optimize(st.onnx, dst, st.current().config.to_dict(), cfg)
    st.onnx.unlink()
    st.onnx = dst
    return info
