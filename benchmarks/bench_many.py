"""Benchmark several models or artifacts in ONE interleaved run; ratios against the first.

``nlpress bench`` compares two; after a set of compress runs this puts them all in the same
rounds (order rotated each round), which on a shared, noisy machine is the only comparison whose
ratios hold. Prints throughput (batch 32) and p50 latency (batch 1) with their spread.

    .venv/bin/python benchmarks/bench_many.py default out-a out-b [--data FILE --limit N]
        [--rounds 15] [--seq-len 128] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    from nlpress.bench.harness import BenchConfig, benchmark, ratios
    from nlpress.evaluate.api import bench_texts, load_eval_data
    from nlpress.runtime import load

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+", help="model folders, artifacts or 'default'; first = ref")
    ap.add_argument("--data")
    ap.add_argument("--limit", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--seq-len", type=int)
    ap.add_argument("--json", help="write the raw results here")
    ap.add_argument("--threads", type=int, default=0, help="threads per model (0: the default)")
    a = ap.parse_args()
    # no busy-waiting ORT threads: they would steal the cores from the other models
    preds = {f"{i}:{m}": load(m, spin=False, threads=a.threads) for i, m in enumerate(a.models)}
    task = next(iter(preds.values())).task
    texts = bench_texts(task, load_eval_data(task, a.data, a.limit, {}))
    cfg = BenchConfig(rounds=a.rounds, seq_len=a.seq_len, progress=True)
    res = benchmark(preds, list(texts), cfg)
    ref = next(iter(preds))
    rat = ratios(res, ref)
    print(
        f"rounds {a.rounds}, batch 32, seq_len {a.seq_len or 'data'}, threads "
        f"{a.threads or 'default'}; ratios vs {ref}"
    )
    for key, r in res.items():
        x = rat.get(key, {"throughput_speedup": 1.0, "latency_speedup": 1.0})
        print(
            f"{key:48s} {r['backend']:12s} {r['throughput']:7.1f} seq/s "
            f"(±{r['throughput_spread']:.0%}) x{x['throughput_speedup']:.2f}   "
            f"p50 {r['latency_p50_ms']:7.2f} ms x{x['latency_speedup']:.2f}   "
            f"{r['size_bytes'] / 1e6:6.1f} MB"
        )
    if a.json:
        Path(a.json).write_text(json.dumps({"results": res, "ratios": rat}, indent=2))


if __name__ == "__main__":
    main()
