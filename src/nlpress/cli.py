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
from nlpress.guards import one_line

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
    from nlpress.train.commands import positive_int

    p.add_argument(
        "--limit", type=positive_int, default=2000, help="use at most this many rows (default 2000)"
    )


def _device_arg(p: argparse.ArgumentParser, default: str | None) -> None:
    p.add_argument(
        "--device",
        choices=["cpu", "cuda"],
        default=default,
        help="run on the CPU or a CUDA GPU (PyTorch CUDA, ONNX Runtime's CUDA provider)"
        + (f" (default {default})" if default else " (default: the artifact's own, else cpu)"),
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
    _noise_args(parser)
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
        help="built-in recipe (int8, int8-static, onnx, int8-fused-attention, int8-torch, "
        "openvino, int8-openvino, int8-auto, bf16, "
        "int8-weight-only, int8-smoothquant, int8-qat, int4-rtn, int4-gptq, int4-awq, prune-structured, "
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
    _device_arg(c, "cpu")
    _data_args(c)
    _bench_args(c)

    e = sub.add_parser(
        "eval", help="task metrics (and fidelity with --vs) of an artifact or a model"
    )
    e.add_argument("model", help="artifact folder, model folder, hub id or 'default'")
    e.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    e.add_argument("--vs", help="reference model or artifact to measure fidelity against")
    e.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _device_arg(e, None)
    _data_args(e)

    b = sub.add_parser(
        "bench", help="latency, throughput, size and memory, optionally against another model"
    )
    b.add_argument("model", help="artifact folder, model folder, hub id or 'default'")
    b.add_argument("--vs", help="a second model or artifact, measured in the same interleaved run")
    b.add_argument("--task", choices=["text-classification", "sentence-embedding", "causal-lm"])
    b.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    b.add_argument("--json", action="store_true", help="print the results as one JSON object")
    _device_arg(b, None)
    _data_args(b)
    _bench_args(b)
    pu = sub.add_parser(
        "push", help="upload an artifact to the Hugging Face hub, model card included"
    )
    pu.add_argument("artifact", help="artifact folder (the --out of compress, finetune, distill)")
    pu.add_argument("repo_id", help="hub model repo, USER/NAME or ORG/NAME (created if missing)")
    pu.add_argument("--private", action="store_true", help="create the repo as private")
    from nlpress.train.commands import add_commands  # finetune, distill (no heavy imports)

    add_commands(sub)
    from nlpress.tuning.commands import add_command as add_tune

    add_tune(sub)
    for command in sub.choices.values():  # `nlpress compress -q` as well as `nlpress -q compress`
        _noise_args(command, default=argparse.SUPPRESS)
    return parser


def _noise_args(p: argparse.ArgumentParser, default=False) -> None:
    noise = p.add_mutually_exclusive_group()
    noise.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default,
        help="only errors and the result; no progress bars",
    )
    noise.add_argument(
        "-v",
        "--verbose",
        action="store_true",
        default=default,
        help="progress and debug messages, and the libraries' warnings",
    )


def _columns(a) -> dict:
    return {
        "text_column": a.text_column,
        "text_pair_column": a.text_pair_column,
        "label_column": a.label_column,
    }


def _bench_cfg(a):
    from nlpress.bench.harness import MAX_BATCH, MAX_SEQ_LEN, BenchConfig

    if a.rounds < 1 or a.batch_size < 1 or (a.seq_len is not None and a.seq_len < 2):
        raise NlpressError("--rounds and --batch-size must be >= 1 and --seq-len >= 2")
    if a.batch_size > MAX_BATCH or (a.seq_len or 0) > MAX_SEQ_LEN or a.rounds > 1000:
        raise NlpressError(
            f"--batch-size must be at most {MAX_BATCH}, --seq-len at most {MAX_SEQ_LEN} and "
            f"--rounds at most 1000 (got {a.batch_size}, {a.seq_len}, {a.rounds}); lower them"
        )
    if not 0 <= a.threads <= 1024:
        raise NlpressError(
            f"--threads must be from 0 to 1024 (0: one per physical core), got {a.threads}"
        )
    return BenchConfig(
        batch_size=a.batch_size, seq_len=a.seq_len, rounds=a.rounds, progress=a.progress
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
        progress=a.progress,
        trust_remote_code=a.trust_remote_code,
        device=a.device,
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
        from nlpress.bench.stages import format_stages

        print(format_table(art.metrics))
        stages = format_stages({"stages": art.metrics.get("stages")})
        if stages:
            print(f"\n{stages}")
        print(f"\nartifact: {art.path}/  (report: {art.path}/report.html)")
    return 0


def cmd_eval(a) -> int:
    from nlpress.evaluate.api import evaluate

    res = evaluate(
        a.model,
        a.data,
        task=a.task,
        vs=a.vs,
        limit=a.limit,
        progress=a.progress,
        device=a.device,
        **_columns(a),
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
        device=a.device,
        **_columns(a),
    )
    if a.json:
        print(json.dumps(res, default=str))
    else:
        from nlpress.bench.api import format_bench

        print(format_bench(res))
    return 0


def cmd_push(a) -> int:
    from nlpress.hub import push

    print(push(a.artifact, a.repo_id, private=a.private))
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
    "push": cmd_push,
}


# Libraries whose INFO and WARNING messages are noise to an nlpress user (export tracing,
# graph-optimizer chatter, download notices); -v shows their warnings.
NOISY_LIBRARIES = (
    "onnxruntime",
    "torch",
    "onnxscript",
    "onnx_ir",
    "huggingface_hub",
    "accelerate",
    "datasets",
    "matplotlib",
    "sentence_transformers",
)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the moment of the message (pytest swaps it)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:
        pass


def _not_root_chatter(record: logging.LogRecord) -> bool:
    """Drop warnings logged on the root logger itself (``logging.warning(...)``): only libraries do
    that (onnxruntime's quantizer's "consider pre-processing"); nlpress logs under its own name."""
    return record.name != "root" or record.levelno >= logging.ERROR


def configure_logging(
    quiet: bool = False, verbose: bool = False, json_output: bool = False
) -> None:
    """nlpress's own messages on stderr: warnings by default, all (info, debug) with -v, errors
    only with -q (``json_output`` changes nothing: logs go to stderr, the JSON to stdout).

    Only the named noisy libraries are turned down to errors (warnings with -v); the root logger
    stays at WARNING, so a warning from nlpress, or from a library not named here, is shown.
    """
    import os
    import warnings

    root = logging.getLogger()
    for h in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(h)  # main() may run more than once in one process (tests)
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_not_root_chatter)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    # WARNING by default: a bad input stays one `error:` line, a warning is never hidden
    log.setLevel(logging.DEBUG if verbose else logging.ERROR if quiet else logging.WARNING)
    library = logging.WARNING if verbose else logging.ERROR
    for name in NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(library)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not verbose:
        for category in (UserWarning, DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity(library)
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def progress_enabled(quiet: bool, json_output: bool) -> bool:
    """Progress bars only for a person watching: not with -q or --json, not into a file or pipe."""
    return not (quiet or json_output) and sys.stderr.isatty()


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
    except _UsageError as e:
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return 2
    json_output = bool(getattr(args, "json", False))
    configure_logging(args.quiet, args.verbose, json_output)
    args.progress = progress_enabled(args.quiet, json_output)
    if not args.progress:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    try:
        return COMMANDS[args.command](args)
    except NlpressError as e:  # one line, however the message was built
        print(f"error: {one_line(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("interrupted: nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
