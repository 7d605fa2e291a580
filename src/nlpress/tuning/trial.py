"""One trial of ``nlpress tune``: recipe -> built candidate -> measured on the search split.

The recipe is written first (``trials/0007/recipe.yaml``), so even a trial that fails can be
reproduced with ``nlpress compress``. The candidate is built by the shared
:class:`~nlpress.session.Session` (model, data and baseline loaded once), then measured in order
of cost: a fidelity proxy on a small subset (a hopeless candidate stops here, as a pruned
trial), quality on the search split, and speed in one interleaved run beside the baseline.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nlpress.artifact import write_json
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

PROXY_ROWS = 64  # rows of the search split the early-stop proxy looks at
# a candidate whose infidelity on the proxy rows, in points (see infidelity_points), exceeds
# HOPELESS_FACTOR x the budget + HOPELESS_MARGIN cannot meet the budget on the whole split:
# disagreement bounds the metric's change only loosely, hence the wide margin
HOPELESS_FACTOR = 3.0
HOPELESS_MARGIN = 5.0
LOWER_IS_BETTER = {"perplexity"}


class Hopeless(Exception):
    """The fidelity proxy says this candidate cannot meet the budget: stop it early."""


def hopeless_limit(goal: Goal) -> float:
    """Infidelity points (see :func:`infidelity_points`) above which a candidate is stopped."""
    return HOPELESS_FACTOR * goal.max_drop + HOPELESS_MARGIN


class TrainingWatch:
    """The fidelity proxy taken *while* a trial trains (a student's distillation, a pruned
    model's recovery), so that a hopeless one stops a third or two thirds of the way in, not
    after the whole run: an STS-B trial once trained 20 minutes before the proxy taken on the
    finished model stopped it.

    A model in training is not the finished one, so the rule is optimistic on its behalf. The
    proxy is taken after the first step (nearly the untrained start), then at 1/3 and 2/3 of the
    steps. At each of these, the improvement per step since the start is extrapolated linearly
    to the last step, from the best point the run has reached so far. A training curve flattens
    as it goes, and the learning rate decays linearly after its 6% warm-up (the last two thirds
    run at about half the first third's mean rate), so that average slope overstates what the
    remaining steps will gain. The trial stops only when even that projection stays above
    :func:`hopeless_limit`. A quantization step after the training only adds infidelity, and
    the final proxy after the build still applies.

    Why from the best point, not the latest: a recovery's curve can rise before it falls. On
    SST-2, FFN -25% > recover read 6.2 points at its first step and 10.9 at step 100 of 300,
    near the learning rate's peak (64 proxy rows: 7 of them disagreeing), and was stopped
    against the limit of 8; the same recipe, trained to the end in the run before, finished at
    3.1 points and lost 0.00 accuracy points. A run that has been within reach once is not
    stopped for a worse point in the middle.

    ``watch(total_steps)`` is the :attr:`nlpress.state.State.train_watch` factory, called once
    per training step of the recipe (a student, then a recovery, are two runs, each measured
    from its own start); the callback it returns records ``self.points`` as (step, infidelity)
    rows of all of them.
    """

    FRACTIONS = (1 / 3, 2 / 3)

    def __init__(self, session, proxy_data, limit: float) -> None:
        self.session, self.proxy_data, self.limit = session, proxy_data, limit
        self.points: list[tuple[int, float]] = []

    def __call__(self, total: int):
        checks = {1} | {round(total * f) for f in self.FRACTIONS if round(total * f) > 1}
        checks.discard(total)  # the finished model gets the proxy after the build
        run: list[tuple[int, float]] = []  # this training run's own points

        def watch(model, step: int) -> None:
            if step in checks:
                self._check(model, step, total, run)

        return watch

    def _check(self, model, step: int, total: int, run: list) -> None:
        from nlpress.evaluate.task_eval import fidelity
        from nlpress.runtime.predictor import torch_predictor_from_loaded

        s = self.session
        was_training = model.training
        try:
            pred = torch_predictor_from_loaded(s.lm, "in training", [], model=model)
            bad = infidelity_points(fidelity(s.baseline, pred, self.proxy_data))
        finally:
            model.train(was_training)
        run.append((step, bad))
        self.points.append((step, bad))
        first_step, first = run[0]
        if step == first_step:
            return
        gain = max(first - bad, 0.0) / (step - first_step)  # points per step so far
        projected = min(b for _, b in run) - gain * (total - step)
        log.info(
            "proxy at step %d/%d: infidelity %.1f points, projected %.1f at the end",
            step, total, bad, projected,
        )  # fmt: skip
        if projected > self.limit:
            raise Hopeless(
                f"infidelity {bad:.1f} points on {_n(self.proxy_data)} proxy rows at training "
                f"step {step} of {total} (projected {projected:.1f} at the end, started at "
                f"{first:.1f}): cannot meet the budget"
            )


@dataclass
class Goal:
    metric: str
    max_drop: float
    objective: str  # throughput | latency | size
    rounds: int


def drop_points(metric: str, base: dict, cand: dict) -> float:
    """How much worse the candidate is, in the metric's points (accuracy/Spearman: x100)."""
    if metric not in cand or metric not in base:
        raise NlpressError(f"the candidate has no {metric!r}; the data may lack labels or scores")
    b, c = float(base[metric]), float(cand[metric])
    return c - b if metric in LOWER_IS_BETTER else b - c


FIDELITY_KEYS = ("top1_agreement", "similarity_spearman", "cosine_mean")
# what the proxy measures, as a version: a stop mark left by another measure does not apply
# (1: the mean cosine for STS embeddings, which stopped students that were within the budget)
PROXY_VERSION = 2
FIDELITY_LABELS = {
    "top1_agreement": "top-1 agreement with the fp32 model",
    "similarity_spearman": "Spearman agreement of the pairs' similarities with the fp32 model's",
    "cosine_mean": "mean cosine to the fp32 model's embeddings",
}


def fidelity_measure(fid: dict) -> tuple[str, float] | None:
    """(key, value) of the fidelity that tune compares: top-1 agreement for classifiers and LMs;
    for embeddings measured on STS pairs, the Spearman agreement of the pairs' similarities,
    else the mean cosine."""
    key = next((k for k in FIDELITY_KEYS if fid.get(k) is not None), None)
    return None if key is None else (key, float(fid[key]))


def infidelity_points(fid: dict) -> float:
    """100 x (1 - :func:`fidelity_measure`).

    Why not the mean cosine for STS: measured on MiniLM and the first 1,500 STS-B pairs, it
    read 21-29 points for 3- and 4-layer students that lost only 2.0-3.3 Spearman points, so a
    budget of 1 point stopped every student as hopeless before it trained. The pair-similarity
    agreement on 64 pairs read 4.9-6.0 points for those students and 0.3 for int8 (0.04 lost).
    """
    m = fidelity_measure(fid)
    return 100.0 * (1.0 - m[1]) if m is not None else 0.0


def objective_value(goal: Goal, ratios: dict, size_mb: float) -> float:
    if goal.objective == "size":
        return size_mb
    key = "throughput_speedup" if goal.objective == "throughput" else "latency_speedup"
    return float(ratios[key])


def bench_config(rounds: int):
    """A trial's benchmark: ``rounds`` interleaved rounds; one round is a quick look (fewer
    calls per round too), good enough to rank candidates whose speeds differ by tens of %."""
    from nlpress.bench.harness import BenchConfig

    if rounds >= 3:
        return BenchConfig(rounds=rounds, progress=False)
    return BenchConfig(rounds=rounds, latency_samples=5, throughput_batches=1, progress=False)


def run_trial(session, prep, folder: Path, goal: Goal, proxy_data, cache) -> dict:
    """Build and measure one candidate into ``folder/model``; the trial's metrics."""
    from nlpress.artifact import atomic_artifact
    from nlpress.bench.harness import benchmark, ratios
    from nlpress.evaluate.task_eval import fidelity, quality
    from nlpress.runtime import load
    from nlpress.session import bench_record

    t0 = time.perf_counter()
    model_dir = folder / "model"
    shutil.rmtree(model_dir, ignore_errors=True)  # what an interrupted try left
    limit = hopeless_limit(goal)
    steps = list(prep.recipe.steps)
    why = cache.stopped(steps, limit) if cache is not None else None
    if why is not None:  # its training is seeded: it would stop where the earlier one did
        raise Hopeless(f"{why} (the same training as an earlier trial, not run again)")
    watch = TrainingWatch(session, proxy_data, limit)
    try:
        with atomic_artifact(model_dir, force=True) as tmp:
            st = session.build(prep, tmp, cache, watch)
    except Hopeless as e:
        if cache is not None:
            cache.mark_stopped(steps[: session.building + 1], limit, str(e))
        raise
    build_s = time.perf_counter() - t0
    pred = load(model_dir, spin=False)
    base = session.baseline
    proxy = fidelity(base, pred, proxy_data)
    bad = infidelity_points(proxy)
    if bad > limit:
        raise Hopeless(
            f"infidelity {bad:.1f} points on {_n(proxy_data)} proxy rows: cannot meet "
            f"--max-drop {goal.max_drop}"
        )
    data = session.eval_data
    q = quality(pred, data)
    base_q = session.baseline_quality()
    drop = drop_points(goal.metric, base_q, q)
    fid = fidelity(base, pred, data)
    cfg = bench_config(goal.rounds)
    speed = benchmark({"baseline": base, "candidate": pred}, session.bench_texts, cfg)
    r = ratios(speed, "baseline")["candidate"]
    size_mb = speed["candidate"]["size_bytes"] / 1e6
    metrics = {
        "version": 1,
        "task": session.task,
        "model": session.name,
        "recipe": prep.recipe.name,
        "steps": st.steps,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "data": {"source": str(session.data), "split": "search", "n": _n(data)},
        "baseline": {"name": base.name, "backend": base.backend, "quality": base_q}
        | speed["baseline"],
        "result": {"name": pred.name, "backend": pred.backend, "quality": q, "fidelity": fid}
        | speed["candidate"],
        "bench": bench_record(cfg, speed["candidate"]["threads"]),
        "ratios": r,
        "seconds": round(time.perf_counter() - t0, 1),
        "tune": {
            "metric": goal.metric,
            "drop": drop,
            "proxy_infidelity": bad,
            "proxy_in_training": watch.points,
            "size_mb": size_mb,
            "build_seconds": round(build_s, 1),
            "objective": goal.objective,
            "value": objective_value(goal, r, size_mb),
        },
    }
    if st.pruning:
        metrics["pruning"] = st.pruning
    write_json(folder / "metrics.json", metrics)
    return metrics


def _n(d) -> int:
    return len(d) if not isinstance(d, str) else len(d.split())


def write_best(out: Path, trial_dir: Path, metrics: dict, extra: dict) -> None:
    """Replace ``out/best`` atomically with the trial's model, metrics and report."""
    from nlpress.artifact import atomic_artifact
    from nlpress.bench.env import environment
    from nlpress.report import write_report

    with atomic_artifact(out / "best", force=True) as tmp:
        shutil.copytree(trial_dir / "model", tmp, dirs_exist_ok=True)
        env = environment()
        m = {**metrics, **extra, "env": env}
        write_json(tmp / "env.json", env)
        write_json(tmp / "metrics.json", m)
        write_report(tmp, m)


def trial_row(t: Any) -> dict:
    """A finished Optuna trial as the report's row."""
    a = t.user_attrs
    return {
        "number": t.number,
        "key": a.get("key"),
        "state": t.state.name.lower(),
        "recipe": a.get("recipe_text", ""),
        "recipe_name": a.get("recipe_name", ""),
        "drop": a.get("drop"),
        "feasible": a.get("feasible", False),
        "value": a.get("value"),
        "quality": a.get("quality"),
        "fidelity": a.get("fidelity"),
        "fidelity_kind": a.get("fidelity_kind"),
        "throughput_speedup": a.get("throughput_speedup"),
        "latency_speedup": a.get("latency_speedup"),
        "size_mb": a.get("size_mb"),
        "seconds": a.get("seconds"),
        "status": a.get("status", t.state.name.lower()),
        "duplicate_of": a.get("duplicate_of"),
        "retry_of": a.get("retry_of"),
        "worker": a.get("worker"),
    }
