"""``nlpress finetune`` and ``nlpress distill``: argument parsing and the calls, kept out of
``cli.py`` so the shared command file only registers them. Every flag maps to an API argument."""

from __future__ import annotations

import argparse
import json

from nlpress.errors import NlpressError


def positive_int(text: str) -> int:
    """An argparse type for counts: ``--limit 0`` or ``-5`` is an error, never "all rows"."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data", help="training file: TSV/CSV/JSONL (labels), or plain text for embeddings"
    )
    p.add_argument("--text-column", help="column holding the text (auto-detected for GLUE files)")
    p.add_argument("--text-pair-column", help="column holding the second text of a pair")
    p.add_argument("--label-column", help="column holding the label")
    p.add_argument("--limit", type=positive_int, help="use only the first N rows of --data")
    p.add_argument("--out", required=True, help="artifact folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing artifact in --out")
    p.add_argument("--resume", action="store_true", help="continue from OUT.checkpoints/last")
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--batch-size", type=int, default=32, help="global batch (split over processes)")
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--max-steps", type=int, help="stop after this many optimizer steps")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--eval-split", type=float, default=0.1, help="held-out fraction (default 0.1)")
    p.add_argument(
        "--eval-every", type=int, help="optimizer steps between evaluations (default: epoch)"
    )
    p.add_argument("--patience", type=int, help="evaluations without improvement before stopping")
    p.add_argument("--checkpoint-every", type=int, default=200, help="steps between checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-length", type=int, default=128, help="tokens per text (default 128)")
    p.add_argument(
        "--cpu", action="store_true", help="train on the CPU even where a GPU is present"
    )
    p.add_argument(
        "--freeze-embeddings", action="store_true", help="keep the word embeddings fixed (faster)"
    )
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")


def add_commands(sub) -> None:
    f = sub.add_parser("finetune", help="fine-tune a base model into a classifier (a teacher)")
    f.add_argument("--model", default="default", help="model folder, hub id, or 'default'")
    f.add_argument("--task", default="text-classification", choices=["text-classification"])
    _train_args(f)
    d = sub.add_parser("distill", help="distill a teacher into a smaller student")
    d.add_argument(
        "--teacher", required=True, help="teacher model folder or artifact, or 'default'"
    )
    d.add_argument(
        "--student-layers",
        help="N (spread evenly; embeddings keep the last) or a list like 0,2,5 of teacher layers",
    )
    d.add_argument("--student", help="a given student model folder (same tokenizer and labels)")
    d.add_argument("--task", choices=["text-classification", "sentence-embedding"])
    d.add_argument("--temperature", type=float, default=2.0)
    d.add_argument("--alpha", type=float, default=0.5, help="weight of the soft (teacher) loss")
    d.add_argument("--hidden-weight", type=float, default=0.0, help="hidden-state MSE weight")
    d.add_argument("--attention-weight", type=float, default=0.0, help="attention loss weight")
    d.add_argument("--attention-loss", choices=["kl", "mse"], default="kl")
    d.add_argument("--embedding-loss", choices=["cosine", "mse"], default="cosine")
    d.add_argument(
        "--rounds", type=int, default=5, help="benchmark rounds, teacher vs student (default 5)"
    )
    d.add_argument("--no-bench", action="store_true", help="skip the teacher-vs-student speed run")
    _train_args(d)


def _config(cls, a):
    """``cls`` (a pydantic config) from the same-named CLI options; a bad value names its flag."""
    from pydantic import ValidationError

    from nlpress.train.loop import fields_from

    try:
        return cls(**fields_from(cls, a))
    except ValidationError as e:
        err = e.errors()[0]
        raise NlpressError(f"--{str(err['loc'][0]).replace('_', '-')}: {err['msg']}") from e


def _train_config(a):
    from nlpress.train.loop import TrainConfig

    return _config(TrainConfig, a)


def _common(a) -> dict:
    return dict(
        data=a.data,
        out=a.out,
        force=a.force,
        resume=a.resume,
        limit=a.limit,
        eval_split=a.eval_split,
        progress=a.progress,
        columns={
            "text_column": a.text_column,
            "text_pair_column": a.text_pair_column,
            "label_column": a.label_column,
        },
    )


def _print(art, a) -> int:
    if art is None:  # not the main process of an `accelerate launch` run
        return 0
    m = art.metrics
    if a.json:
        print(
            json.dumps(
                {"artifact": str(art.path), **{k: v for k, v in m.items() if k != "history"}},
                default=str,
            )
        )
        return 0
    print(
        f"steps {m['steps']}  train time {m['train_seconds']:.1f}s  processes {m['num_processes']}"
    )
    if m.get("best"):
        print("best held-out: " + "  ".join(f"{k} {v:.4g}" for k, v in m["best"].items()))
    for who, row in (m.get("comparison") or {}).items():
        q = {**row.get("quality", {}), **row.get("fidelity", {}), **row.get("vs_teacher", {})}
        nums = "  ".join(f"{k} {v:.4g}" for k, v in q.items() if isinstance(v, float))
        tput = f"throughput {row['throughput']:.1f}/s  " if "throughput" in row else ""
        print(f"{who:8s} {tput}{nums}")
    print(f"artifact: {art.path}/  (report: {art.path}/report.md)")
    return 0


def cmd_finetune(a) -> int:
    from nlpress.train.finetune import finetune

    art = finetune(a.model, a.task, train=_train_config(a), **_common(a))
    return _print(art, a)


def cmd_distill(a) -> int:
    from nlpress.train.distill import DistillConfig, distill

    if a.rounds < 1:  # as compress and bench: 0 rounds is not a benchmark
        raise NlpressError(
            f"--rounds must be >= 1, got {a.rounds}; pass --no-bench to skip the speed comparison"
        )
    cfg = _config(DistillConfig, a)
    art = distill(
        a.teacher,
        student=a.student,
        student_layers=a.student_layers,
        config=cfg,
        train=_train_config(a),
        task=a.task,
        bench_rounds=0 if a.no_bench else a.rounds,
        **_common(a),
    )
    return _print(art, a)
