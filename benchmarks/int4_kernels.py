"""int4 weight-only matmul kernels on this CPU: PyTorch ``_weight_int4pack_mm_for_cpu`` vs ONNX
Runtime ``MatMulNBits`` vs the fp32 matmul, on SmolLM2-sized layers, interleaved rounds, medians.

Rows ``M`` = 1 is one decode step at batch 1; ``M`` = 512 is a prefill. The weights are random
int4 codes with group size 64 (what SmolLM2's 576-wide layers take); the error column is the
relative error against the dequantized fp32 product (bf16 activations cost about 3e-3).

    PYTHONPATH=src .venv/bin/python benchmarks/int4_kernels.py [--rounds 15]
"""

# ruff: noqa: B023  (the lambdas are timed and dropped within the same loop iteration)
from __future__ import annotations

import argparse

import numpy as np
import torch


def _ort_session(codes, scales, n, k, g, accuracy_level):
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from nlpress.quantize.primitives import pack_int4

    b = pack_int4(codes.to(torch.uint8)).reshape(n, k // g, g // 2).numpy()
    node = helper.make_node(
        "MatMulNBits", ["A", "B", "scales"], ["Y"], domain="com.microsoft",
        K=k, N=n, bits=4, block_size=g, accuracy_level=accuracy_level,
    )  # fmt: skip
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, ["M", k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["M", n])],
        initializer=[
            numpy_helper.from_array(b, "B"),
            numpy_helper.from_array(scales.numpy().reshape(-1).astype(np.float32), "scales"),
        ],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = torch.get_num_threads()
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def main() -> None:
    from nlpress.bench.harness import interleaved_timings, summarize

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=15)
    args = p.parse_args()
    g = 64
    torch.manual_seed(0)
    print(f"threads {torch.get_num_threads()}; group {g}; medians of {args.rounds} rounds (us)")
    for n, k in ((1536, 576), (576, 1536)):
        codes = torch.randint(0, 16, (n, k), dtype=torch.int32)
        scales = torch.rand(n, k // g) + 0.5
        w = (codes.float() - 8) * scales.repeat_interleave(g, 1)  # (n, k), zero point 8
        packed = torch.ops.aten._convert_weight_to_int4pack_for_cpu(codes, 2)
        sz = torch.stack([scales.t(), torch.zeros_like(scales.t())], -1).contiguous()
        sz16 = sz.to(torch.bfloat16)
        sessions = {lvl: _ort_session(codes, scales, n, k, g, lvl) for lvl in (0, 4)}
        for m in (1, 512):
            x = torch.randn(m, k)
            xn = x.numpy()
            ref = x @ w.t()
            fns = {
                "fp32 matmul": lambda x=x: x @ w.t(),
                "torch int4 (fp32 act)": lambda x=x: torch.ops.aten._weight_int4pack_mm_for_cpu(
                    x, packed, g, sz
                ),
                "torch int4 (bf16 act)": lambda x=x: torch.ops.aten._weight_int4pack_mm_for_cpu(
                    x.bfloat16(), packed, g, sz16
                ).float(),
                "ORT MatMulNBits acc 0": lambda: sessions[0].run(None, {"A": xn})[0],
                "ORT MatMulNBits acc 4": lambda: sessions[4].run(None, {"A": xn})[0],
            }
            reps = 50 if m == 1 else 3

            def many(f, reps=reps):
                return lambda: [f() for _ in range(reps)]

            t = interleaved_timings({k_: many(f) for k_, f in fns.items()}, args.rounds, 1)
            base = summarize(t["fp32 matmul"])["median"]
            print(f"\nlayer {n}x{k}, M={m}")
            for name, f in fns.items():
                med = summarize(t[name])["median"]
                y = torch.as_tensor(np.asarray(f())).float()
                err = float((y - ref).norm() / ref.norm())
                print(
                    f"  {name:24} {1e6 * med / reps:9.1f} us  {base / med:5.2f}x  rel err {err:.1e}"
                )


if __name__ == "__main__":
    main()
