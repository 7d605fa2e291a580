"""``nlpress tune``: argument parsing and the call, kept out of ``cli.py`` (which only registers
it). Every flag maps to an argument of :func:`nlpress.tuning.api.tune`."""

from __future__ import annotations

import argparse
import json


def add_command(sub) -> None:
    t = sub.add_parser(
        "tune",
        help="search compressions for the fastest model within an accuracy budget",
    )
    t.add_argument("--model", default="default", help="model folder, hub id, or 'default'")
    t.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    t.add_argument("--data", help="labelled evaluation file (split into search and held-out)")
    t.add_argument(
        "--train", help="training file: enables distilled students and recovery training"
    )
    t.add_argument(
        "--max-drop",
        type=float,
        default=1.0,
        help="points the metric may fall below the fp32 model (default 1.0)",
    )
    t.add_argument("--metric", help="quality metric (default: accuracy, spearman or perplexity)")
    t.add_argument("--objective", default="throughput", help="throughput, latency or size")
    t.add_argument("--budget", help="search time, e.g. 90m, 1.5h, 600s")
    t.add_argument(
        "--trials", type=int, help="finished trials to run (default 20 without --budget)"
    )
    t.add_argument("--storage", help="Optuna database URL (default: a journal file in --out)")
    t.add_argument("--workers", type=int, default=1, help="worker processes on this machine")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--space",
        help="comma-separated families: int8, static, mixed, bf16, openvino, prune, distill "
        "(causal LMs: int8, weight-only, sparse); default: all that apply",
    )
    t.add_argument("--heldout", type=float, default=0.3, help="held-out share of --data (0.3)")
    t.add_argument("--train-steps", type=int, help="optimizer steps per training step")
    t.add_argument(
        "--student-steps",
        type=int,
        help="distillation steps of a student (default: --train-steps)",
    )
    t.add_argument("--rounds", type=int, default=3, help="benchmark rounds per trial (3)")
    t.add_argument("--out", default="tuned", help="study folder (default: tuned)")
    t.add_argument("--resume", action="store_true", help="continue the study in --out")
    t.add_argument("--force", action="store_true", help="delete the study in --out, start over")
    t.add_argument("--text-column")
    t.add_argument("--text-pair-column")
    t.add_argument("--label-column")
    t.add_argument("--limit", type=int, default=2000, help="rows of --data used (2000)")
    t.add_argument("--trust-remote-code", action="store_true")
    t.add_argument("--json", action="store_true", help="print the summary as one JSON object")


def quiet_optuna() -> None:
    """Optuna's per-trial INFO lines and its sampler notes would bury the progress bar."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)


def cmd_tune(a: argparse.Namespace) -> int:
    from nlpress.tuning.api import tune

    quiet_optuna()

    res = tune(
        a.model,
        a.data,
        train=a.train,
        out=a.out,
        max_drop=a.max_drop,
        metric=a.metric,
        objective=a.objective,
        budget=a.budget,
        trials=a.trials,
        storage=a.storage,
        workers=a.workers,
        seed=a.seed,
        space=[s.strip() for s in a.space.split(",") if s.strip()] if a.space else None,
        heldout=a.heldout,
        task=a.task,
        columns={
            "text_column": a.text_column,
            "text_pair_column": a.text_pair_column,
            "label_column": a.label_column,
        },
        limit=a.limit,
        train_steps=a.train_steps,
        student_steps=a.student_steps,
        rounds=a.rounds,
        resume=a.resume,
        force=a.force,
        progress=not a.json,
        trust_remote_code=a.trust_remote_code,
    )
    s = res.summary
    if a.json:
        print(json.dumps({k: v for k, v in s.items()}, default=str))
        return 0
    print(f"{'trial':>5}  {'recipe':40s} {'drop':>7} {'held-out':>8} {'thr.x':>6} {'MB':>7}")
    for r in s["front"]:
        h = r.get("heldout") or {}
        hd = h.get("drop")
        print(
            f"{r['number']:>5}  {r['recipe_name'][:40]:40s} {r['drop']:7.3f} "
            f"{'' if hd is None else f'{hd:8.3f}':>8} "
            f"{(h.get('throughput_speedup') or r['throughput_speedup'] or 0):6.2f} "
            f"{(r['size_mb'] or 0):7.2f}"
        )
    if s.get("first_feasible_s") is not None:
        print(f"first feasible model after {s['first_feasible_s']:.0f} s")
    if res.best is not None:
        print(f"chosen: trial {s['chosen']['number']} ({s['why']})")
        print(f"best: {res.best.path}/  report: {res.report}")
    else:
        print(f"no model chosen: {s['why']}  (report: {res.report})")
    return 0
