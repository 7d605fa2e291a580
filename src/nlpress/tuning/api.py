"""``tune()``: search recipes for the fastest model within an accuracy budget, on Optuna.

Flow: check every input (one clear error each, nothing written), open or resume the study,
load the model, data and fp32 baseline once (:class:`nlpress.session.Session`), then trials
until the budget (time or count) is spent: the cheap seeds first, then the sampler's proposals.
Each finished feasible trial that beats the best so far replaces ``out/best`` atomically, so a
complete best artifact is on disk from the first feasible trial on. At the end the front is
re-measured on the held-out split and the report written (:mod:`nlpress.tuning.front`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from nlpress.artifact import Artifact, write_json
from nlpress.errors import NlpressError
from nlpress.session import EVAL_LIMIT
from nlpress.tuning import inputs as I

log = logging.getLogger(__name__)

DUPLICATE_LIMIT = 30  # proposals in a row that repeat a finished trial: the space is exhausted
DEFAULT_TRIALS = 20  # when neither --budget nor --trials is given
ERRORS_IN_A_ROW = 3  # unexpected trial errors in a row stop the search (a bug, not a candidate)


@dataclass
class TuneResult:
    best: Artifact | None
    front: list[dict]
    trials: list[dict]
    report: Path
    summary: dict = field(default_factory=dict)


def tune(
    model: str | os.PathLike = "default",
    data: str | os.PathLike | None = None,
    *,
    train: str | os.PathLike | None = None,
    out: str | os.PathLike = "tuned",
    max_drop: float = 1.0,
    metric: str | None = None,
    objective: str = "throughput",
    budget: Any = None,
    trials: int | None = None,
    storage: str | None = None,
    workers: int = 1,
    seed: int = 0,
    space: list[str] | tuple[str, ...] | None = None,
    heldout: float = 0.3,
    task: str | None = None,
    columns: dict | None = None,
    limit: int | None = EVAL_LIMIT,
    train_steps: int | None = None,
    student_steps: int | None = None,
    rounds: int = 3,
    resume: bool = False,
    force: bool = False,
    progress: bool = True,
    trust_remote_code: bool = False,
    _worker: bool = False,
) -> TuneResult | None:
    """Search compressions of ``model``; the best artifact (``out/best``) and the front.

    ``max_drop``: points the ``metric`` (accuracy, F1, Spearman x100; perplexity: its increase)
    may fall below the fp32 model on ``data``. ``objective``: throughput (batch 32) or latency
    (batch 1) speedup, or size. ``budget`` ("90m") and/or ``trials`` bound the search; both are
    spent fully. ``train`` enables distilled students and recovery training; ``train_steps``
    caps each training step's optimizer steps, ``student_steps`` a student's distillation.
    """
    from nlpress.models.loader import detect_task, read_config, resolve_model_path
    from nlpress.tuning.space import make_space
    from nlpress.tuning.study import open_storage

    out = Path(out).absolute()
    drop = I.check_numbers(max_drop, trials, workers, heldout, rounds)
    seconds = I.parse_budget(budget)
    if seconds is None and trials is None:
        trials = DEFAULT_TRIALS
    I.check_objective(objective)
    I.check_steps(train_steps, student_steps, train is not None)
    path = resolve_model_path(model)
    cfg = read_config(path)
    task = task or detect_task(path, cfg)
    metric = I.check_metric(metric, task)
    columns = {
        "text_column": None,
        "text_pair_column": None,
        "label_column": None,
        **(columns or {}),
    }
    if data is None:
        raise NlpressError("tune measures every candidate on your data: pass --data dev.tsv")
    I.check_train(train, task, path, columns)
    n_layers = int(cfg.get("num_hidden_layers") or cfg.get("n_layer") or 1)
    from nlpress.quantize.cast import cpu_has_bf16
    from nlpress.runtime.openvino import installed as openvino_installed

    sp = make_space(
        task,
        tuple(space) if space else None,
        n_layers,
        train is not None,
        cpu_has_bf16(),
        train_steps,
        str(Path(train).absolute()) if train else None,
        openvino=openvino_installed(),
        student_steps=student_steps,
    )
    fp = I.fingerprint(
        model=str(model),
        model_path=str(path),
        data=str(data),
        train=str(train) if train else None,
        task=task,
        metric=metric,
        max_drop=drop,
        objective=objective,
        seed=seed,
        space=list(sp.families),
        heldout=heldout,
        limit=limit,
        train_steps=train_steps,
        student_steps=student_steps,
    )
    name, wiped = I.check_out(out, fp, I.study_name(fp), resume or _worker, force and not _worker)
    from nlpress.evaluate.api import load_eval_data

    full = load_eval_data(task, data, limit, columns)
    I.check_labelled(task, full, metric)
    search, held = I.split(task, full, heldout, seed)
    st = open_storage(storage, out) if storage is not None else None  # unreachable: nothing made
    out.mkdir(exist_ok=True)
    st = st if st is not None else open_storage(None, out)
    if wiped and storage is not None:
        _delete_study(st, name)
    write_json(
        out / I.STUDY_FILE,
        {
            "study": name,
            "fingerprint": fp,
            "storage": _public(storage),
            "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        },
    )
    from nlpress.session import Session

    session = Session(
        path,
        task,
        data,
        columns=columns,
        progress=False,
        train_data=train,
        trust_remote_code=trust_remote_code,
        eval_data=search,
    )
    session.name = "all-MiniLM-L6-v2 (default)" if str(model) == "default" else str(model)
    from nlpress.tuning.search import Search

    goal_kw = dict(metric=metric, max_drop=drop, objective=objective, rounds=rounds)
    srch = Search(session, sp, st, name, out, goal_kw, seed, train)
    children = []
    if workers > 1 and not _worker:
        children = _spawn(
            workers - 1,
            dict(
                model=str(path),
                data=str(data),
                train=str(train) if train else None,
                out=str(out),
                max_drop=drop,
                metric=metric,
                objective=objective,
                budget=seconds,
                trials=trials,
                storage=storage,
                seed=seed,
                space=list(space) if space else None,
                heldout=heldout,
                task=task,
                columns=columns,
                limit=limit,
                train_steps=train_steps,
                student_steps=student_steps,
                rounds=rounds,
                trust_remote_code=trust_remote_code,
            ),
        )
    try:
        srch.run(seconds, trials, progress)
    finally:
        for c in children:
            if sys.exc_info()[0] is not None:
                c.terminate()
            c.wait()
    if _worker:
        return None
    return srch.finish(held, search)


def _public(url: str | None) -> str:
    from nlpress.tuning.study import _redact

    return "journal file study.journal" if url is None else _redact(url)


def _delete_study(storage, name: str) -> None:
    import optuna

    try:
        optuna.delete_study(study_name=name, storage=storage)
    except KeyError:
        pass


def _spawn(n: int, kw: dict) -> list:
    """Extra worker processes on this machine, sharing the study through its storage."""
    procs = []
    log_dir = Path(kw["out"]) / "workers"
    log_dir.mkdir(exist_ok=True)
    for i in range(n):
        f = open(log_dir / f"worker-{i + 1}.log", "a")  # noqa: SIM115  (closed with the process)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "nlpress.tuning.worker", json.dumps(kw)],
                stdout=f,
                stderr=subprocess.STDOUT,
            )
        )
    return procs
