"""``select-backend``: build int8 candidates on several runtimes, keep the fastest faithful one.

Why measure instead of a rule: which runtime is fastest depends on the CPU, and not by a little.
On an AVX2-only Zen 3, OpenVINO ran MiniLM fp32 1.7x faster than ONNX Runtime, while ORT's
dynamic int8 beat OpenVINO's static int8 there, and ORT's int8 missed the fidelity bar that
OpenVINO's met (issue 13); on AVX-512 VNNI CPUs the order changes again. So the step builds every
candidate (ORT dynamic int8 as the ``int8`` recipe does; OpenVINO int8 by NNCF, static and
weight-only), measures each one's fidelity to the fp32 PyTorch model on the evaluation texts,
benchmarks them all in one interleaved run with the same harness as the report
(:mod:`nlpress.bench.harness`), and keeps the fastest that meets the bar. The step info (in
metrics.json and the report) holds every candidate's numbers, the winner, its margin over
the runner-up and the CPU's ISA, so the choice can be checked and reproduced.

One step with a ``candidates`` list, so a search can treat the backend as one more dimension:
``select-backend: {candidates: [openvino-int8]}`` is the single-backend point.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.recipe import OrtOptimizeConfig, SelectBackendConfig
from nlpress.runtime.device import isa_record

log = logging.getLogger(__name__)


def _common(lm, name: str) -> dict:
    from nlpress.models.task_module import model_input_names
    from nlpress.runtime.predictor import _max_len

    return dict(
        task=lm.task,
        tokenizer=lm.tokenizer,
        input_names=model_input_names(lm.model, lm.tokenizer),
        name=name,
        id2label=lm.id2label,
        max_length=_max_len(lm.model.config, lm.tokenizer),
    )


def _build_ort(st, cfg: SelectBackendConfig, folder: Path) -> tuple[list[Path], dict]:
    from nlpress.export.ort_optimize import ort_optimize
    from nlpress.quantize.dynamic import quantize_onnx_dynamic

    q = folder / "ort.int8.onnx"
    info = {"quantize": quantize_onnx_dynamic(st.onnx, q, cfg.onnxruntime)}
    dst = folder / "ort.onnx"
    info["optimize"] = ort_optimize(q, dst, st.current().config.to_dict(), OrtOptimizeConfig())
    q.unlink()
    return [dst], info


def _build_openvino(st, cfg: SelectBackendConfig, folder: Path, fp32, mode: str):
    from nlpress.export.openvino import save_ir
    from nlpress.quantize.openvino import calibration_samples, quantize_openvino

    qcfg = cfg.openvino.model_copy(update={"mode": mode})
    samples = None
    if mode == "static":
        names = [i.get_any_name() for i in fp32.inputs]
        samples = calibration_samples(st.calib_texts[: qcfg.num_samples], st.tokenize, names)
    q, info = quantize_openvino(fp32.clone(), qcfg, samples, st.progress)
    xml = folder / f"openvino-{mode}.xml"
    return save_ir(q, xml), info


def _predictor(kind: str, files: list[Path], common: dict):
    from nlpress.runtime.openvino import OpenVinoPredictor
    from nlpress.runtime.predictor import OrtPredictor

    if kind == "onnxruntime-int8":
        return OrtPredictor(files[0], spin=False, **common)
    return OpenVinoPredictor(files[0], **common)


def _fidelity(task: str, ref, new, texts: list) -> dict:
    from nlpress.evaluate.fidelity import embedding_fidelity, logits_fidelity
    from nlpress.evaluate.task_eval import _lm_fidelity

    if task == "sentence-embedding":
        return embedding_fidelity(ref.run(texts), new.run(texts))
    if task == "text-classification":
        return logits_fidelity(ref.run(texts), new.run(texts))
    return _lm_fidelity(ref, new, "\n".join(str(t) for t in texts))


def meets_bar(task: str, fid: dict, cfg: SelectBackendConfig) -> bool:
    """Whether fidelity ``fid`` meets the step's bar for ``task``."""
    if task == "sentence-embedding":
        return fid["cosine_mean"] >= cfg.min_cosine_mean and fid["cosine_min"] >= cfg.min_cosine_min
    return fid["top1_agreement"] >= cfg.min_top1_agreement


def _faithfulness(task: str, fid: dict) -> tuple:
    if task == "sentence-embedding":
        return (fid["cosine_mean"], fid["cosine_min"])
    return (fid["top1_agreement"], -fid["kl_mean"])


def choose(task: str, rows: dict[str, dict], cfg: SelectBackendConfig) -> tuple[str, bool]:
    """(winner, whether it met the bar): the fastest passing row, else the most faithful one.

    ``rows`` maps candidate names to dicts with ``fidelity`` and ``throughput``; a pure function,
    so the rule is tested without building models."""
    passing = [n for n, r in rows.items() if meets_bar(task, r["fidelity"], cfg)]
    if passing:
        return max(passing, key=lambda n: rows[n]["throughput"]), True
    if cfg.if_none_pass == "error":
        raise NlpressError(
            "select-backend: no candidate meets the fidelity bar ("
            + "; ".join(f"{n}: {_fid_text(r['fidelity'])}" for n, r in rows.items())
            + "); lower the bar or set if_none_pass: most-faithful"
        )
    best = max(rows, key=lambda n: _faithfulness(task, rows[n]["fidelity"]))
    log.warning(
        "select-backend: no candidate meets the fidelity bar; keeping %s, the most faithful", best
    )
    return best, False


def _fid_text(fid: dict) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in fid.items())


def step_select_backend(st, cfg: SelectBackendConfig) -> dict:
    """Build, measure and choose; leaves the winner as ``st.onnx`` or ``st.openvino``."""
    from nlpress.bench.harness import BenchConfig, benchmark
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    folder = st.tmp / "candidates"
    folder.mkdir(exist_ok=True)
    lm = dataclasses.replace(st.lm, model=st.current())
    files, build = {}, {}
    fp32 = None
    for kind in cfg.candidates:
        log.info("select-backend: building %s", kind)
        if kind == "onnxruntime-int8":
            files[kind], build[kind] = _build_ort(st, cfg, folder)
            continue
        if fp32 is None:
            from nlpress.export.openvino import convert_from_torch
            from nlpress.models.task_module import TaskModule, model_input_names

            names = model_input_names(lm.model, lm.tokenizer)
            module = TaskModule(lm.model, lm.task, names, lm.pooling, lm.normalize).eval()
            fp32 = convert_from_torch(module, st.sample, names)
        mode = "weights" if kind == "openvino-int8-weights" else "static"
        files[kind], build[kind] = _build_openvino(st, cfg, folder, fp32, mode)
    del fp32
    preds = {k: _predictor(k, files[k], _common(st.lm, k)) for k in cfg.candidates}
    ref = torch_predictor_from_loaded(st.lm, "pytorch-fp32", [])
    texts = list(st.fidelity_texts[: cfg.fidelity_samples])
    rows = {k: {"fidelity": _fidelity(st.lm.task, ref, p, texts)} for k, p in preds.items()}
    bench_cfg = BenchConfig(
        batch_size=cfg.batch_size, seq_len=cfg.seq_len, rounds=cfg.rounds, progress=st.progress
    )
    speed = benchmark(preds, list(st.fidelity_texts), bench_cfg)
    for k, r in rows.items():
        r.update(
            throughput=speed[k]["throughput"],
            throughput_spread=speed[k]["throughput_spread"],
            latency_p50_ms=speed[k]["latency_p50_ms"],
            size_bytes=speed[k]["size_bytes"],
            meets_bar=meets_bar(st.lm.task, r["fidelity"], cfg),
            build=build[k],
        )
    winner, met = choose(st.lm.task, rows, cfg)
    del preds, ref
    _keep(st, winner, files, build, folder)
    return _info(st.lm.task, rows, winner, met, cfg, speed[winner])


def _keep(st, winner: str, files: dict[str, list[Path]], build: dict, folder: Path) -> None:
    """The winner's files become the state's model; the plain export and the rest are removed."""
    if winner == "onnxruntime-int8":
        st.onnx.unlink()
        st.onnx = files[winner][0].rename(st.tmp / "model.select.onnx")
    else:
        if st.onnx is not None:
            st.onnx.unlink()
            st.onnx = None
        xml = files[winner][0]
        xml.with_suffix(".bin").rename(st.tmp / "model.select.bin")
        st.openvino = xml.rename(st.tmp / "model.select.xml")
        st.openvino_meta = {"precision": "f32"}
        if "overflow_fix" in build[winner]:
            st.openvino_meta["overflow_fix"] = build[winner]["overflow_fix"]
    shutil.rmtree(folder, ignore_errors=True)


def _info(task, rows, winner, met, cfg, speed) -> dict:
    others = {k: r for k, r in rows.items() if k != winner}
    margin = {k: rows[winner]["throughput"] / r["throughput"] for k, r in others.items()}
    bar = (
        {"cosine_mean": cfg.min_cosine_mean, "cosine_min": cfg.min_cosine_min}
        if task == "sentence-embedding"
        else {"top1_agreement": cfg.min_top1_agreement}
    )
    info = {
        "winner": winner,
        "met_bar": met,
        "bar": bar,
        "speedup_vs": {k: round(v, 3) for k, v in margin.items()},
        "isa": isa_record(),  # the CPU the choice holds for
        "threads": speed["threads"],
        "bench": {
            "rounds": cfg.rounds,
            "batch_size": cfg.batch_size,
            "seq_len": cfg.seq_len or "data",
            "mean_seq_len": speed["seq_len"],
        },
        "candidates": rows,
    }
    runner_up = max(others, key=lambda k: others[k]["throughput"], default=None)
    log.info(
        "select-backend: %s kept (%.1f seq/s%s) on %s",
        winner,
        rows[winner]["throughput"],
        f", {margin[runner_up]:.2f}x {runner_up}" if runner_up else "",
        info["isa"]["int8_kernel"],
    )
    return info
