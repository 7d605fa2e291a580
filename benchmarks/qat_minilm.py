"""Quantization-aware training against post-training int8 on the default model (all-MiniLM-L6-v2).

Evaluation: the first --rows sentences of STS-B train (both columns of its first pairs). QAT
trains by distillation from the fp32 model on other STS-B train sentences (the pairs after
those), so it never sees an evaluation sentence. Both artifacts (`int8` and `int8-qat`) are then
run, with PyTorch fp32 eager, in one interleaved benchmark at 32 x 128 and at batch 32 of the
data's lengths; fidelity is the cosine to fp32 on the evaluation sentences.

    .venv/bin/python benchmarks/qat_minilm.py [--rows 2000] [--train-rows 6000] [--steps 300]
    .venv/bin/python benchmarks/qat_minilm.py --mixed 0.998   # + mixed precision, with/without QAT

``--mixed F`` adds post-training mixed precision (``min_fidelity`` F: the fewest layers kept fp32
for int8 to keep a mean cosine of F) and the same after QAT. Their layers are chosen on 1,000
further STS-B sentences, not on the evaluation ones. Mixed precision after QAT compares the int8
model with the QAT model's own fp32 weights; the figures printed compare every model with the
original fp32 model.

Prints the CPU and ISA beside the figures; nothing is asserted.
"""

from __future__ import annotations

import argparse
import csv
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"


def _sentences(path: Path) -> list[str]:
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    out: list[str] = []
    for r in rows:
        out += [r["sentence1"], r["sentence2"]]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=2000, help="evaluation sentences")
    ap.add_argument("--train-rows", type=int, default=6000, help="QAT training sentences")
    ap.add_argument("--steps", type=int, default=300, help="QAT optimizer steps")
    ap.add_argument("--lr", type=float, default=2e-5)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--mixed", type=float, help="also mixed precision at this min_fidelity")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "qat-minilm"))
    a = ap.parse_args()
    if not STSB.is_file():
        raise SystemExit(f"{STSB} not found: this benchmark needs ../shared/data")
    import nlpress
    from nlpress.bench.env import environment
    from nlpress.bench.harness import BenchConfig, benchmark
    from nlpress.evaluate.fidelity import embedding_fidelity
    from nlpress.runtime import load

    env = environment()
    flags = ", ".join(k for k, v in (env.get("isa") or {}).items() if v) or "none"
    print(f"CPU: {env.get('cpu_model')}; ISA: {flags}; int8 kernel: {env.get('int8_kernel')}")
    sents = _sentences(STSB)
    evals, train = sents[: a.rows], sents[a.rows : a.rows + a.train_rows]
    work = Path(tempfile.mkdtemp(prefix="qat-"))
    (work / "eval.tsv").write_text("sentence\n" + "\n".join(evals) + "\n")
    (work / "train.tsv").write_text("sentence\n" + "\n".join(train) + "\n")
    select = sents[a.rows + a.train_rows : a.rows + a.train_rows + 1000]
    (work / "select.tsv").write_text("sentence\n" + "\n".join(select) + "\n")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    quick = BenchConfig(rounds=1, progress=False)
    common = dict(data=work / "eval.tsv", force=True, memory=False, bench=quick, limit=a.rows)
    nlpress.compress(recipe="int8", out=out / "int8", **common)
    qat_set = [f"qat.data={work / 'train.tsv'}", f"qat.max_steps={a.steps}", f"qat.lr={a.lr}"]
    qat = nlpress.compress(recipe="int8-qat", out=out / "int8-qat", overrides=qat_set, **common)
    models = {"int8 (post-training)": out / "int8", "int8-qat": qat.path}
    if a.mixed:
        sel = {**common, "data": work / "select.tsv", "limit": len(select)}
        mix = [f"quantize-dynamic-int8.min_fidelity={a.mixed}"]
        for name, recipe, sets in (
            ("int8-mixed", "int8", mix),
            ("int8-qat-mixed", "int8-qat", qat_set + mix),
        ):
            art = nlpress.compress(recipe=recipe, out=out / name, overrides=sets, **sel)
            mp = next(
                s["info"]["mixed_precision"]
                for s in art.metrics["steps"]
                if "mixed_precision" in (s.get("info") or {})
            )
            kept, n = len(mp["kept_fp32"]), mp["layers"]
            print(f"{name}: {kept} of {n} layers kept fp32 ({mp['ranking']} ranking)")
            models[name] = art.path
    info = qat.metrics["steps"][0]["info"]
    print(
        f"QAT: {info['train_steps']} steps of {info['batch_size']} on {len(train)} sentences, "
        f"{info['train_seconds']:.0f} s, final loss {info['final_loss']:.5f}"
    )
    fp32 = load("default")
    loaded = {name: load(path, spin=False) for name, path in models.items()}
    ref = fp32.run(evals)
    print(f"\nfidelity to fp32 on the first {len(evals)} STS-B train sentences")
    for name, p in loaded.items():
        f = embedding_fidelity(ref, p.run(evals))
        print(f"{name:22s} cosine mean {f['cosine_mean']:.5f}  min {f['cosine_min']:.5f}")
    preds = {"fp32 eager": fp32, **{n.split(" ")[0]: p for n, p in loaded.items()}}
    for seq_len in (128, None):
        res = benchmark(preds, evals, BenchConfig(rounds=a.rounds, seq_len=seq_len, progress=False))
        label = f"32 x {seq_len}" if seq_len else "batch 32, data lengths"
        print(f"\nthroughput, {label}, {a.rounds} interleaved rounds")
        for name, r in res.items():
            rel = r["throughput"] / res["int8"]["throughput"]
            frac = r.get("peak_fraction")
            print(
                f"{name:12s} {r['throughput']:8.1f} seq/s ±{100 * r['throughput_spread']:4.1f}%"
                f"  {rel:5.2f}x int8"
                + (f"  {100 * frac:.1f}% of {r['gemm_format']} peak" if frac else "")
            )


if __name__ == "__main__":
    main()
