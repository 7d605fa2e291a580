"""Acceptance benchmark for the int8 recipe on the default model (all-MiniLM-L6-v2).

Runs ``nlpress compress`` (recipe int8) on a deterministic part of STS-B train (first N pairs of
../shared/data/stsb/train.tsv; the built-in sentences when that file is absent), then
``nlpress eval`` of the fp32 model and of the artifact on the same part, and prints every figure
next to its target. Nothing is asserted: the numbers are reported as measured, with their spread.

    .venv/bin/python benchmarks/int8_minilm.py [--rows 1500] [--rounds 15] [--out bench-results/int8-minilm]
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
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"command failed ({res.returncode}): {res.stderr.strip().splitlines()[-1]}")
    return json.loads(res.stdout)


def check(name: str, value: float, target: str, ok: bool) -> str:
    return f"{name:44s} {value:10.4g}   target {target:12s} {'PASS' if ok else 'NOT MET'}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1500, help="STS-B train pairs used (the first N)")
    ap.add_argument("--rounds", type=int, default=15, help="interleaved benchmark rounds")
    ap.add_argument("--out", default=str(ROOT / "bench-results" / "int8-minilm"))
    a = ap.parse_args()
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)

    data = ["--data", str(STSB), "--limit", str(a.rows)] if STSB.is_file() else []
    part = f"first {a.rows} pairs of {STSB}" if data else "built-in sentences (no STS-B file found)"
    m = nlpress(
        "compress", "--recipe", "int8", "--out", a.out, "--force", "--rounds", str(a.rounds), *data
    )
    base, res = m["baseline"], m["result"]
    rows = [
        check(
            "throughput speedup, batch 32, data lengths",
            m["ratios"]["throughput_speedup"],
            ">= 3.8x",
            m["ratios"]["throughput_speedup"] >= 3.8,
        ),
        check(
            "batch-1 p50 latency speedup, data lengths",
            m["ratios"]["latency_speedup"],
            ">= 3.5x",
            m["ratios"]["latency_speedup"] >= 3.5,
        ),
    ]
    for extra in m.get("extra_benchmarks", []):
        r = extra["ratios"]
        rows += [
            check(
                f"throughput speedup, batch 32 x {extra['seq_len']}",
                r["throughput_speedup"],
                ">= 3.8x",
                r["throughput_speedup"] >= 3.8,
            ),
            check(
                f"batch-1 p50 latency speedup, 1 x {extra['seq_len']}",
                r["latency_speedup"],
                ">= 3.5x",
                r["latency_speedup"] >= 3.5,
            ),
        ]
    fid = res["fidelity"]
    rows += [
        check(
            "artifact size / fp32 size",
            m["ratios"]["size_fraction"],
            "<= 0.26",
            m["ratios"]["size_fraction"] <= 0.26,
        ),
        check("mean cosine to fp32", fid["cosine_mean"], ">= 0.992", fid["cosine_mean"] >= 0.992),
        check("min cosine to fp32", fid["cosine_min"], ">= 0.96", fid["cosine_min"] >= 0.96),
    ]
    if data:
        e_fp32 = nlpress("eval", "default", *data)
        e_int8 = nlpress("eval", a.out, *data)
        drop = e_fp32["quality"]["spearman"] - e_int8["quality"]["spearman"]
        rows.append(
            check("STS-B Spearman drop (points, nlpress eval)", drop, "<= 1.0", drop <= 1.0)
        )
        print(
            f"STS-B Spearman x100 on {part}: fp32 {e_fp32['quality']['spearman']:.2f}, "
            f"int8 {e_int8['quality']['spearman']:.2f}"
        )
    print(f"data: {part}; rounds {a.rounds}; threads {m['bench']['threads']}")
    print(
        f"fp32 eager: {base['throughput']:.1f} seq/s (±{base['throughput_spread']:.0%}), p50 {base['latency_p50_ms']:.2f} ms; "
        f"int8: {res['throughput']:.1f} seq/s (±{res['throughput_spread']:.0%}), p50 {res['latency_p50_ms']:.2f} ms"
    )
    for extra in m.get("extra_benchmarks", []):
        b, r = extra["baseline"], extra["result"]
        print(
            f"at {extra['seq_len']} tokens: fp32 {b['throughput']:.1f} seq/s, int8 {r['throughput']:.1f} seq/s; "
            f"p50 {b['latency_p50_ms']:.2f} vs {r['latency_p50_ms']:.2f} ms"
        )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
