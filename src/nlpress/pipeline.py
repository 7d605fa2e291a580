"""``compress()``: run a recipe's steps, evaluate, benchmark, and write the artifact atomically.

Order matters for the user: everything that can be checked cheaply (output folder, recipe, model
folder, data file) is checked before the first slow step, and nothing is written outside a
temporary folder until the end (:func:`nlpress.artifact.atomic_artifact`). The baseline, the
original model in PyTorch fp32, is evaluated and benchmarked in the same run as the result so
the ratios in the report are measured side by side on the same (noisy) machine.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nlpress.artifact import FORMAT_VERSION, META, atomic_artifact, check_target, write_json
from nlpress.calib.pipeline_steps import (
    check_calibrated_steps,
    lm_calibration_texts,
    measure_lm_speed,
    needs_lm_calib,
    step_smooth,
    step_weight_only,
)
from nlpress.errors import NlpressError
from nlpress.recipe import (
    CastConfig,
    ExportOnnxConfig,
    ExportOpenVinoConfig,
    OrtOptimizeConfig,
    PruneGradualConfig,
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneSparseGPTConfig,
    PruneStructuredConfig,
    PruneWandaConfig,
    QatConfig,
    QuantizeDynamicInt8Config,
    QuantizeOpenVinoInt8Config,
    QuantizeStaticInt8Config,
    QuantizeWeightOnlyConfig,
    Recipe,
    RecoverConfig,
    SelectBackendConfig,
    SmoothQuantConfig,
    load_recipe,
)

log = logging.getLogger(__name__)

EVAL_LIMIT = 2000  # rows evaluated by default: enough for stable metrics, minutes not hours


@dataclass
class Artifact:
    path: Path
    metrics: dict

    def load(self, **kw):
        from nlpress.runtime import load

        return load(self.path, **kw)


@dataclass
class _State:
    """What the steps hand to each other inside the temporary folder."""

    lm: Any
    tmp: Path
    sample: dict
    onnx: Path | None = None
    openvino: Path | None = None  # model.xml of an OpenVINO IR (export-openvino, select-backend)
    openvino_meta: dict = field(default_factory=dict)  # how to run it: precision, int8 format
    device: str = "cpu"  # where the artifact runs (--device), recorded in nlpress.json
    torch_model: Any = None
    weights_format: str = "dynamic-int8"  # how torch_model is saved: "dynamic-int8" or "hf"
    tokenize: Any = None  # texts -> int64 numpy batch, the baseline's tokenizer
    calib_texts: list = field(default_factory=list)
    calib_source: str = ""  # the --calib file, or "evaluation data" when none was given
    fidelity_texts: list = field(default_factory=list)  # what min_fidelity is measured on
    progress: bool = True
    steps: list[dict] = field(default_factory=list)
    quantized: dict = field(default_factory=dict)  # weight-only layers, saved by _finalize_model
    pruning: dict = field(default_factory=dict)  # per-layer sparsity etc., for the report
    masks: dict = field(default_factory=dict)  # parameter name -> keep-mask, from pruning steps
    data: Any = None  # the --data file: what prune-gradual and recover train on by default

    def release_model(self) -> None:
        """Drop the steps' model once it is saved, and hand its memory back to the OS."""
        import gc

        from nlpress.calib.sequential import _release_freed_memory

        self.torch_model, self.quantized = None, {}
        gc.collect()
        _release_freed_memory()

    def current(self):
        """The model as the steps so far left it (the baseline's own model is never changed)."""
        return self.torch_model if self.torch_model is not None else self.lm.model


def _step_export(st: _State, cfg: ExportOnnxConfig) -> dict:
    from nlpress.export.onnx_export import export_onnx

    st.onnx = st.tmp / "model.export.onnx"
    lm = dataclasses.replace(st.lm, model=st.current())  # a pruned model, if a step pruned it
    return export_onnx(lm, st.onnx, cfg, st.sample)


def _step_optimize(st: _State, cfg: OrtOptimizeConfig) -> dict:
    from nlpress.export.ort_optimize import ort_optimize

    dst = st.tmp / "model.opt.onnx"
    info = ort_optimize(st.onnx, dst, st.current().config.to_dict(), cfg)
    st.onnx.unlink()
    st.onnx = dst
    return info


def _step_quantize(st: _State, cfg: QuantizeDynamicInt8Config) -> dict:
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


def _step_quantize_static(st: _State, cfg: QuantizeStaticInt8Config) -> dict:
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


def _mixed(st: _State, cfg, dst: Path, calib_batches: list | None = None) -> dict:
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


def _step_cast(st: _State, cfg: CastConfig) -> dict:
    from nlpress.quantize.cast import cast_model

    st.torch_model = copy.deepcopy(st.current())  # the baseline keeps the fp32 original
    st.weights_format = "hf"
    return cast_model(st.torch_model, cfg)


def _step_prune(st: _State, cfg) -> dict:
    from nlpress.prune.steps import prune_step

    return prune_step(st, cfg)


def _step_gradual(st: _State, cfg: PruneGradualConfig) -> dict:
    from nlpress.prune.recover import step_gradual

    return step_gradual(st, cfg)


def _step_qat(st: _State, cfg: QatConfig) -> dict:
    from nlpress.quantize.qat import step_qat

    return step_qat(st, cfg)


def _step_recover(st: _State, cfg: RecoverConfig) -> dict:
    from nlpress.prune.recover import step_recover

    return step_recover(st, cfg)


def _step_export_openvino(st: _State, cfg: ExportOpenVinoConfig) -> dict:
    from nlpress.export.openvino import step_export_openvino

    return step_export_openvino(st, cfg)


def _step_quantize_openvino(st: _State, cfg: QuantizeOpenVinoInt8Config) -> dict:
    from nlpress.quantize.openvino import step_quantize_openvino

    return step_quantize_openvino(st, cfg)


def _step_select_backend(st: _State, cfg: SelectBackendConfig) -> dict:
    from nlpress.bench.select import step_select_backend

    return step_select_backend(st, cfg)


HANDLERS = {
    ExportOnnxConfig: _step_export,
    OrtOptimizeConfig: _step_optimize,
    QuantizeDynamicInt8Config: _step_quantize,
    QuantizeStaticInt8Config: _step_quantize_static,
    CastConfig: _step_cast,
    QuantizeWeightOnlyConfig: step_weight_only,
    SmoothQuantConfig: step_smooth,
    PruneMagnitudeConfig: _step_prune,
    PruneNMConfig: _step_prune,
    PruneStructuredConfig: _step_prune,
    PruneGradualConfig: _step_gradual,
    RecoverConfig: _step_recover,
    QatConfig: _step_qat,
    PruneWandaConfig: _step_prune,
    PruneSparseGPTConfig: _step_prune,
    ExportOpenVinoConfig: _step_export_openvino,
    QuantizeOpenVinoInt8Config: _step_quantize_openvino,
    SelectBackendConfig: _step_select_backend,
}


def _read_inputs(task: str, data, columns: dict, limit: int | None):
    """(evaluation data, benchmark texts). Causal LM data is one text; others are TextData."""
    from nlpress.evaluate.api import bench_texts, load_eval_data

    eval_data = load_eval_data(task, data, limit, columns)
    return eval_data, bench_texts(task, eval_data)


def _calibration_texts(
    rcp: Recipe, task: str, calib, columns: dict, bench_texts: list
) -> tuple[list, str]:
    """(calibration texts, their source) for a recipe with a static step; checked before work."""
    from nlpress.quantize.static import check_calibration_texts

    wanted = max(
        (
            s.num_samples
            for s in rcp.steps
            if isinstance(s, QuantizeStaticInt8Config)
            or (isinstance(s, PruneStructuredConfig) and s.score == "activation")
        ),
        default=0,
    )
    from nlpress.quantize.openvino import calib_samples_wanted

    wanted = max(wanted, calib_samples_wanted(rcp.steps))
    if not wanted and needs_lm_calib(rcp):
        return lm_calibration_texts(rcp, task, calib, columns, bench_texts)
    if not wanted:
        if calib is not None:
            raise NlpressError(
                "--calib is used by quantize-static-int8, quantize-openvino-int8, "
                "select-backend, GPTQ/AWQ/SmoothQuant and "
                f"activation-scored pruning only; recipe {rcp.name!r} has none "
                "(try --recipe int8-static or int4-gptq)"
            )
        return [], ""
    if calib is None:
        texts, source = bench_texts, "evaluation data (no --calib given)"
    else:
        texts, source = _read_calib(calib, task, columns, wanted), str(calib)
    check_calibration_texts(texts, source)
    return texts[:wanted], source


def _read_calib(calib, task: str, columns: dict, limit: int) -> list:
    from nlpress.data.readers import read_data, read_text

    if not Path(calib).is_file():
        raise NlpressError(f"calibration file not found: {calib}; check the path")
    try:
        if task == "causal-lm":
            return [ln for ln in read_text(calib).splitlines() if ln.strip()][:limit]
        td = read_data(calib, limit=limit, **columns)
    except NlpressError as e:
        raise NlpressError(f"calibration file {calib}: {e}") from e
    return list(td.texts if task == "sentence-embedding" else td.inputs())


def _finalize_model(st: _State, recipe: Recipe) -> dict:
    from nlpress.models.task_module import model_input_names
    from nlpress.quantize.torch_io import save_dynamic_int8
    from nlpress.runtime.isa import built_on
    from nlpress.runtime.predictor import _max_len

    lm = st.lm
    meta = {
        "format_version": FORMAT_VERSION,
        "task": lm.task,
        "source_model": lm.name,
        "input_names": model_input_names(st.current(), lm.tokenizer),
        "pooling": lm.pooling,
        "normalize": lm.normalize,
        "id2label": lm.id2label,
        "max_length": _max_len(lm.model.config, lm.tokenizer),
        "recipe": recipe.name,
        "device": st.device,
        "built_on": built_on(),
    }
    if st.openvino is not None:
        from nlpress.export.openvino import finalize_ir

        st.current().config.save_pretrained(st.tmp)
        meta.update(finalize_ir(st, recipe.name))
    elif st.onnx is not None:
        st.onnx.rename(st.tmp / "model.onnx")
        st.current().config.save_pretrained(st.tmp)
        meta.update(
            backend="onnxruntime", model_file="model.onnx", name=f"onnxruntime-{recipe.name}"
        )
    elif st.torch_model is not None:
        if st.weights_format == "hf":
            st.torch_model.save_pretrained(st.tmp)  # safetensors, in the model's own dtype
        elif st.weights_format == "weight-only":
            from nlpress.quantize.woq_linear import save_weight_only

            save_weight_only(st.torch_model, st.quantized, st.tmp)
        elif st.weights_format == "bitmask":
            from nlpress.prune.sparse_io import save_sparse

            save_sparse(st.torch_model, st.tmp)
        else:
            save_dynamic_int8(st.torch_model, st.tmp)
        meta.update(
            backend="pytorch",
            model_file="model.safetensors",
            weights_format=st.weights_format,
            name=f"pytorch-{recipe.name}",
        )
    else:
        raise NlpressError(
            f"recipe {recipe.name!r} produced no model; add an export or quantize step"
        )
    lm.tokenizer.save_pretrained(st.tmp)
    write_json(st.tmp / META, meta)
    return meta


def compress(
    model: str | os.PathLike = "default",
    task: str | None = None,
    data: str | os.PathLike | None = None,
    recipe: str | os.PathLike | Recipe = "int8",
    out: str | os.PathLike = "out",
    *,
    overrides: list[str] | tuple[str, ...] = (),
    calib: str | os.PathLike | None = None,
    min_fidelity: float | None = None,
    force: bool = False,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = EVAL_LIMIT,
    bench: Any = None,
    memory: bool = True,
    progress: bool = True,
    trust_remote_code: bool = False,
    device: str = "cpu",
) -> Artifact:
    """Compress ``model`` with ``recipe`` into the artifact folder ``out`` and measure it.

    ``calib`` is a data file whose texts calibrate a ``quantize-static-int8`` step; without it
    the evaluation texts are used, and the step's info in metrics.json says so.
    ``min_fidelity`` turns on mixed precision in the recipe's int8 step (see
    :mod:`nlpress.quantize.mixed`).
    ``device`` "cuda" runs the baseline and the result on the GPU (:mod:`nlpress.runtime.device`).
    """
    from nlpress.models.loader import detect_task, load_model, read_config, resolve_model_path
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    out = Path(out)
    check_target(out.absolute(), force)
    rcp = load_recipe(recipe, overrides)
    if min_fidelity is not None:
        from nlpress.quantize.mixed import with_min_fidelity

        rcp = with_min_fidelity(rcp, min_fidelity)
    from nlpress.runtime.device import check_recipe_runtimes

    check_recipe_runtimes(rcp.steps, device)  # a missing GPU or OpenVINO fails here, not late
    # cheap checks first (model folder and config, then the data), the slow weight load last
    path = resolve_model_path(model)
    task = task or detect_task(path, read_config(path))
    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
    }
    _check_training(rcp, data, task)
    eval_data, bench_texts = _read_inputs(task, data, columns, limit)
    calib_texts, calib_source = _calibration_texts(rcp, task, calib, columns, bench_texts)
    _precheck_pruning(rcp, path, task)
    from nlpress.quantize.mixed import check_fidelity_texts

    check_fidelity_texts(rcp, bench_texts)
    lm = load_model(path, task, trust_remote_code=trust_remote_code)
    lm.name = "all-MiniLM-L6-v2 (default)" if str(model) == "default" else str(model)
    check_calibrated_steps(rcp, lm, calib_texts)
    weight_files = [f for f in lm.path.iterdir() if f.suffix in (".safetensors", ".bin")]
    baseline = torch_predictor_from_loaded(lm, "pytorch-fp32", weight_files)
    sample = baseline.tokenize(bench_texts[:8])
    t_start = time.perf_counter()
    with atomic_artifact(out, force) as tmp:
        st = _State(lm, tmp, sample, tokenize=baseline.tokenize)
        st.calib_texts, st.calib_source = calib_texts, calib_source
        st.fidelity_texts, st.progress = bench_texts, progress
        st.data, st.device = data, device
        for cfg in _progress(rcp.steps, progress):
            name = type(cfg).__name__
            t0 = time.perf_counter()
            log.info("step %s", name)
            info = HANDLERS[type(cfg)](st, cfg)
            st.steps.append(
                {
                    "name": _step_name(cfg),
                    "seconds": round(time.perf_counter() - t0, 2),
                    "info": info,
                }
            )
        _finalize_model(st, rcp)
        st.release_model()  # written to disk and read back below: no second copy while measuring
        (tmp / "recipe.yaml").write_text(rcp.to_yaml())
        from nlpress.runtime import load

        # no busy-waiting ORT threads: they would steal the cores from the PyTorch baseline
        # measured in the same process and flatter the ratio
        result = load(tmp, spin=False, device=device)
        baseline.to(device)
        if device != "cpu" and memory:
            log.info("peak memory is measured for CPU runs only; skipped on %s", device)
            memory = False
        metrics = _measure(
            baseline, result, lm, tmp, eval_data, bench_texts, bench, memory, progress
        )
        if st.pruning:  # pruning's own gain on the result's backend, beside the baseline's
            from nlpress.bench.harness import BenchConfig
            from nlpress.prune.steps import same_backend_speed

            cfg = bench or BenchConfig(progress=progress)
            st.pruning.update(same_backend_speed(st, rcp, result, bench_texts, cfg))
        metrics.update(
            version=1,
            task=lm.task,
            model=lm.name,
            recipe=rcp.name,
            steps=st.steps,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            data={"source": str(data) if data else "builtin", "n": _n(eval_data)},
            seconds=round(time.perf_counter() - t_start, 1),
        )
        if st.pruning:
            metrics["pruning"] = st.pruning
        from nlpress.bench.env import environment
        from nlpress.report import write_report

        env = environment()
        write_json(tmp / "env.json", env)
        metrics["env"] = env
        write_json(tmp / "metrics.json", metrics)
        write_report(tmp, metrics)
    return Artifact(out, metrics)


def _check_training(rcp: Recipe, data, task: str) -> None:
    from nlpress.prune.recover import check_training_steps

    check_training_steps(rcp.steps, data, task)


def _precheck_pruning(rcp: Recipe, path: Path, task: str) -> None:
    from nlpress.prune.steps import precheck

    precheck(rcp.steps, path, task)


def _n(eval_data) -> int:
    return len(eval_data) if not isinstance(eval_data, str) else len(eval_data.split())


def _step_name(cfg) -> str:
    from nlpress.recipe import STEP_NAMES

    return STEP_NAMES[type(cfg)]


def _progress(steps, enabled: bool):
    if not enabled:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="compress", unit="step")


def _measure(
    baseline, result, lm, tmp: Path, eval_data, bench_texts, bench, memory: bool, progress: bool
) -> dict:
    """Quality, fidelity, speed and memory of the baseline and the result, side by side."""
    from nlpress.bench.harness import BenchConfig, benchmark, ratios
    from nlpress.evaluate.task_eval import fidelity, quality

    cfg = bench or BenchConfig(progress=progress)
    log.info("evaluating")
    base_row: dict = {
        "name": baseline.name,
        "backend": baseline.backend,
        "quality": quality(baseline, eval_data, progress),
    }
    res_row: dict = {
        "name": result.name,
        "backend": result.backend,
        "quality": quality(result, eval_data, progress),
    }
    res_row["fidelity"] = fidelity(baseline, result, eval_data, progress)
    log.info("benchmarking")
    speed = benchmark({"baseline": baseline, "result": result}, bench_texts, cfg)
    base_row.update(speed["baseline"])
    res_row.update(speed["result"])
    metrics: dict = {
        "baseline": base_row,
        "result": res_row,
        "bench": {
            "threads": speed["result"]["threads"],
            "rounds": cfg.rounds,
            "ort_spinning": False,
            "batch_size": cfg.batch_size,
            "seq_len": cfg.seq_len or "data",
        },
    }
    metrics["ratios"] = ratios(speed, "baseline")["result"]
    if lm.task == "causal-lm":
        measure_lm_speed(baseline, result, eval_data, cfg, metrics)
    if cfg.seq_len is None and lm.task != "causal-lm":
        import dataclasses

        fixed = dataclasses.replace(cfg, seq_len=128)
        extra = benchmark({"baseline": baseline, "result": result}, bench_texts, fixed)
        metrics["extra_benchmarks"] = [
            {"seq_len": 128, **extra, "ratios": ratios(extra, "baseline")["result"]}
        ]
    if memory:
        from nlpress.bench.memory import peak_memory_mb

        seq = int(speed["result"]["seq_len"])
        for row, path in ((base_row, lm.path), (res_row, tmp)):
            mem = peak_memory_mb(
                str(path),
                cfg.batch_size,
                seq,
                [t if isinstance(t, str) else t[0] for t in bench_texts[: cfg.batch_size]],
            )
            row["peak_memory_mb"] = mem["model_peak_mb"]
            row["peak_rss_mb"] = mem["peak_rss_mb"]
    return metrics
