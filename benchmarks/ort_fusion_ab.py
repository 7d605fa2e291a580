"""A/B of ONNX Runtime graph optimizations for MiniLM (default model), fp32 and int8.

Builds four graphs with nlpress' own steps and times them interleaved (order alternating each
round) at batch 32 and several padded lengths, printing each graph's median sentences/s and its
speed relative to the session-optimized one:

  fp32 session       export -> ort-optimize(session)
  fp32 transformers  export -> ort-optimize(transformers)          (fused Attention)
  int8 session       export -> quantize-dynamic-int8 -> ort-optimize(session)   (recipe int8)
  int8 transformers  export -> ort-optimize(transformers) -> quantize-dynamic-int8  (QAttention)

ONNX Runtime's thread spinning is turned off in every session here, so sessions that wait do not
steal the cores from the one being timed.

    .venv/bin/python benchmarks/ort_fusion_ab.py [--rounds 30] [--lengths 24 52 128]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def build(tmp: Path) -> dict[str, Path]:
    from nlpress.data.readers import builtin_sentences
    from nlpress.export.onnx_export import export_onnx
    from nlpress.export.ort_optimize import ort_optimize
    from nlpress.models.loader import load_model
    from nlpress.quantize.dynamic import quantize_onnx_dynamic
    from nlpress.recipe import ExportOnnxConfig, OrtOptimizeConfig, QuantizeDynamicInt8Config
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    lm = load_model("default")
    sample = torch_predictor_from_loaded(lm, "ref", []).tokenize(builtin_sentences().texts[:8])
    cfg = lm.model.config.to_dict()
    raw = tmp / "raw.onnx"
    export_onnx(lm, raw, ExportOnnxConfig(), sample)
    sess, tf = OrtOptimizeConfig(mode="session"), OrtOptimizeConfig(mode="transformers")
    q = QuantizeDynamicInt8Config()
    out = {
        "fp32 session": tmp / "fs.onnx",
        "fp32 transformers": tmp / "ft.onnx",
        "int8 session": tmp / "is.onnx",
        "int8 transformers": tmp / "it.onnx",
    }
    ort_optimize(raw, out["fp32 session"], cfg, sess)
    ort_optimize(raw, out["fp32 transformers"], cfg, tf)
    quantize_onnx_dynamic(raw, tmp / "q.onnx", q)
    ort_optimize(tmp / "q.onnx", out["int8 session"], cfg, sess)
    quantize_onnx_dynamic(out["fp32 transformers"], out["int8 transformers"], q)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--lengths", type=int, nargs="+", default=[24, 52, 128])
    a = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as d:
        graphs = build(Path(d))
        sessions = {}
        for name, path in graphs.items():
            so = ort.SessionOptions()
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
            sessions[name] = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        print(f"{'graph':20s} " + " ".join(f"{'L=' + str(L):>18s}" for L in a.lengths))
        table: dict[str, list[str]] = {n: [] for n in sessions}
        for L in a.lengths:
            x = {
                "input_ids": rng.integers(1000, 20000, (32, L)),
                "attention_mask": np.ones((32, L), np.int64),
                "token_type_ids": np.zeros((32, L), np.int64),
            }
            times: dict[str, list[float]] = {n: [] for n in sessions}
            for s in sessions.values():
                s.run(None, x)
            names = list(sessions)
            for r in range(a.rounds):
                for n in names if r % 2 else names[::-1]:
                    t0 = time.perf_counter()
                    sessions[n].run(None, x)
                    times[n].append(time.perf_counter() - t0)
            for kind in ("fp32", "int8"):
                ref = np.median(times[f"{kind} session"])
                for n in names:
                    if n.startswith(kind):
                        med = np.median(times[n])
                        table[n].append(f"{32 / med:7.1f}/s x{ref / med:4.2f}")
        for n, cells in table.items():
            print(f"{n:20s} " + " ".join(f"{c:>18s}" for c in cells))


if __name__ == "__main__":
    main()
