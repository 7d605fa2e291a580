"""Export a task model to OpenVINO IR and check it against PyTorch.

Two frontends, one config (:class:`~nlpress.recipe.ExportOpenVinoConfig`): ``openvino.convert_model``
on the PyTorch :class:`~nlpress.models.task_module.TaskModule` (the default: on the tiny test
BERT it matched PyTorch within 2e-7, against 4.5e-4 through the ONNX frontend), or on the plain
ONNX export that an ``export-onnx`` step wrote. The inputs keep dynamic batch and sequence axes,
so one IR serves every batch shape.

Validation is on by default, as for ONNX (STYLE.md habit 9): the IR is compiled on the CPU
plugin at the precision the artifact will run at, run on a real batch, and must agree with
PyTorch within ``atol``, or the step fails and no artifact is written.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path

import numpy as np

from nlpress.errors import NlpressError
from nlpress.recipe import ExportOpenVinoConfig
from nlpress.runtime.openvino import MODEL_FILE, compile_config, require_openvino, shared_core

log = logging.getLogger(__name__)


def convert_from_torch(module, sample: dict[str, np.ndarray], names: list[str]):
    """An ``openvino.Model`` of ``module`` (a TaskModule), traced on ``sample``."""
    import torch

    ov = require_openvino("export-openvino")
    example = {n: torch.from_numpy(sample[n]) for n in names}
    with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings; validation tells if the graph is right
        model = ov.convert_model(module, example_input=example)
    _name_inputs(model, names)
    return model


def convert_from_onnx(onnx_path: Path):
    ov = require_openvino("export-openvino")
    try:
        return ov.convert_model(str(onnx_path))
    except Exception as e:  # OpenVINO raises its own OpConversionFailure, a RuntimeError, ...
        raise NlpressError(
            f"export-openvino: OpenVINO cannot read {onnx_path.name} ({str(e).splitlines()[0]}); "
            "use source: pytorch"
        ) from e


def _name_inputs(model, names: list[str]) -> None:
    """The PyTorch frontend names inputs after forward's arguments; make sure they are ours."""
    for port, name in zip(model.inputs, names, strict=False):
        if name not in port.get_names():
            port.get_tensor().set_names({name})


def save_ir(model, dst_xml: Path) -> list[Path]:
    """Write ``dst_xml`` + ``.bin``; weights stay fp32 (compress_to_fp16 would round them)."""
    ov = require_openvino("export-openvino")
    ov.save_model(model, str(dst_xml), compress_to_fp16=False)
    return [dst_xml, dst_xml.with_suffix(".bin")]


def validate_ir(
    module, xml: Path, sample: dict[str, np.ndarray], names, atol: float, precision: str = "f32"
) -> dict:
    """Run the IR on OpenVINO's CPU plugin and compare with PyTorch; raise if off by > atol."""
    import torch

    require_openvino("export-openvino")
    compiled = shared_core().compile_model(str(xml), "CPU", compile_config(1, precision))
    got = np.asarray(compiled({n: sample[n] for n in names})[compiled.outputs[0]])
    with torch.no_grad():
        want = module(*(torch.from_numpy(sample[n]) for n in names)).float().numpy()
    if got.shape != want.shape:
        raise NlpressError(f"exported OpenVINO output shape {got.shape} != PyTorch {want.shape}")
    diff = float(np.max(np.abs(got - want)))
    log.info("openvino validation: max |openvino - torch| = %.2e (atol %.0e)", diff, atol)
    if not np.isfinite(diff) or diff > atol:
        raise NlpressError(
            f"exported OpenVINO model differs from PyTorch by {diff:.3g} (> atol {atol:g}); "
            "try the other `source` in the export-openvino step, or raise atol if expected"
        )
    return {"max_abs_diff": diff, "atol": atol, "validation_batch": list(want.shape[:2])}


def export_openvino(
    lm, onnx_path: Path | None, dst_dir: Path, cfg: ExportOpenVinoConfig, sample: dict
) -> tuple[Path, dict]:
    """Write ``dst_dir/model.xml`` from ``lm`` (a LoadedModel) or ``onnx_path``; (path, info)."""
    from nlpress.models.task_module import TaskModule, model_input_names

    names = model_input_names(lm.model, lm.tokenizer)
    module = TaskModule(lm.model, lm.task, names, lm.pooling, lm.normalize).eval()
    t0 = time.perf_counter()
    if cfg.source == "onnx":
        if onnx_path is None:
            raise NlpressError("export-openvino with source onnx needs export-onnx before it")
        model = convert_from_onnx(onnx_path)
    else:
        model = convert_from_torch(module, sample, names)
    xml = dst_dir / MODEL_FILE
    save_ir(model, xml)
    info: dict = {
        "source": cfg.source,
        "precision": cfg.precision,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if cfg.validate_export:
        info.update(validate_ir(module, xml, sample, names, cfg.atol, cfg.precision))
    return xml, info


# -- the recipe steps' glue (the pipeline's state in, the model on disk out) -------------------


def step_export_openvino(st, cfg: ExportOpenVinoConfig) -> dict:
    """``export-openvino``: the current model (pruned, smoothed) as IR in the temporary folder."""
    import dataclasses

    lm = dataclasses.replace(st.lm, model=st.current())
    out = st.tmp / "export"
    out.mkdir(exist_ok=True)
    xml, info = export_openvino(lm, st.onnx, out, cfg, st.sample)
    if st.onnx is not None and cfg.source == "onnx":
        st.onnx.unlink()  # read into the IR; the artifact is the OpenVINO model
        st.onnx = None
    st.openvino, st.openvino_meta = xml, {"precision": cfg.precision}
    return info


def finalize_ir(st, recipe_name: str) -> dict:
    """Move the IR into place as model.xml/.bin; the nlpress.json fields that say how to run it."""
    from nlpress.runtime.openvino import openvino_version

    xml = st.tmp / MODEL_FILE
    if st.openvino != xml:
        st.openvino.with_suffix(".bin").rename(xml.with_suffix(".bin"))
        st.openvino.rename(xml)
        parent = st.openvino.parent
        if parent != st.tmp and not any(parent.iterdir()):
            parent.rmdir()
    return {
        "backend": "openvino",
        "model_file": MODEL_FILE,
        "precision": "f32",
        **st.openvino_meta,
        "openvino": openvino_version(),
        "name": f"openvino-{recipe_name}",
    }
