"""One-shot LLM pruning on SmolLM2-135M: WikiText-2 perplexity of magnitude, Wanda and SparseGPT.

Unstructured 50% and 2:4, each against the fp32 model, with the perplexity protocol of
``benchmarks/llm_weight_only.py`` (its own ``_ids``/``_perplexity`` are imported, so the numbers
are comparable): non-overlapping 2048-token windows of
../shared/data/wikitext-2-raw/wiki.valid.raw, the first token of each window unscored, over the
first ``--eval-tokens`` tokens. Calibration: ``--samples`` random ``--seq-len``-token windows
(seeded) from the part of the file *after* the evaluated tokens (no overlap). The papers use
128 x 2048 tokens of C4; on a shared 2-core CPU the default here is smaller and printed.

Every method prunes a fresh copy of the fp32 model in this process (pruning time is printed);
results are appended to ``--out``/results.json after each method, so a partial run keeps what it
measured. The target checked: Wanda and SparseGPT each add at most a third of the perplexity that
magnitude pruning adds, at 50% unstructured.

    PYTHONPATH=src .venv/bin/python benchmarks/prune_llm.py [--eval-tokens 8192] [--samples 32]
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from llm_weight_only import WINDOW, _ids, _perplexity  # noqa: E402 - the shared protocol

METHODS = {  # name: (step, config keys)
    "magnitude-50": ("magnitude", {"sparsity": 0.5}),
    "wanda-50": ("wanda", {"sparsity": 0.5}),
    "sparsegpt-50": ("sparsegpt", {"sparsity": 0.5}),
    "magnitude-2:4": ("nm", {"n": 2, "m": 4}),
    "wanda-2:4": ("wanda", {"n": 2, "m": 4}),
    "sparsegpt-2:4": ("sparsegpt", {"n": 2, "m": 4}),
}


def prune(model, method: str, batches) -> dict:
    """Prune ``model`` in place with one of METHODS; return the step's info."""
    from nlpress.prune.oneshot_steps import prune_oneshot
    from nlpress.prune.unstructured import prune_unstructured
    from nlpress.recipe import (
        PruneMagnitudeConfig,
        PruneNMConfig,
        PruneSparseGPTConfig,
        PruneWandaConfig,
    )

    kind, keys = METHODS[method]
    targets = {"targets": [r"re:model\.layers\.\d+\..*"]}  # the same linears for every method
    if kind == "magnitude":
        _, summary = prune_unstructured(model, PruneMagnitudeConfig(**keys, **targets))
    elif kind == "nm":
        _, summary = prune_unstructured(model, PruneNMConfig(**keys, **targets))
    else:
        cls = PruneWandaConfig if kind == "wanda" else PruneSparseGPTConfig
        _, summary = prune_oneshot(model, cls(**keys, **targets), batches, progress=True)
    return summary["info"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-results/prune-llm")
    p.add_argument("--eval-tokens", type=int, default=4 * WINDOW)
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", default=",".join(METHODS))
    args = p.parse_args()

    import torch

    from nlpress.models.builtin import smollm2_path
    from nlpress.models.loader import load_model
    from nlpress.quantize.weight_only import lm_calibration_batches

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    lm = load_model(smollm2_path(), "causal-lm")
    ids = _ids(lm.tokenizer)
    batches = lm_calibration_batches(ids[args.eval_tokens :], args.samples, args.seq_len)
    print(
        f"eval: first {args.eval_tokens} tokens in {WINDOW}-token windows; calibration: "
        f"{args.samples} x {args.seq_len} tokens after them; threads {args.threads}",
        flush=True,
    )
    res: dict = {"args": vars(args), "perplexity": {}, "info": {}}
    t0 = time.perf_counter()
    res["perplexity"]["fp32"] = _perplexity(lm.model, ids, args.eval_tokens)
    print(
        f"fp32: ppl {res['perplexity']['fp32']:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True
    )
    for m in args.methods.split(","):
        model = copy.deepcopy(lm.model)
        t0 = time.perf_counter()
        info = prune(model, m, batches)
        info["seconds"] = round(time.perf_counter() - t0, 1)
        res["info"][m] = info
        res["perplexity"][m] = _perplexity(model, ids, args.eval_tokens)
        print(f"{m}: ppl {res['perplexity'][m]:.4f} {json.dumps(info)}", flush=True)
        (out / "results.json").write_text(json.dumps(res, indent=2))
        del model
    _print_table(res["perplexity"])


def _print_table(ppl: dict) -> None:
    base = ppl["fp32"]
    print(f"\n{'model':16} {'ppl':>9} {'+ppl':>9}")
    for n, v in ppl.items():
        print(f"{n:16} {v:9.4f} {v - base:9.4f}")
    for pattern in ("50", "2:4"):
        mag = ppl.get(f"magnitude-{pattern}")
        for m in ("wanda", "sparsegpt"):
            got = ppl.get(f"{m}-{pattern}")
            if mag is None or got is None:
                continue
            ok = got - base <= (mag - base) / 3
            print(
                f"{m}-{pattern}: adds {got - base:+.4f} vs magnitude {mag - base:+.4f} "
                f"(ratio {(got - base) / (mag - base):.3f}; target <= 1/3"
                f"{'' if pattern == '50' else ', reported only'}): "
                f"{'met' if ok else 'NOT met'}"
            )


if __name__ == "__main__":
    main()
