"""What int8 really does on this CPU: exactness and speed of ORT's int8 GEMM formats, and the
default model's int8 fidelity and throughput with and without nlpress's exact mode.

Part 1, one MatMulInteger at M x K x N (default 2048^3) against an int64 numpy reference:
  * u8 x s8, ORT default session            (vpmaddubsw without VNNI: int16 pair saturation)
  * u8 x s8, session.x64quantprecision=1     (nlpress's default where the CPU lacks VNNI)
  * u8 x u8 weights                          (the exact AVX2 path, stored that way)
  * u8 x s7 weights (reduce_range)           (cannot saturate, loses a bit of every weight)
Part 2, the default MiniLM through recipe int8 (built once), then the same artifact run with
exact int8 (nlpress.load) and with ORT's default session, interleaved at 32 x 128 and at batch 32 of
the data's lengths; mean / min cosine to PyTorch fp32 on the first --rows STS-B sentences.

    .venv/bin/python benchmarks/int8_isa.py [--size 2048] [--rows 2000] [--rounds 7]

Prints the CPU model and ISA flags beside every figure; nothing is asserted.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"


def _session(w: np.ndarray, k: int, precise: bool, threads: int):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["a", "w"], ["y"])],
        "mmi",
        [helper.make_tensor_value_info("a", TensorProto.UINT8, ["m", k])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    if precise:
        so.add_session_config_entry("session.x64quantprecision", "1")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def gemm_part(size: int, threads: int, calls: int) -> None:
    rng = np.random.default_rng(0)
    # activations as dynamic quantization makes them (zero point near 128 for centred data)
    a = np.clip(rng.normal(128, 60, (size, size)), 0, 255).astype(np.uint8)
    w8 = np.clip(rng.normal(0, 50, (size, size)), -127, 127).astype(np.int8)
    variants = {
        "u8 x s8, ORT default": (w8, False),
        "u8 x s8, x64quantprecision (nlpress)": (w8, True),
        "u8 x u8 weights": ((w8.astype(np.int16) + 128).astype(np.uint8), False),
        "u8 x s7 (reduce_range)": ((w8 // 2).astype(np.int8), False),
    }
    print(f"\nMatMulInteger {size}^3, {threads} threads, best of {calls} calls")
    print(f"{'variant':40s} {'GOP/s':>8s} {'max |err|':>12s} {'max |out|':>12s}")
    for name, (w, precise) in variants.items():
        sess = _session(w, size, precise, threads)
        got = sess.run(None, {"a": a})[0].astype(np.int64)
        ref = a.astype(np.int64) @ w.astype(np.int64)
        best = float("inf")
        for _ in range(calls):
            t0 = time.perf_counter()
            sess.run(None, {"a": a})
            best = min(best, time.perf_counter() - t0)
        err = int(np.abs(got - ref).max())
        print(f"{name:40s} {2 * size**3 / best / 1e9:8.1f} {err:12d} {int(np.abs(ref).max()):12d}")


def model_part(rows: int, rounds: int) -> None:
    import nlpress
    from nlpress.bench.harness import BenchConfig, benchmark
    from nlpress.data.readers import builtin_sentences, read_data
    from nlpress.evaluate.fidelity import embedding_fidelity
    from nlpress.runtime import load
    from nlpress.runtime.predictor import OrtPredictor

    if STSB.is_file():
        d = read_data(STSB, limit=rows // 2 + 1)
        texts = (list(d.texts) + list(d.pairs or []))[:rows]
        source = f"first {len(texts)} sentences of {STSB.name} (STS-B train)"
    else:
        texts, source = list(builtin_sentences().texts), "built-in sentences"
    out = Path(tempfile.mkdtemp(prefix="int8-isa-")) / "int8"
    nlpress.compress(
        recipe="int8",
        out=out,
        force=True,
        memory=False,
        progress=False,
        bench=BenchConfig(rounds=1, progress=False),
    )
    fp32 = load("default")
    exact = load(out, spin=False)
    meta = nlpress.artifact.read_meta(out)
    fast = OrtPredictor(
        out / meta["model_file"],
        tokenizer=exact.tokenizer,
        task=exact.task,
        input_names=exact.input_names,
        name="ort-default",
        spin=False,
        exact_int8=False,
    )
    ref = fp32.run(texts)
    print(f"\nMiniLM recipe int8, fidelity on {source}")
    for name, p in (("exact (nlpress)", exact), ("ORT default session", fast)):
        f = embedding_fidelity(ref, p.run(texts))
        print(f"{name:22s} cosine mean {f['cosine_mean']:.4f}  min {f['cosine_min']:.4f}")
    preds = {"fp32 eager": fp32, "int8 exact": exact, "int8 ORT default": fast}
    for seq_len in (128, None):
        cfg = BenchConfig(rounds=rounds, seq_len=seq_len, progress=False, peak=True)
        res = benchmark(preds, texts, cfg)
        label = f"32 x {seq_len}" if seq_len else "batch 32, data lengths"
        print(f"\nthroughput, {label}, {rounds} interleaved rounds (median seq/s, IQR/median)")
        base = res["fp32 eager"]["throughput"]
        for name, r in res.items():
            frac = r.get("peak_fraction")
            print(
                f"{name:18s} {r['throughput']:8.1f} ±{100 * r['throughput_spread']:4.1f}%  "
                f"{r['throughput'] / base:5.2f}x fp32  "
                f"{r.get('gops', float('nan')):7.1f} GOP/s"
                + (f" ({100 * frac:.1f}% of {r['gemm_format']} peak)" if frac else "")
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calls", type=int, default=5)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--skip-model", action="store_true")
    a = ap.parse_args()
    from nlpress.bench.env import environment

    env = environment()
    flags = ", ".join(k for k, v in (env.get("isa") or {}).items() if v) or "none"
    print(f"CPU: {env.get('cpu_model')}; ISA: {flags}; int8 kernel: {env.get('int8_kernel')}")
    print(f"onnxruntime {env.get('onnxruntime')}, python {sys.version.split()[0]}")
    gemm_part(a.size, a.threads, a.calls)
    if not a.skip_model:
        model_part(a.rows, a.rounds)


if __name__ == "__main__":
    main()
