"""Export a task model to ONNX and check it against PyTorch.

Why this design: the TorchScript exporter (``dynamo=False``) through :class:`TaskModule`, whose
forward names its inputs, matched PyTorch exactly on MiniLM and ran faster under ONNX Runtime
than the dynamo exporter (DESIGN.md); the dynamo exporter stays available by config. Attention
is switched to the eager implementation for the export so ONNX Runtime's optimizer can fuse it.

Validation is on by default (as in optimum's ``main_export(do_validation=True)``): the exported
graph runs in ONNX Runtime on a real batch and must agree with PyTorch within ``atol``;
otherwise the step fails and no artifact is written.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from nlpress.errors import NlpressError
from nlpress.models.loader import LoadedModel
from nlpress.models.task_module import OUTPUT_NAMES, TaskModule, model_input_names
from nlpress.recipe import ExportOnnxConfig

log = logging.getLogger(__name__)


class ExportValidationError(NlpressError):
    pass


def _dynamic_axes(task: str, input_names: list[str]) -> dict[str, dict[int, str]]:
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    out = OUTPUT_NAMES[task]
    axes[out] = {0: "batch", 1: "sequence"} if task == "causal-lm" else {0: "batch"}
    return axes


def export_onnx(
    lm: LoadedModel,
    out_path: Path,
    cfg: ExportOnnxConfig,
    sample: dict[str, np.ndarray],
) -> dict:
    """Write ``out_path`` (single file; weights inline below 2 GB) and return validation info."""
    model = lm.model
    previous_attn = getattr(model.config, "_attn_implementation", None)
    if previous_attn and previous_attn != cfg.attn_implementation:
        model.set_attn_implementation(cfg.attn_implementation)
    names = model_input_names(model, lm.tokenizer)
    module = TaskModule(model, lm.task, names, lm.pooling, lm.normalize).eval()
    args = tuple(torch.from_numpy(sample[n]) for n in names)
    t0 = time.perf_counter()
    try:
        # tracer warnings about Python-level shape checks are expected here; validation below
        # is what tells whether the graph is right
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message=".*aten::index.*")
            if cfg.exporter == "torchscript":
                torch.onnx.export(
                    module,
                    args,
                    str(out_path),
                    dynamo=False,
                    opset_version=cfg.opset,
                    input_names=names,
                    output_names=[OUTPUT_NAMES[lm.task]],
                    dynamic_axes=_dynamic_axes(lm.task, names),
                    do_constant_folding=True,
                )
            else:
                dyn = torch.export.Dim("batch"), torch.export.Dim("sequence")
                shapes = {n: {0: dyn[0], 1: dyn[1]} for n in names}
                prog = torch.onnx.export(
                    module,
                    args,
                    dynamo=True,
                    opset_version=cfg.opset,
                    input_names=names,
                    output_names=[OUTPUT_NAMES[lm.task]],
                    dynamic_shapes=shapes,
                )
                prog.save(str(out_path), external_data=False)
    finally:
        if previous_attn and previous_attn != cfg.attn_implementation:
            model.set_attn_implementation(previous_attn)
    info = {
        "exporter": cfg.exporter,
        "opset": cfg.opset,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if cfg.validate_export:
        info.update(validate_onnx(module, out_path, sample, names, cfg.atol))
    return info


def validate_onnx(
    module, onnx_path: Path, sample: dict[str, np.ndarray], names, atol: float
) -> dict:
    """Run the graph in ONNX Runtime and compare with PyTorch; raise if they differ by > atol."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {n: sample[n] for n in names})[0]
    with torch.no_grad():
        want = module(*(torch.from_numpy(sample[n]) for n in names)).float().numpy()
    if got.shape != want.shape:
        raise ExportValidationError(
            f"exported ONNX output shape {got.shape} != PyTorch {want.shape}"
        )
    diff = float(np.max(np.abs(got - want)))
    log.info("export validation: max |onnx - torch| = %.2e (atol %.0e)", diff, atol)
    if not np.isfinite(diff) or diff > atol:
        raise ExportValidationError(
            f"exported ONNX model differs from PyTorch by {diff:.3g} (> atol {atol:g}); "
            "try `exporter: dynamo` in the export-onnx step, or raise atol if this is expected"
        )
    return {"max_abs_diff": diff, "atol": atol, "validation_batch": list(want.shape[:2])}
