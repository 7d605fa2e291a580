"""Mixed precision on the default model (all-MiniLM-L6-v2): ``--min-fidelity 0.998``.

Runs ``nlpress compress --recipe int8 --min-fidelity X`` on a deterministic part of STS-B train
(the first N pairs of ../shared/data/stsb/train.tsv; the built-in sentences when it is absent)
and prints what the search did (layers kept in fp32, the ranking, the fidelity on held-out texts,
models measured, seconds), the fidelity of the written model on all the evaluation texts, and
its throughput and latency against PyTorch fp32 eager measured in the same interleaved run.
Nothing is asserted: every figure is printed next to its target, as measured.

    .venv/bin/python benchmarks/mixed_minilm.py [--min-fidelity 0.998] [--rows 1000] [--rounds 11]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"


def nlpress(*args: str) -> dict:
    cmd = [sys.executable, "-m", "nlpress.cli", *args, "--json"]
    print("$", " ".join(["nlpress", *args]), file=sys.stderr)
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if res.returncode:
        sys.exit(f"command failed ({res.returncode})")
    return json.loads(res.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--min-fidelity", type=float, default=0.998)
    ap.add_argument("--rows", type=int, default=1000, help="STS-B train pairs used (the first N)")
    ap.add_argument("--rounds", type=int, default=11, help="interleaved benchmark rounds")
    ap.add_argument("--recipe", default="int8")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "mixed-minilm"))
    a = ap.parse_args()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    data = ["--data", str(STSB), "--limit", str(a.rows)] if STSB.is_file() else []
    m = nlpress(
        "compress", "--recipe", a.recipe, "--min-fidelity", str(a.min_fidelity),
        "--out", a.out, "--force", "--rounds", str(a.rounds), *data,
    )  # fmt: skip
    step = next(s for s in m["steps"] if "mixed_precision" in s["info"])
    mp = step["info"]["mixed_precision"]
    print("data:", f"first {a.rows} pairs of {STSB}" if data else "built-in sentences")
    print(
        f"search: {mp['ranking']} ranking, {len(mp['kept_fp32'])} of {mp['layers']} layers "
        f"kept fp32, {mp['models_measured']} models measured in {mp['seconds']} s "
        f"(step {step['seconds']} s)"
    )
    for t in mp["trace"]:
        print(f"  trace {t['ranking']:12s} kept {t['kept']:2d}: {mp['metric']} {t['fidelity']:.5f}")
    print("kept fp32:", ", ".join(mp["kept_fp32"]) or "none")
    top = sorted(mp["sensitivity"], key=lambda r: -r.get("quantize_one_loss", 0))[:8]
    print("most sensitive (quantized alone, loss = 1 - mean cosine):")
    for r in top:
        print(f"  {r.get('quantize_one_loss', float('nan')):.2e}  {r['layer']}")
    fid = m["result"]["fidelity"]
    r = m["ratios"]
    ok = "PASS" if fid["cosine_mean"] >= a.min_fidelity else "NOT MET"
    print(
        f"held-out {mp['metric']} {mp['fidelity']:.5f} on {mp['texts']['holdout']} texts; "
        f"all {m['data']['n']} evaluation rows: mean {fid['cosine_mean']:.5f} "
        f"min {fid['cosine_min']:.5f}  target >= {a.min_fidelity} {ok}"
    )
    b, q = m["baseline"], m["result"]
    print(
        f"throughput batch 32 (data lengths): fp32 eager {b['throughput']:.1f}/s, mixed "
        f"{q['throughput']:.1f}/s = {r['throughput_speedup']:.2f}x  target >= 4x "
        f"{'PASS' if r['throughput_speedup'] >= 4 else 'NOT MET'}"
    )
    print(f"latency p50 batch 1: {b['latency_p50_ms']:.2f} vs {q['latency_p50_ms']:.2f} ms = "
          f"{r['latency_speedup']:.2f}x")  # fmt: skip
    for extra in m.get("extra_benchmarks", []):
        er = extra["ratios"]
        print(
            f"at {extra['seq_len']} tokens: throughput {er['throughput_speedup']:.2f}x, "
            f"p50 latency {er['latency_speedup']:.2f}x"
        )
    print(f"size: {r['size_fraction']:.1%} of fp32; rounds {a.rounds}; shared 2-core machine")


if __name__ == "__main__":
    main()
