"""A compression session: the model, data, tokenizer and fp32 baseline loaded once, then any
number of candidates built from recipes and measured against that same baseline.

``compress()`` is a session with one recipe; ``nlpress tune`` is a session with many. Order
matters for the user: everything that can be checked cheaply (recipe, model folder and config,
data, calibration texts; every step's ``check``) is checked before the weights load, and nothing
is written outside a temporary folder until the end (:func:`nlpress.artifact.atomic_artifact`).
The baseline, the original model in PyTorch fp32, is evaluated once per data set (its quality is
deterministic) and benchmarked in the same interleaved run as every candidate, so the speed
ratios are measured side by side on the same (noisy) machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nlpress.artifact import Artifact, atomic_artifact, check_target, write_json
from nlpress.recipe import PRUNE_STEPS, Recipe, RecoverConfig, load_recipe
from nlpress.state import CheckContext, State

log = logging.getLogger(__name__)

EVAL_LIMIT = 2000  # rows evaluated by default: enough for stable metrics, minutes not hours


@dataclass
class Prepared:
    """A recipe that passed every cheap check, with its calibration texts."""

    recipe: Recipe
    calib_texts: list
    calib_source: str


class Session:
    """Load once, build and measure many. Construction does only the cheap work (model folder,
    task, data); the weights and the baseline load on the first :meth:`build`."""

    def __init__(
        self,
        model: str | os.PathLike = "default",
        task: str | None = None,
        data: str | os.PathLike | None = None,
        *,
        calib: str | os.PathLike | None = None,
        columns: dict | None = None,
        limit: int | None = EVAL_LIMIT,
        bench: Any = None,
        memory: bool = True,
        progress: bool = True,
        trust_remote_code: bool = False,
        train_data: str | os.PathLike | None = None,
        eval_data: Any = None,
        device: str = "cpu",
    ) -> None:
        from nlpress.models.loader import detect_task, read_config, resolve_model_path

        self.path = resolve_model_path(model)
        self.task = task or detect_task(self.path, read_config(self.path))
        self.name = "all-MiniLM-L6-v2 (default)" if str(model) == "default" else str(model)
        self.data, self.train_data, self.calib = data, train_data, calib
        self.columns = columns or {
            "text_column": None,
            "text_pair_column": None,
            "label_column": None,
        }
        self.bench, self.memory, self.progress = bench, memory, progress
        self.trust_remote_code = trust_remote_code
        self.device = device
        if device != "cpu" and memory:
            log.info("peak memory is measured for CPU runs only; skipped on %s", device)
            self.memory = False
        if eval_data is None:
            eval_data = _read_eval(self.task, data, self.columns, limit)
        self.eval_data = eval_data
        self.bench_texts = _bench_texts(self.task, eval_data)
        self.lm: Any = None
        self.baseline: Any = None
        self._base: dict = {}  # id(data) -> the baseline's quality on it (computed once)
        self._base_memory: dict | None = None
        from nlpress.bench.stages import StageLog

        # seconds and peak RSS of each stage of the candidate being built (the first one's
        # includes loading the model): metrics.json's "stages", printed by the CLI
        self.stages, self._built = StageLog(), False
        self.building = 0  # index of the recipe step that build() is applying

    # -- cheap ---------------------------------------------------------------------------------
    def check(
        self, recipe: str | os.PathLike | Recipe, overrides=(), min_fidelity: float | None = None
    ) -> Prepared:
        """Resolve ``recipe`` and run every step's cheap check; nothing loads."""
        from nlpress.calib.texts import calibration_texts
        from nlpress.runtime.device import check_recipe_runtimes
        from nlpress.steps import check_recipe

        rcp = load_recipe(recipe, overrides)
        if min_fidelity is not None:
            from nlpress.quantize.mixed import with_min_fidelity

            rcp = with_min_fidelity(rcp, min_fidelity)
        check_recipe_runtimes(rcp.steps, self.device)  # a missing GPU or OpenVINO fails here
        texts, source = calibration_texts(
            rcp, self.task, self.calib, self.columns, self.bench_texts
        )
        ctx = CheckContext(
            self.path,
            self.task,
            data=self.data,
            train_data=self.train_data,
            calib_texts=texts,
            fidelity_texts=self.bench_texts,
            trust_remote_code=self.trust_remote_code,
        )
        check_recipe(rcp, ctx)
        return Prepared(rcp, texts, source)

    # -- loaded once ---------------------------------------------------------------------------
    def load(self) -> None:
        if self.lm is not None:
            return
        from nlpress.models.loader import load_model
        from nlpress.runtime.predictor import torch_predictor_from_loaded

        with self.stages.stage("load model"):
            lm = load_model(self.path, self.task, trust_remote_code=self.trust_remote_code)
        lm.name = self.name
        weight_files = [f for f in lm.path.iterdir() if f.suffix in (".safetensors", ".bin")]
        self.lm = lm
        self.baseline = torch_predictor_from_loaded(lm, "pytorch-fp32", weight_files)
        self.sample = self.baseline.tokenize(self.bench_texts[:8])
        self.baseline.to(self.device)

    def baseline_quality(self, data: Any = None) -> dict:
        from nlpress.evaluate.task_eval import quality

        data = self.eval_data if data is None else data
        if id(data) not in self._base:
            self._base[id(data)] = (data, quality(self.baseline, data, self.progress))
        return self._base[id(data)][1]

    # -- per candidate -------------------------------------------------------------------------
    def build(self, prep: Prepared, tmp: Path, cache: Any = None, watch: Any = None) -> State:
        """Run ``prep``'s steps into ``tmp`` and save the model there (no metrics yet).

        ``cache`` (optional, :class:`nlpress.tuning.cache.PrefixCache`) restores the longest
        trained prefix of the recipe built before and stores new ones.
        """
        from nlpress.bench.stages import StageLog
        from nlpress.finalize import finalize_model
        from nlpress.steps import apply_step, step_name

        if self._built:  # a later candidate: its own stages (the model is loaded already)
            self.stages = StageLog()
        self._built = True
        self.load()
        st = State(self.lm, tmp, self.sample, tokenize=self.baseline.tokenize)
        st.calib_texts, st.calib_source = prep.calib_texts, prep.calib_source
        st.fidelity_texts, st.progress = self.bench_texts, self.progress
        st.data, st.train_data, st.device = self.data, self.train_data, self.device
        st.train_watch = watch
        steps = list(prep.recipe.steps)
        start = cache.restore(st, steps) if cache is not None else 0
        for k, cfg in enumerate(_progress(steps[start:], self.progress), start):
            self.building = k  # the step being applied: tune marks a prefix stopped in training
            t0 = time.perf_counter()
            log.info("step %s", type(cfg).__name__)
            with self.stages.stage(f"step {step_name(cfg)}"):
                info = apply_step(st, cfg)
            st.steps.append(
                {
                    "name": step_name(cfg),
                    "seconds": round(time.perf_counter() - t0, 2),
                    "info": info,
                }
            )
            if cache is not None:
                cache.store(st, steps[: k + 1])
        with self.stages.stage("save model"):
            finalize_model(st, prep.recipe)
        st.release_model()  # written to disk and read back to measure: no second copy resident
        (tmp / "recipe.yaml").write_text(prep.recipe.to_yaml())
        return st

    def measure(self, st: State, prep: Prepared, t_start: float) -> dict:
        """compress's metrics of the candidate built in ``st.tmp``, written there with its
        report (quality, fidelity, speed and memory beside the baseline)."""
        from nlpress.runtime import load

        tmp, rcp = st.tmp, prep.recipe
        # no busy-waiting ORT threads: they would steal the cores from the PyTorch baseline
        # measured in the same process and flatter the ratio
        with self.stages.stage("load result"):  # its peak counts too
            result = load(tmp, spin=False, device=self.device)
        metrics = self._measure(result, tmp)
        summary = self.stages.summary()
        metrics["stages"], metrics["peak_rss_mb"] = summary["stages"], summary["peak_rss_mb"]
        if st.pruning:  # pruning's own gain on the result's backend, beside the baseline's
            from nlpress.bench.harness import BenchConfig

            cfg = self.bench or BenchConfig(progress=self.progress)
            st.pruning.update(same_backend_speed(st, rcp, result, self.bench_texts, cfg))
        metrics.update(
            version=1,
            task=self.lm.task,
            model=self.lm.name,
            recipe=rcp.name,
            steps=st.steps,
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            data={"source": str(self.data) if self.data else "builtin", "n": _n(self.eval_data)},
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
        return metrics

    def compress(self, prep: Prepared, out: Path, force: bool = False) -> Artifact:
        """Build, measure and write one artifact at ``out`` (atomically)."""
        self.load()
        t_start = time.perf_counter()
        with atomic_artifact(out, force) as tmp:
            st = self.build(prep, tmp)
            metrics = self.measure(st, prep, t_start)
            from nlpress.hub import prepare_for_hub

            # README.md model card, sentence-transformers files
            prepare_for_hub(tmp, self.lm.path, Path(out).name)
        return Artifact(out, metrics)

    def _measure(self, result, tmp: Path) -> dict:
        """Quality, fidelity, speed and memory of the baseline and the result, side by side."""
        from nlpress.bench.harness import BenchConfig, benchmark, ratios
        from nlpress.bench.stages import bounded_heap
        from nlpress.evaluate.task_eval import fidelity, quality

        baseline, lm, eval_data = self.baseline, self.lm, self.eval_data
        bench_texts, progress = self.bench_texts, self.progress
        cfg = self.bench or BenchConfig(progress=progress)
        log.info("evaluating")
        # a causal LM's 2,048-token windows: large temporaries that glibc's heap would keep
        # resident from one window to the next (see bounded_heap)
        heap = bounded_heap() if lm.task == "causal-lm" else contextlib.nullcontext()
        with self.stages.stage("evaluate"), heap:
            base_row: dict = {
                "name": baseline.name,
                "backend": baseline.backend,
                "quality": self.baseline_quality(),
            }
            res_row: dict = {
                "name": result.name,
                "backend": result.backend,
                "quality": quality(result, eval_data, progress),
            }
            res_row["fidelity"] = fidelity(baseline, result, eval_data, progress)
        log.info("benchmarking")
        with self.stages.stage("benchmark"):
            speed = benchmark({"baseline": baseline, "result": result}, bench_texts, cfg)
        base_row.update(speed["baseline"])
        res_row.update(speed["result"])
        metrics: dict = {
            "baseline": base_row,
            "result": res_row,
            "bench": bench_record(cfg, speed["result"]["threads"]),
        }
        metrics["ratios"] = ratios(speed, "baseline")["result"]
        if lm.task == "causal-lm":
            from nlpress.calib.pipeline_steps import measure_lm_speed

            with self.stages.stage("benchmark decode"):
                measure_lm_speed(baseline, result, eval_data, cfg, metrics)
        if cfg.seq_len is None and lm.task != "causal-lm":
            import dataclasses

            fixed = dataclasses.replace(cfg, seq_len=128)
            with self.stages.stage("benchmark 128 tokens"):
                extra = benchmark({"baseline": baseline, "result": result}, bench_texts, fixed)
            metrics["extra_benchmarks"] = [
                {"seq_len": 128, **extra, "ratios": ratios(extra, "baseline")["result"]}
            ]
        if self.memory:
            from nlpress.bench.memory import peak_memory_mb

            seq = int(speed["result"]["seq_len"])
            texts = [t if isinstance(t, str) else t[0] for t in bench_texts[: cfg.batch_size]]
            for row, path in ((base_row, lm.path), (res_row, tmp)):
                with self.stages.stage("memory probe"):  # its own process: not in this RSS
                    mem = peak_memory_mb(str(path), cfg.batch_size, seq, texts)
                row["peak_memory_mb"] = mem["model_peak_mb"]
                row["peak_rss_mb"] = mem["peak_rss_mb"]
        return metrics


def same_backend_speed(st: State, recipe: Recipe, result: Any, texts: list, bench_cfg: Any) -> dict:
    """Speed of the result against the *unpruned* model taken through the recipe's other steps.

    The baseline is PyTorch fp32; when pruning is chained with export or quantization, that
    comparison mixes the pruning gain with the backend's. So the original model is run through
    the same non-pruning steps into a scratch folder, and benchmarked against the result in one
    interleaved run: what pruning adds on that backend, measured. Returns {} when the recipe has
    no other steps (the baseline already is that reference).
    """
    import shutil

    from nlpress.bench.harness import benchmark, ratios
    from nlpress.finalize import finalize_model
    from nlpress.runtime import load
    from nlpress.steps import apply_step

    # recover trains the pruned model: not a step the unpruned one takes
    rest = tuple(s for s in recipe.steps if not isinstance(s, (*PRUNE_STEPS, RecoverConfig)))
    if not rest:
        return {}
    scratch = st.tmp / ".unpruned"
    scratch.mkdir()
    try:
        ref = State(st.lm, scratch, st.sample, tokenize=st.tokenize)
        ref.calib_texts, ref.calib_source = st.calib_texts, st.calib_source
        for cfg in rest:
            apply_step(ref, cfg)
        finalize_model(ref, Recipe(name=f"{recipe.name}-unpruned", steps=rest))
        unpruned = load(scratch, spin=False)
        log.info("benchmarking against the unpruned model on %s", unpruned.backend)
        speed = benchmark({"unpruned": unpruned, "result": result}, texts, bench_cfg)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return {
        "same_backend": {
            "backend": unpruned.backend,
            "unpruned": speed["unpruned"],
            "result": speed["result"],
            "ratios": ratios(speed, "unpruned")["result"],
        }
    }


def _read_eval(task: str, data, columns: dict, limit: int | None):
    from nlpress.evaluate.api import load_eval_data

    return load_eval_data(task, data, limit, columns)


def bench_record(cfg, threads: int) -> dict:
    """metrics.json's "bench": how a candidate and its baseline were benchmarked."""
    return {
        "threads": threads,
        "rounds": cfg.rounds,
        "ort_spinning": False,  # measured with idle ORT threads asleep, beside PyTorch
        "batch_size": cfg.batch_size,
        "seq_len": cfg.seq_len or "data",
    }


def _bench_texts(task: str, eval_data) -> list:
    from nlpress.evaluate.api import bench_texts

    return bench_texts(task, eval_data)


def _n(eval_data) -> int:
    return len(eval_data) if not isinstance(eval_data, str) else len(eval_data.split())


def _progress(steps, enabled: bool):
    if not enabled:
        return steps
    from tqdm.auto import tqdm

    return tqdm(steps, desc="compress", unit="step")


def compress_one(out: Path, force: bool, session_kw: dict, recipe, overrides, min_fidelity):
    """``compress()``'s body: a session with one recipe."""
    out = Path(out)
    check_target(out.absolute(), force)
    rcp = load_recipe(recipe, overrides)  # a typo in the recipe fails before the model is read
    session = Session(**session_kw)
    prep = session.check(rcp, min_fidelity=min_fidelity)
    return session.compress(prep, out, force)
