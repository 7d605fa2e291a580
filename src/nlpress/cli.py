"""The ``nlpress`` command: parse arguments, call one API function, print the result.

Heavy libraries are imported inside the commands so ``nlpress --help`` is instant. A user error
(:class:`~nlpress.errors.NlpressError`) prints one line and exits 2; Ctrl-C exits 130 after the
artifact code has removed its temporary folder.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from nlpress.errors import NlpressError

log = logging.getLogger("nlpress")


class _UsageError(Exception):
    """A bad command line, reported like every other user error: one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse's own prints the usage too: several lines
        raise _UsageError(f"{message} (see `{self.prog} --help`)")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", help="TSV/CSV/JSONL/TXT file or a Hugging Face dataset name")
    p.add_argument(
        "--text-column", help="column holding the text (auto-detected for GLUE-style files)"
    )
    p.add_argument("--text-pair-column", help="column holding the second text of a pair")
    p.add_argument("--label-column", help="column holding the label or score")
    p.add_argument(
        "--limit", type=int, default=2000, help="use at most this many rows (default 2000)"
    )


def _bench_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rounds", type=int, default=7, help="interleaved benchmark rounds (default 7)")
    p.add_argument("--batch-size", type=int, default=32, help="throughput batch size (default 32)")
    p.add_argument("--seq-len", type=int, help="pad to this length (default: from the data)")
    p.add_argument(
        "--threads", type=int, default=0, help="threads per model (default: physical cores)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="nlpress", description="Make trained NLP models smaller and faster, with proof."
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings and the result")
    sub = parser.add_subparsers(dest="command", required=True)

    c = sub.add_parser(
        "compress", help="compress a model with a recipe; writes an artifact with a report"
    )
    c.add_argument(
        "--model", default="default", help="model folder, hub id, or 'default' (all-MiniLM-L6-v2)"
    )
    c.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    c.add_argument(
        "--recipe",
        default="int8",
        help="built-in recipe (int8, int8-static, onnx, int8-fused-attention, int8-torch, bf16, "
        "int8-weight-only, int8-smoothquant, int4-rtn, int4-gptq, int4-awq, prune-structured, "
        "magnitude-50, magnitude-2:4, magnitude-90-gradual, wanda-50, sparsegpt-50, wanda-2:4, "
        "sparsegpt-2:4) or a YAML file",
    )
    c.add_argument(
        "--calib",
        metavar="FILE",
        help="data file whose texts calibrate quantize-static-int8 (default: the --data texts)",
    )
    c.add_argument(
        "--min-fidelity",
        type=float,
        metavar="X",
        help="mixed precision: keep the most sensitive layers of the int8 step in fp32 until "
        "fidelity to fp32 (mean cosine, or top-1 agreement) on held-out texts is at least X",
    )
    c.add_argument("--out", default="out", help="artifact folder to write (default: out)")
    c.add_argument("--force", action="store_true", help="replace an existing artifact in --out")
    c.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="STEP.KEY=VALUE",
        help="override a recipe value, e.g. --set quantize-dynamic-int8.per_channel=false (repeatable)",
    )
    c.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    c.add_argument(
        "--trust-remote-code", action="store_true", help="allow the model's own Python code"
    )
    c.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    _data_args(c)
    _bench_args(c)

    e = sub.add_parser(
        "eval", help="task metrics (and fidelity with --vs) of an artifact or a model"
    )
    e.add_argument("model", help="artifact folder, model folder, hub id or 'default'")
    e.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    e.add_argument("--vs", help="reference model or artifact to measure fidelity against")
    e.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _data_args(e)

    b = sub.add_parser(
        "bench", help="latency, throughput, size and memory, optionally against another model"
    )
    b.add_argument("model", help="artifact folder, model folder, hub id or 'default'")
    b.add_argument("--vs", help="a second model or artifact, measured in the same interleaved run")
    b.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    b.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _data_args(b)
    _bench_args(b)
    from nlpress.train.commands import add_commands  # finetune, distill (no heavy imports)

    add_commands(sub)
    from nlpress.tuning.commands import add_command as add_tune

    add_tune(sub)
    return parser


def _columns(a) -> dict:
    return {
        "text_column": a.text_column,
        "text_pair_column": a.text_pair_column,
        "label_column": a.label_column,
    }


def _bench_cfg(a):
    from nlpress.bench.harness import BenchConfig

    if a.rounds < 1 or a.batch_size < 1 or (a.seq_len is not None and a.seq_len < 2):
        raise NlpressError("--rounds and --batch-size must be >= 1 and --seq-len >= 2")
    if a.threads < 0:
        raise NlpressError(f"--threads must be >= 0 (0: one per physical core), got {a.threads}")
    return BenchConfig(
        batch_size=a.batch_size, seq_len=a.seq_len, rounds=a.rounds, progress=not a.json
    )


def cmd_compress(a) -> int:
    from nlpress.pipeline import compress
    from nlpress.report import format_table

    if a.threads:  # compress() has no threads argument yet: refuse rather than silently ignore
        raise NlpressError(
            "compress does not take --threads yet; benchmark the artifact with "
            "`nlpress bench OUT --vs MODEL --threads N`"
        )
    art = compress(
        a.model,
        a.task,
        a.data,
        a.recipe,
        a.out,
        force=a.force,
        overrides=a.set,
        calib=a.calib,
        min_fidelity=a.min_fidelity,
        limit=a.limit,
        bench=_bench_cfg(a),
        memory=not a.no_memory,
        progress=not a.json,
        trust_remote_code=a.trust_remote_code,
        **_columns(a),
    )
    if a.json:
        print(
            json.dumps(
                {"artifact": str(art.path), **{k: v for k, v in art.metrics.items() if k != "env"}},
                default=str,
            )
        )
    else:
        print(format_table(art.metrics))
        print(f"\nartifact: {art.path}/  (report: {art.path}/report.html)")
    return 0


def cmd_eval(a) -> int:
    from nlpress.evaluate.api import evaluate

    res = evaluate(
        a.model, a.data, task=a.task, vs=a.vs, limit=a.limit, progress=not a.json, **_columns(a)
    )
    if a.json:
        print(json.dumps(res, default=str))
    else:
        for section in ("quality", "fidelity"):
            for k, v in res.get(section, {}).items():
                print(
                    f"{section:9s} {k:16s} {v:.4f}"
                    if isinstance(v, float)
                    else f"{section:9s} {k:16s} {v}"
                )
        print(f"data      {res['data']['source']} ({res['data']['n']} rows)")
    return 0


def cmd_bench(a) -> int:
    from nlpress.bench.api import bench

    res = bench(
        a.model,
        vs=a.vs,
        data=a.data,
        task=a.task,
        cfg=_bench_cfg(a),
        threads=a.threads,
        memory=not a.no_memory,
        limit=a.limit,
        **_columns(a),
    )
    if a.json:
        print(json.dumps(res, default=str))
    else:
        from nlpress.bench.api import format_bench

        print(format_bench(res))
    return 0


def cmd_finetune(a) -> int:
    from nlpress.train.commands import cmd_finetune as run

    return run(a)


def cmd_distill(a) -> int:
    from nlpress.train.commands import cmd_distill as run

    return run(a)


def cmd_tune(a) -> int:
    from nlpress.tuning.commands import cmd_tune as run

    return run(a)


COMMANDS = {
    "compress": cmd_compress,
    "eval": cmd_eval,
    "bench": cmd_bench,
    "finetune": cmd_finetune,
    "distill": cmd_distill,
    "tune": cmd_tune,
}


def _quiet_libraries() -> None:
    import os
    import warnings

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass
    for name in ("onnxruntime", "root", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.WARNING if args.quiet or getattr(args, "json", False) else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    _quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except NlpressError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
