"""Checks and preparation of ``nlpress tune``'s inputs, all before the model's weights load.

Each bad input is one :class:`~nlpress.errors.NlpressError` line (the CLI prints it and exits 2)
raised before anything is written, so a typo never costs a search and never touches an earlier
study.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError

METRICS = {
    "text-classification": ("accuracy", "f1"),
    "sentence-embedding": ("spearman", "pearson"),
    "causal-lm": ("perplexity",),
}
OBJECTIVES = ("throughput", "latency", "size")
STUDY_FILE = "study.json"
OWNED = ("study.json", "study.journal", "trials", "cache", "best", "report.md", "report.html")
OWNED += ("front.png", "summary.json", "workers", ".best.lock")


def parse_budget(budget: Any) -> float | None:
    """``90m``, ``1.5h``, ``600s`` or a number of seconds -> seconds (None: no time budget)."""
    if budget is None:
        return None
    if isinstance(budget, int | float) and not isinstance(budget, bool):
        sec = float(budget)
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([smhd]?)\s*", str(budget))
        if not m:
            raise NlpressError(
                f"--budget {budget!r} is not a duration; write e.g. 90m, 1.5h, 600s or 600"
            )
        sec = float(m.group(1)) * {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
    if not math.isfinite(sec) or sec <= 0:
        raise NlpressError(f"--budget {budget!r} leaves no time to search; give e.g. 30m")
    return sec


def check_numbers(max_drop: Any, trials: Any, workers: int, heldout: float, rounds: int) -> float:
    try:
        d = float(max_drop)
    except (TypeError, ValueError):
        raise NlpressError(
            f"--max-drop {max_drop!r} is not a number; give points, e.g. 1.0"
        ) from None
    if isinstance(max_drop, bool) or not math.isfinite(d) or d < 0:
        raise NlpressError(
            f"--max-drop {max_drop!r}: the accuracy budget must be a number >= 0 (points the "
            "metric may fall, e.g. 1.0)"
        )
    if trials is not None and (not isinstance(trials, int) or trials < 1):
        raise NlpressError(f"--trials {trials!r}: give a whole number >= 1")
    if not isinstance(workers, int) or workers < 1:
        raise NlpressError(f"--workers {workers!r}: give a whole number >= 1")
    if not 0.0 < heldout < 0.9:
        raise NlpressError(f"--heldout {heldout!r}: the held-out share must be between 0 and 0.9")
    if rounds < 1:
        raise NlpressError(f"--rounds {rounds!r}: give at least 1")
    return d


def check_steps(train_steps: Any, student_steps: Any, has_train: bool) -> None:
    """Training step budgets: whole numbers >= 1, and only where there is training data."""
    for flag, v in (("--train-steps", train_steps), ("--student-steps", student_steps)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise NlpressError(f"{flag} {v!r}: give a whole number of optimizer steps >= 1")
    if student_steps is not None and not has_train:
        raise NlpressError(
            "--student-steps trains distilled students, which need training data: pass --train "
            "FILE, or leave --student-steps out"
        )


def check_metric(metric: str | None, task: str) -> str:
    allowed = METRICS[task]
    if metric is None:
        return allowed[0]
    if metric not in allowed:
        raise NlpressError(
            f"--metric {metric!r}: a {task} model is measured by {', '.join(allowed)}"
        )
    return metric


def check_objective(objective: str) -> None:
    if objective not in OBJECTIVES:
        raise NlpressError(f"--objective {objective!r}: choose {', '.join(OBJECTIVES)}")


def split(task: str, d: Any, fraction: float, seed: int) -> tuple[Any, Any]:
    """(search split, held-out split) of the --data rows (causal LM: of its lines)."""
    if task == "causal-lm":
        lines = d.splitlines()
        k = max(1, int(round(len(lines) * (1 - fraction))))
        if k >= len(lines):
            raise NlpressError("--data is too short to hold out a split; pass more text")
        return "\n".join(lines[:k]), "\n".join(lines[k:])
    from nlpress.train.data import heldout_split, take

    if len(d) < 8:
        raise NlpressError(
            f"--data has {len(d)} rows; tune needs at least 8 (a search and a held-out split)"
        )
    s = heldout_split(len(d), fraction, seed)
    return take(d, s.train), take(d, s.heldout)


def check_labelled(task: str, d: Any, metric: str) -> None:
    if task == "text-classification" and getattr(d, "labels", None) is None:
        raise NlpressError(
            "--data has no label column; tune measures accuracy on it (pass --label-column)"
        )
    if task == "sentence-embedding" and (d.pairs is None or d.scores is None):
        raise NlpressError(
            f"--data needs sentence pairs with scores (STS) to measure {metric}; "
            "pass --text-pair-column/--label-column"
        )


def check_train(train: Any, task: str, model_path: Path, columns: dict) -> None:
    """The training file exists, and its labels are the model's own."""
    if train is None:
        return
    if task == "causal-lm":
        raise NlpressError("--train: training a causal-lm is not supported yet; leave it out")
    if not Path(train).is_file():
        raise NlpressError(f"--train {train}: file not found")
    from nlpress.data.readers import check_label_set
    from nlpress.models.loader import read_config
    from nlpress.train.data import read_training_data

    d = read_training_data(train, task, columns, None, need_labels=False)
    if task != "text-classification" or d.labels is None:
        return
    cfg = read_config(model_path)
    names = {str(v) for v in (cfg.get("id2label") or {}).values()}
    n = int(cfg.get("num_labels") or len(names) or 2)
    check_label_set(d, names, n, "--train", "model", "check the file")


def _file_hash(p: Any) -> str:
    if p is None:
        return ""
    path = Path(p)
    if not path.is_file():
        return str(p)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read(64 << 20))
    return h.hexdigest()[:16]


def fingerprint(**fields: Any) -> dict:
    """What makes two runs the same study (budget, trials and workers do not)."""
    fp = dict(fields)
    fp["data_sha"] = _file_hash(fields.get("data"))
    fp["train_sha"] = _file_hash(fields.get("train"))
    cfg = Path(fields["model_path"]) / "config.json"
    fp["model_sha"] = _file_hash(cfg) if cfg.is_file() else str(fields["model_path"])
    return fp


def study_name(fp: dict) -> str:
    keys = ("model_sha", "data_sha", "train_sha", "task", "metric", "max_drop", "objective")
    keys += ("seed", "space", "heldout", "limit", "train_steps")
    if fp.get("student_steps") is not None:  # studies made before the option keep their names
        keys += ("student_steps",)
    text = json.dumps({k: fp.get(k) for k in keys}, sort_keys=True, default=str)
    return "nlpress-tune-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def check_out(out: Path, fp: dict, name: str, resume: bool, force: bool) -> tuple[str, bool]:
    """(the study name to use, whether --force wiped an earlier one), or a refusal."""
    from nlpress.artifact import is_artifact

    if not out.exists():
        if not out.parent.exists():
            raise NlpressError(f"cannot write {out}: folder {out.parent} does not exist")
        if resume:
            raise NlpressError(f"--resume: {out} holds no study to continue; leave --resume out")
        return name, False
    if not out.is_dir():
        raise NlpressError(f"--out {out} is a file; choose a folder")
    if is_artifact(out):
        raise NlpressError(
            f"--out {out} holds an nlpress artifact, not a tune study; choose another"
        )
    meta = out / STUDY_FILE
    if not meta.is_file():
        if any(out.iterdir()):
            raise NlpressError(f"--out {out} is not empty and holds no study; choose another --out")
        if resume:
            raise NlpressError(f"--resume: {out} holds no study to continue; leave --resume out")
        return name, False
    from nlpress.guards import read_json

    old = read_json(meta, "study file", "pass --force to start over")  # a dict, bounded
    if force:
        for n in OWNED:
            p = out / n
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        return name, True
    if old.get("study") == name or resume:
        return old.get("study", name), False
    diff = [
        k
        for k in ("model", "data", "train", "metric", "max_drop", "objective", "seed", "space")
        if old.get("fingerprint", {}).get(k) != fp.get(k)
    ]
    what = (
        ", ".join(f"{k} {old.get('fingerprint', {}).get(k)!r}" for k in diff[:3]) or "other inputs"
    )
    raise NlpressError(
        f"--out {out} holds another study ({what}); pass --resume to continue it, --force to "
        "start over, or choose another --out"
    )
