"""Batch-1 latency of the int8 recipe on the default model against PyTorch fp32 eager, each model
in its own process, processes alternated, with ONNX Runtime's threads spinning (its default) or not.

Why its own script: the interleaved harness (``nlpress bench``, ``int8_vs_ort.py``) turns ORT's
thread spinning off, because a spinning session keeps burning cores after its run and would slow
the model timed next. That is right for comparing models in one process, but it is not how ORT
runs by default, and at batch 1 the spin-wait is what hides the thread wake-up. Here each
candidate runs alone in a fresh process (60 STS-B sentences x 6 rounds, the first round
discarded), candidates alternate over ``--repeats`` processes, and the median of the per-process
p50s is reported.

    .venv/bin/python benchmarks/latency_b1_minilm.py [--repeats 3] [--onnx out-int8/model.onnx]

Measured 2026-11-28 on the quiet 2-core machine (``--onnx`` = a recipe ``int8`` artifact, 3
repeats): PyTorch fp32 eager p50 7.71 ms (7.67-7.87); ORT int8 spinning 1.003 ms (0.87-1.04) =
7.69x; ORT int8 without spinning 1.374 ms (1.28-1.52) = 5.61x. Target: >= 6x fp32 eager.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"


def _texts() -> list[str]:
    from nlpress.data.readers import builtin_sentences, read_data

    if STSB.is_file():
        return list(read_data(STSB, limit=420).texts)[::7][:60]
    return list(builtin_sentences().texts)[:60]


def child(which: str, onnx: str) -> None:
    """One candidate in this process: print its batch-1 p50 in ms."""
    import numpy as np

    from nlpress.models.loader import load_model

    lm = load_model("default")
    encs = [dict(lm.tokenizer([t], return_tensors="np")) for t in _texts()]
    times = []
    if which == "torch":
        import torch

        model = lm.model.eval()
        with torch.inference_mode():
            for _ in range(6):
                for e in encs:
                    inputs = {k: torch.from_numpy(np.asarray(v)) for k, v in e.items()}
                    t0 = time.perf_counter()
                    model(**inputs)
                    times.append(time.perf_counter() - t0)
    else:
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if which == "ort-spin" else "0"
        )
        sess = ort.InferenceSession(onnx, so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        for _ in range(6):
            for e in encs:
                feed = {n: np.asarray(e[n], dtype=np.int64) for n in names}
                t0 = time.perf_counter()
                sess.run(None, feed)
                times.append(time.perf_counter() - t0)
    print(statistics.median(times[len(encs) :]) * 1e3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--onnx", help="an int8 model.onnx; default: build recipe int8 now")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(*a.child)
    with tempfile.TemporaryDirectory(prefix="nlpress-b1-") as tmp:
        onnx = a.onnx
        if onnx is None:
            out = Path(tmp) / "int8"
            cmd = [sys.executable, "-m", "nlpress.cli", "compress", "--model", "default"]
            cmd += ["--recipe", "int8", "--out", str(out), "--rounds", "1", "--no-memory"]
            subprocess.run(cmd, check=True, capture_output=True)
            onnx = str(out / "model.onnx")
        p50: dict[str, list[float]] = {"torch": [], "ort-spin": [], "ort-nospin": []}
        for _ in range(a.repeats):
            for which in p50:
                cmd = [sys.executable, __file__, "--child", which, onnx]
                res = subprocess.run(cmd, check=True, capture_output=True, text=True)
                p50[which].append(float(res.stdout.strip().splitlines()[-1]))
    base = statistics.median(p50["torch"])
    for which, v in p50.items():
        med = statistics.median(v)
        spread = f"{min(v):.2f}-{max(v):.2f}"
        print(f"{which:11s} p50 {med:6.3f} ms ({spread})  {base / med:5.2f}x fp32 eager")
    print("target: batch-1 p50 >= 6x PyTorch fp32 eager")


if __name__ == "__main__":
    main()
