"""The search loop of ``nlpress tune`` (one worker) and its end: front, held-out, report."""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
import traceback
from pathlib import Path
from typing import Any

from nlpress.artifact import write_json
from nlpress.errors import NlpressError
from nlpress.tuning import front as F
from nlpress.tuning import study as S
from nlpress.tuning.trial import Goal, Hopeless, run_trial, trial_row, write_best

log = logging.getLogger(__name__)

DUPLICATE_LIMIT = 30
ERRORS_IN_A_ROW = 3


class Search:
    def __init__(
        self, session, space, storage, name: str, out: Path, goal_kw: dict, seed: int, train
    ) -> None:
        from nlpress.tuning.cache import PrefixCache

        self.session, self.space, self.out, self.seed = session, space, out, seed
        self.goal = Goal(**goal_kw)
        directions = ["minimize", "minimize" if self.goal.objective == "size" else "maximize"]
        self.study, created = S.open_study(storage, name, directions)
        if created:
            from nlpress.tuning.space import seeds

            for p in seeds(space):
                self.study.enqueue_trial(p, user_attrs={"seed": True})
        self.cache = PrefixCache(out / "cache", session.path, train)
        self.t_start = time.time()

    # -- bookkeeping ---------------------------------------------------------------------------
    def _running(self) -> list:
        from optuna.trial import TrialState

        return self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))

    def _finished(self) -> list:
        from optuna.trial import TrialState

        states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=states)
            if t.user_attrs.get("done")
        ]

    def run(self, seconds: float | None, trials: int | None, progress: bool) -> None:
        bar = _bar(trials, seconds, progress)
        t0, dups, errors = time.monotonic(), 0, 0
        try:
            while True:
                done = self._finished()
                real = [t for t in done if t.user_attrs.get("duplicate_of") is None]
                if bar is not None:
                    bar.n = len(real) if trials else min(int(time.monotonic() - t0), bar.total)
                    bar.set_postfix_str(self._best_text(done))
                    bar.refresh()
                if trials is not None and len(real) >= trials:
                    break
                if seconds is not None and time.monotonic() - t0 >= seconds:
                    break
                if dups >= DUPLICATE_LIMIT:
                    log.warning("the search space is exhausted: %d proposals repeated", dups)
                    break
                S.requeue_interrupted(self.study)
                # alone, the proposal depends on the finished trials only; beside workers that
                # are computing trials, it is offset by their count so two workers asking at
                # once do not propose the same recipe
                busy = len(self._running())
                last = max(done, key=lambda t: t.number, default=None)
                repeated = last is not None and last.user_attrs.get("duplicate_of") is not None
                self.study.sampler = S.make_sampler(self.seed + 7919 * busy, len(done), repeated)
                trial = self.study.ask()
                kind = self._one(trial, done)
                dups = dups + 1 if kind == "duplicate" else 0
                errors = errors + 1 if kind == "error" else 0
                if errors >= ERRORS_IN_A_ROW:
                    raise NlpressError(
                        f"{errors} trials in a row failed unexpectedly; see the log above "
                        f"and {self.out}/trials/*/error.txt"
                    )
        finally:
            if bar is not None:
                bar.close()

    def _best_text(self, done: list) -> str:
        rows = [trial_row(t) for t in done]
        best = F.choose(F.pareto(rows, self.goal.objective))
        if best is None:
            return "no feasible model yet"
        unit = "MB" if self.goal.objective == "size" else "x"
        return f"best: trial {best['number']} {best['value']:.2f}{unit}, drop {best['drop']:.2f}"

    def _one(self, trial, done: list) -> str:
        """Run one asked trial; 'ok', 'pruned', 'duplicate', 'infeasible' or 'error'."""
        from optuna.trial import TrialState

        from nlpress.tuning.space import recipe_for, suggest

        trial.set_user_attr("worker", S.whoami())
        params = suggest(trial, self.space)
        key = json.dumps(params, sort_keys=True, default=str)
        trial.set_user_attr("key", key)  # claimed before looking: see the check below
        same = [
            t
            for t in done
            if t.user_attrs.get("key") == key and t.user_attrs.get("duplicate_of") is None
        ]
        busy = [
            t
            for t in self._running()
            if t.number != trial.number and t.user_attrs.get("key") == key
        ]
        if busy and not same:  # another worker is computing this recipe: leave it to them
            trial.set_user_attr("duplicate_of", busy[0].number)
            trial.set_user_attr("status", f"same recipe as trial {busy[0].number}, running")
            trial.set_user_attr("done", True)
            self.study.tell(trial, state=TrialState.FAIL)
            return "duplicate"
        if same:  # a proposal already measured: its result, not a second build
            o = same[0]
            for k, v in o.user_attrs.items():
                if k not in ("worker", "key", "seed", "retry_of", "heartbeat"):
                    trial.set_user_attr(k, v)
            trial.set_user_attr("duplicate_of", o.number)
            trial.set_user_attr("done", True)
            if "constraint" in o.user_attrs:
                trial.set_constraint("max_drop", o.user_attrs["constraint"])
            self.study.tell(
                trial, o.values if o.state == TrialState.COMPLETE else None, state=o.state
            )
            return "duplicate"
        folder = self.out / "trials" / f"{trial.number:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"trial-{trial.number:04d}"
        t0 = time.perf_counter()
        with S.Heartbeat(self.study, trial._trial_id):
            try:
                rcp = recipe_for(params, self.space, name)
                (folder / "recipe.yaml").write_text(rcp.to_yaml())
                trial.set_user_attr("recipe_text", rcp.to_yaml())
                trial.set_user_attr("recipe_name", _short(rcp))
                prep = self.session.check(rcp)
                proxy = _head(self.session.eval_data)
                m = run_trial(self.session, prep, folder, self.goal, proxy, self.cache)
            except Hopeless as e:
                return self._stop(trial, folder, TrialState.PRUNED, f"stopped early: {e}", t0)
            except NlpressError as e:  # a candidate this model cannot take: not a bug
                return self._stop(
                    trial, folder, TrialState.FAIL, f"infeasible: {e}", t0, "infeasible"
                )
            except KeyboardInterrupt:  # Ctrl-C or kill: retried first by the next run
                self.study.tell(trial, state=TrialState.FAIL)
                self.study.enqueue_trial(trial.params, user_attrs={"retry_of": trial.number})
                raise
            except Exception as e:
                (folder / "error.txt").write_text(traceback.format_exc())
                log.error("trial %d failed: %s", trial.number, e)
                return self._stop(trial, folder, TrialState.FAIL, f"error: {e}", t0, "error")
        t = m["tune"]
        feasible = t["drop"] <= self.goal.max_drop
        attrs = {
            "drop": t["drop"],
            "value": t["value"],
            "constraint": t["drop"] - self.goal.max_drop,
            "feasible": feasible,
            "quality": m["result"]["quality"].get(self.goal.metric),
            **_fid(m["result"]["fidelity"]),
            "throughput_speedup": m["ratios"]["throughput_speedup"],
            "latency_speedup": m["ratios"]["latency_speedup"],
            "size_mb": t["size_mb"],
            "seconds": round(time.perf_counter() - t0, 1),
            "status": "complete" if feasible else "over budget",
            "done": True,
        }
        attrs["metrics"] = _plain(m)  # so another machine can write best/ from this trial
        for k, v in attrs.items():
            trial.set_user_attr(k, v)
        trial.set_constraint("max_drop", attrs["constraint"])  # <= 0: within the budget
        self.study.tell(trial, [t["drop"], t["value"]])
        self._after(trial.number, m)
        return "ok"

    def _stop(self, trial, folder: Path, state, why: str, t0: float, kind: str = "pruned") -> str:
        log.info("trial %d: %s", trial.number, why)
        trial.set_user_attr("status", why[:300])
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 1))
        trial.set_user_attr("done", True)
        self.study.tell(trial, state=state)
        _drop_model(folder)
        return kind

    def _after(self, number: int, metrics: dict) -> None:
        """Keep models of front members only; replace best/ when this trial is the new best."""
        with _lock(self.out / ".best.lock"):
            rows = [trial_row(t) for t in self._finished()]
            front = F.pareto(rows, self.goal.objective)
            # only finished trials off the front: a trial being computed (by another worker
            # in this folder) keeps its model
            gone = {r["number"] for r in rows} - {r["number"] for r in front}
            for d in (self.out / "trials").iterdir():
                if d.name.isdigit() and int(d.name) in gone:
                    _drop_model(d)
            best = F.choose(front)
            if best is None or best["number"] != number:
                return
            cur = self.out / "best" / "metrics.json"
            if cur.is_file():
                old = json.loads(cur.read_text()).get("tune", {}).get("trial")
                if old == number:
                    return
            write_best(
                self.out,
                self.out / "trials" / f"{number:04d}",
                metrics,
                {"tune": {**metrics["tune"], "trial": number, "split": "search"}},
            )
            log.info("new best: trial %d", number)

    # -- the end -------------------------------------------------------------------------------
    def _ensure_local(self, r: dict) -> None:
        folder = self.out / "trials" / f"{r['number']:04d}"
        if (folder / "model").is_dir() and (folder / "metrics.json").is_file():
            return
        log.info("rebuilding front member trial %d here from its recipe", r["number"])
        try:
            _rebuild(self.session, self.out, r)
            t = self.study.get_trials(deepcopy=False)[r["number"]]
            write_json(folder / "metrics.json", t.user_attrs.get("metrics") or {})
        except Exception as e:  # the front is still reported; this member is not re-measured
            log.warning("could not rebuild trial %d here: %s", r["number"], e)

    def finish(self, heldout, search) -> Any:
        from nlpress.artifact import Artifact
        from nlpress.tuning import report
        from nlpress.tuning.api import TuneResult

        rows = [trial_row(t) for t in self._finished()]
        front = F.pareto(rows, self.goal.objective)
        self.session.load()
        for r in front:  # a member another machine computed: rebuild it here from its recipe
            self._ensure_local(r)
        base_search = self.session.baseline_quality()
        base_held = self.session.baseline_quality(heldout)
        held = F.heldout_measure(self.session, heldout, front, self.out, self.goal, base_held)
        chosen, why = F.final_choice(front, held, self.goal)
        if chosen is not None:
            folder = self.out / "trials" / f"{chosen['number']:04d}"
            metrics = json.loads((folder / "metrics.json").read_text())
            extra = {
                "tune": {
                    **metrics["tune"],
                    "trial": chosen["number"],
                    "split": "search",
                    "heldout": chosen.get("heldout"),
                    "why": why,
                }
            }
            with _lock(self.out / ".best.lock"):
                write_best(self.out, folder, metrics, extra)
        summary = {
            "model": self.session.name,
            "task": self.session.task,
            "goal": vars(self.goal),
            "n_finished": len(rows),
            "n_pruned": sum(r["state"] == "pruned" for r in rows),
            "n_failed": sum(r["state"] == "fail" for r in rows),
            "split": {"search": _n(search), "heldout": _n(heldout), "seed": self.seed},
            "baseline": {
                "search": base_search,
                "heldout": base_held,
                "heldout_speed": held.get("baseline"),
            },
            "first_feasible_s": _first_feasible(rows, self._finished()),
            "front": front,
            "chosen": chosen,
            "why": why,
            "cache_hits": self.cache.hits,
        }
        write_json(self.out / "summary.json", summary)
        report.write(self.out, summary, rows)
        best = None
        if chosen is not None:
            best = Artifact(
                self.out / "best", json.loads((self.out / "best" / "metrics.json").read_text())
            )
        return TuneResult(best, front, rows, self.out / "report.html", summary)


def _rebuild(session, out: Path, r: dict) -> None:
    import yaml

    from nlpress.artifact import atomic_artifact
    from nlpress.recipe import recipe_from_dict

    folder = out / "trials" / f"{r['number']:04d}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recipe.yaml").write_text(r["recipe"])
    rcp = recipe_from_dict(yaml.safe_load(r["recipe"]), f"trial-{r['number']:04d}")
    prep = session.check(rcp)
    with atomic_artifact(folder / "model", force=True) as tmp:
        session.build(prep, tmp)


def _first_feasible(rows: list[dict], trials: list) -> float | None:
    """Seconds from the study's first trial start to the first feasible trial's end."""
    starts = [t.datetime_start for t in trials if t.datetime_start]
    ends = [
        t.datetime_complete for t in trials if t.user_attrs.get("feasible") and t.datetime_complete
    ]
    if not starts or not ends:
        return None
    return (min(ends) - min(starts)).total_seconds()


def _plain(m: dict) -> dict:
    from nlpress.artifact_files import _jsonable

    return json.loads(json.dumps(m, default=_jsonable))


def _short(rcp) -> str:
    from nlpress.recipe import STEP_NAMES

    parts = []
    for s in rcp.steps:
        n = STEP_NAMES[type(s)]
        if n in ("export-onnx", "ort-optimize"):
            continue
        if n == "distill-student":
            n = f"student-{s.layers}"
        elif n == "prune-structured":
            n = f"prune(h{s.head_fraction:.2f},f{s.ffn_fraction:.2f},l{s.layer_fraction:.2f})"
        elif n == "quantize-dynamic-int8":
            n = (
                "int8"
                + ("" if s.per_channel else "-tensor")
                + ("" if s.quantize_embeddings else "-noemb")
            )
            if s.min_fidelity is not None:
                n = f"mixed-{s.min_fidelity}"
        elif n == "quantize-static-int8":
            n = f"static-{s.method}"
        elif n == "export-openvino":
            n = "openvino"
        elif n == "quantize-openvino-int8":
            n = "int8" if s.mode == "static" else "int8-weights"
        elif n == "quantize-weight-only":
            n = f"{s.method}-w{s.bits}g{s.group_size}"
        parts.append(n)
    if parts == ["openvino"]:
        return "openvino fp32"
    return " > ".join(parts) or "onnx fp32"


def _fid(f: dict) -> dict:
    """The trial's fidelity and what it is: the same measure as its early-stop proxy."""
    from nlpress.tuning.trial import fidelity_measure

    kind, value = fidelity_measure(f) or (None, None)
    return {"fidelity": value, "fidelity_kind": kind}


def _head(d):
    from nlpress.tuning.trial import PROXY_ROWS

    if isinstance(d, str):
        return d[: PROXY_ROWS * 200]
    from nlpress.train.data import take

    return take(d, list(range(min(PROXY_ROWS, len(d)))))


def _n(d) -> int:
    return len(d) if not isinstance(d, str) else len(d.splitlines())


def _drop_model(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder / "model", ignore_errors=True)


@contextlib.contextmanager
def _lock(path: Path):
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _bar(trials, seconds, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    if trials is not None:
        return tqdm(total=trials, desc="tune", unit="trial")
    return tqdm(total=int(seconds), desc="tune", unit="s")
