"""Structured pruning figure on the default model (all-MiniLM-L6-v2): half the FFN neurons and a
third of the heads removed, physically.

Runs, on a deterministic part of STS-B train (the first N pairs of ../shared/data/stsb/train.tsv;
the built-in sentences when that file is absent):

1. ``nlpress compress --recipe prune-structured``: pruned PyTorch vs unpruned PyTorch fp32, one
   interleaved run (throughput at batch 32, lengths from the data and 128 tokens; Spearman);
2. the same with ``head_fraction=0`` (FFN neurons only), the variant plain transformers loads;
3. ONNX Runtime against ONNX Runtime: ``prune-structured`` + ``export-onnx`` + ``ort-optimize``,
   where compress also takes the unpruned model through the same export steps and benchmarks
   the two in one interleaved run (``metrics.json`` -> ``pruning.same_backend``);

and checks whether each saved model loads with plain ``transformers.AutoModel.from_pretrained``.
Nothing is asserted: every figure is printed next to its target, as measured.

    .venv/bin/python benchmarks/prune_minilm.py [--rows 500] [--rounds 9] [--out bench-results/prune-minilm]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"
TARGET = 1.6  # batch-32 throughput, pruned / unpruned, same backend, same run

CHAIN = """version: 1
name: prune-structured-onnx
steps:
  - prune-structured: {{score: {score}}}
  - export-onnx: {{}}
  - ort-optimize: {{}}
"""


def nlpress(*args: str) -> dict:
    cmd = [sys.executable, "-m", "nlpress.cli", *args, "--json"]
    print("$", " ".join(["nlpress", *args]), file=sys.stderr, flush=True)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"command failed ({res.returncode}): {res.stderr.strip().splitlines()[-1]}")
    return json.loads(res.stdout)


def plain_load(folder: str) -> str:
    """'yes' if plain transformers loads the folder, else the first line of its error."""
    code = (
        "import sys, transformers; transformers.logging.set_verbosity_error(); "
        "transformers.AutoModel.from_pretrained(sys.argv[1])"
    )
    res = subprocess.run([sys.executable, "-c", code, folder], capture_output=True, text=True)
    if res.returncode == 0:
        return "yes"
    last = [ln for ln in res.stderr.splitlines() if ln.strip()][-1:]
    return "no: " + (last[0][:120] if last else "?")


def row(name: str, value: float, ok: bool | None = None) -> str:
    mark = "" if ok is None else ("PASS" if ok else "NOT MET")
    return f"{name:58s} {value:8.3f}  {mark}"


def torch_run(label: str, out: str, data: list[str], rounds: int, sets: list[str]) -> list[str]:
    args = ["compress", "--recipe", "prune-structured", "--out", out, "--force"]
    args += ["--rounds", str(rounds), "--no-memory", *data]
    for s in sets:
        args += ["--set", s]
    m = nlpress(*args)
    b, r, step = m["baseline"], m["result"], m["steps"][0]["info"]
    lines = [f"\n== {label}: PyTorch pruned vs PyTorch fp32 (same run)"]
    lines.append(
        f"heads {step['heads_per_layer']}, FFN {step['ffn_per_layer']}, parameters "
        f"{step['parameter_fraction']:.3f} of the original; size "
        f"{r['size_bytes'] / 1e6:.1f} vs {b['size_bytes'] / 1e6:.1f} MB"
    )
    lines.append(
        f"throughput {r['throughput']:.1f} (±{r['throughput_spread']:.0%}) vs "
        f"{b['throughput']:.1f} (±{b['throughput_spread']:.0%}) seq/s"
    )
    t = m["ratios"]["throughput_speedup"]
    lines.append(row(f"throughput ratio, batch 32, data lengths (>= {TARGET})", t, t >= TARGET))
    for extra in m.get("extra_benchmarks", []):
        t = extra["ratios"]["throughput_speedup"]
        lines.append(
            row(f"throughput ratio, batch 32 x {extra['seq_len']} (>= {TARGET})", t, t >= TARGET)
        )
    lines.append(row("batch-1 p50 latency ratio, data lengths", m["ratios"]["latency_speedup"]))
    if "spearman" in b.get("quality", {}):
        bq, rq = b["quality"]["spearman"], r["quality"]["spearman"]
        lines.append(f"STS-B Spearman x100: unpruned {bq:.2f}, pruned {rq:.2f} (no recovery)")
    lines.append(f"mean cosine to unpruned: {r['fidelity'].get('cosine_mean', float('nan')):.4f}")
    lines.append(f"plain transformers AutoModel.from_pretrained: {plain_load(out)}")
    return lines


def ort_run(out: Path, data: list[str], rounds: int, score: str) -> list[str]:
    """Pruned ONNX vs unpruned ONNX: compress measures it itself (``pruning.same_backend``)."""
    recipe = out.parent / "prune-structured-onnx.yaml"
    recipe.write_text(CHAIN.format(score=score))
    pruned = str(out) + "-onnx"
    m = nlpress(
        "compress",
        "--recipe",
        str(recipe),
        "--out",
        pruned,
        "--force",
        "--rounds",
        str(rounds),
        "--no-memory",
        *data,
    )
    same = m["pruning"]["same_backend"]
    p, u = same["result"], same["unpruned"]
    t = same["ratios"]["throughput_speedup"]
    return [
        "\n== ONNX Runtime pruned vs ONNX Runtime unpruned (same export steps, same run)",
        f"throughput {p['throughput']:.1f} (±{p['throughput_spread']:.0%}) vs "
        f"{u['throughput']:.1f} (±{u['throughput_spread']:.0%}) seq/s; size "
        f"{p['size_bytes'] / 1e6:.1f} vs {u['size_bytes'] / 1e6:.1f} MB",
        row(f"throughput ratio, batch 32, data lengths (>= {TARGET})", t, t >= TARGET),
        row("batch-1 p50 latency ratio, data lengths", same["ratios"]["latency_speedup"]),
        row(
            "ONNX pruned vs PyTorch fp32 unpruned, batch 32 (for reference)",
            m["ratios"]["throughput_speedup"],
        ),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500, help="STS-B train pairs used (the first N)")
    ap.add_argument("--rounds", type=int, default=9, help="interleaved benchmark rounds")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "prune-minilm"))
    ap.add_argument("--skip-ort", action="store_true", help="PyTorch comparisons only")
    ap.add_argument("--score", default="magnitude", choices=["magnitude", "activation"])
    a = ap.parse_args()
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(STSB), "--limit", str(a.rows)] if STSB.is_file() else []
    part = f"first {a.rows} pairs of {STSB}" if data else "built-in sentences (no STS-B file)"
    score = [f"prune-structured.score={a.score}"]
    lines = torch_run("FFN 50% + a third of the heads", str(out), data, a.rounds, score)
    lines += torch_run(
        "FFN 50% only (head_fraction=0)",
        str(out) + "-ffn",
        data,
        a.rounds,
        ["prune-structured.head_fraction=0", *score],
    )
    if not a.skip_ort:
        lines += ort_run(out, data, a.rounds, a.score)
    print(f"score: {a.score}")
    print(f"data: {part}; rounds {a.rounds}; shared machine: compare ratios, not absolute speed")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
