"""The machine's own ceiling: measured GEMM peaks, a model's operation count, the fraction reached.

A speedup against fp32 eager says nothing about how much is left on the table. Every benchmark
therefore also states GOP/s achieved and the fraction of this machine's peak for the model's
number format, so that "2.4x" can be read as "41% of what these cores can do in int8".

Why measured, not from a spec sheet: the peak that matters is what the runtime's own kernels
reach on these cores with these threads (turbo, SMT siblings, a neighbour on a shared VM, and on
CPUs without VNNI the exact U8U8 int8 path of :mod:`nlpress.runtime.isa`). So the peak is one
large ONNX Runtime MatMul (fp32) and MatMulInteger (uint8 x int8, run as nlpress runs int8) at
2048 x 1024 x 1024, best of a few calls after warm-up, measured once per machine, thread count and
ORT version and cached in ``$NLPRESS_CACHE_DIR`` (default ``~/.cache/nlpress``).

Operation count: 2 x multiply-adds of the matrix products, which are nearly all of a
transformer's work: every linear layer (read from the model's own weights, so pruned models are
counted as they are) plus the two attention products (2 x T x attention width per token and
layer, from the config). LayerNorm, softmax and GELU are left out; they are a few percent of the
operations though not of the time, which is part of what the fraction shows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PEAK_SHAPE = (2048, 1024, 1024)  # M, K, N: about 4.3 GOP a call, large enough for full tiles
PEAK_VERSION = 1  # bump when the measurement changes, so old cache entries are not reused
# ONNX ops whose second input is a constant weight (K, N) and that do one GEMM with it
WEIGHT_OPS = {
    "MatMul": "fp32",
    "Gemm": "fp32",
    "MatMulInteger": "int8",
    "DynamicQuantizeMatMul": "int8",
    "MatMulIntegerToFloat": "int8",
    "QLinearMatMul": "int8",
    "QAttention": "int8",
    "Attention": "fp32",
    "MatMulNBits": "int4",
}


def cache_dir() -> Path:
    return Path(os.environ.get("NLPRESS_CACHE_DIR") or Path.home() / ".cache" / "nlpress")


def _session(model, threads: int):
    import onnxruntime as ort

    from nlpress.runtime.isa import configure_int8_session

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    configure_int8_session(so)
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def _gemm_model(op: str, k: int, n: int):
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if op == "MatMul":
        w, a_type, y_type = rng.standard_normal((k, n), dtype=np.float32), TensorProto.FLOAT, None
    else:
        w = rng.integers(-127, 128, (k, n), dtype=np.int8)
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "w"], ["y"])],
        "peak",
        [helper.make_tensor_value_info("a", a_type, ["m", k])],
        [helper.make_tensor_value_info("y", y_type or TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def _best_gops(op: str, threads: int, calls: int = 5) -> float:
    m, k, n = PEAK_SHAPE
    sess = _session(_gemm_model(op, k, n), threads)
    rng = np.random.default_rng(1)
    a = (
        rng.standard_normal((m, k), dtype=np.float32)
        if op == "MatMul"
        else rng.integers(0, 256, (m, k), dtype=np.uint8)
    )
    sess.run(None, {"a": a})  # warm-up: packing of the weight, thread pool start
    best = float("inf")
    for _ in range(calls):
        t0 = time.perf_counter()
        sess.run(None, {"a": a})
        best = min(best, time.perf_counter() - t0)
    return 2.0 * m * k * n / best / 1e9


def _key(threads: int) -> str:
    from nlpress.bench.env import _cpuinfo, _version
    from nlpress.runtime.isa import int8_kernel

    cpu = _cpuinfo().get("model name", "")
    raw = f"{PEAK_VERSION}|{cpu}|{int8_kernel()}|{threads}|{_version('onnxruntime')}"
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def machine_peak(threads: int, *, refresh: bool = False) -> dict[str, Any]:
    """fp32 and int8 GEMM GOP/s of this machine at ``threads`` threads (cached per machine)."""
    from nlpress.bench.env import _cpuinfo
    from nlpress.runtime.isa import int8_kernel

    path = cache_dir() / "peak.json"
    key = _key(threads)
    try:
        cached = json.loads(path.read_text())
        if not isinstance(cached, dict):
            cached = {}
    except (OSError, ValueError):
        cached = {}
    if not refresh and isinstance(cached.get(key), dict):
        return cached[key]
    log.info("measuring this machine's fp32 and int8 GEMM peak (%d threads, once)", threads)
    peak = {
        "fp32_gops": round(_best_gops("MatMul", threads), 1),
        "int8_gops": round(_best_gops("MatMulInteger", threads), 1),
        "shape": list(PEAK_SHAPE),
        "threads": threads,
        "int8_kernel": int8_kernel(),
        "cpu_model": _cpuinfo().get("model name"),
        "how": "ONNX Runtime MatMul / MatMulInteger (u8 x s8), best of 5 calls",
        "load_average": round(os.getloadavg()[0], 2),  # above the thread count: other work ran
        "measured": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    cached[key] = peak
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cached, indent=1))
        tmp.replace(path)  # atomic: concurrent benchmarks never read half a file
    except OSError as e:  # a read-only home only costs re-measuring next time
        log.debug("could not cache the peak in %s: %s", path, e)
    return peak


_REFRESHED: set[str] = set()  # keys measured again in this process (at most once each)


def peak_beaten(threads: int, fmt: str, achieved: float) -> dict[str, Any]:
    """The peak for ``threads``, measured again once when a model's own GEMMs went faster than it
    (``achieved`` GOP/s in format ``fmt``): a cached peak measured while other work shared the
    cores is too low, and every fraction read against it would exceed 100%."""
    peak = machine_peak(threads)
    top = peak_for(peak, fmt)
    key = _key(threads)
    if top and achieved > top and key not in _REFRESHED:
        _REFRESHED.add(key)
        log.info(
            "%.1f GOP/s beat the cached %s peak of %.1f (measured at load %s): measuring it again",
            achieved,
            fmt,
            top,
            peak.get("load_average", "?"),
        )
        peak = machine_peak(threads, refresh=True)
    return peak


def _attention(config: dict | None) -> tuple[int, int]:
    """(layers, attention width) from a model config dict; (0, 0) where it does not say."""
    if not config:
        return 0, 0
    layers = config.get("num_hidden_layers") or config.get("n_layer") or 0
    heads = config.get("num_attention_heads") or config.get("n_head") or 0
    hidden = config.get("hidden_size") or config.get("n_embd") or 0
    head_dim = config.get("head_dim") or (hidden // heads if heads else 0)
    return int(layers), int(heads * head_dim)


def onnx_profile(path: Path, config: dict | None) -> dict[str, Any]:
    """Multiply-adds per token of an ONNX model's weight GEMMs, and its GEMM number format."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    dims = {i.name: list(i.dims) for i in graph.initializer}
    macs, formats = 0, set()
    for node in graph.node:
        fmt = WEIGHT_OPS.get(node.op_type)
        if fmt is None or len(node.input) < 2:
            continue
        shape = dims.get(node.input[1])
        if node.op_type == "MatMulNBits":
            attrs = {a.name: a.i for a in node.attribute}
            macs += attrs.get("K", 0) * attrs.get("N", 0)
            formats.add(fmt)
        elif shape and len(shape) == 2:
            macs += shape[0] * shape[1]
            formats.add(fmt)
    layers, width = _attention(config)
    return {"linear_macs": macs, "attention_macs": layers * width, "format": _format(formats)}


def torch_profile(module, config: dict | None) -> dict[str, Any]:
    """The same for a PyTorch model: every linear layer (float, int8 or int4) it holds."""
    import torch

    macs, formats = 0, set()
    for m in module.modules():
        if isinstance(m, torch.nn.Linear):
            macs += m.in_features * m.out_features
            formats.add("bf16" if m.weight.dtype == torch.bfloat16 else "fp32")
        elif hasattr(m, "in_features") and hasattr(m, "out_features") and not list(m.children()):
            macs += int(m.in_features) * int(m.out_features)  # quantized / weight-only linears
            bits = getattr(m, "bits", 8)
            formats.add("int4" if bits == 4 else "int8")
    layers, width = _attention(config)
    return {"linear_macs": macs, "attention_macs": layers * width, "format": _format(formats)}


def _format(formats: set[str]) -> str:
    """The format whose peak bounds the model: its fastest GEMMs (int8 over fp32)."""
    for f in ("int4", "int8", "bf16"):
        if f in formats:
            return f
    return "fp32"


def gop(profile: dict[str, Any], batch: int, seq_len: int) -> float:
    """Giga-operations (2 x multiply-adds) of one forward pass at ``batch`` x ``seq_len``."""
    per_token = profile["linear_macs"] + profile["attention_macs"] * seq_len
    return 2.0 * batch * seq_len * per_token / 1e9


def peak_for(peak: dict[str, Any], fmt: str) -> float | None:
    """The measured peak that bounds a format: the int8 GEMM for int8; the fp32 GEMM for fp32
    and for weight-only int4 and bf16, whose kernels multiply in floating point (bf16 can beat
    it on CPUs with AVX512_BF16 or AMX, and then reads above 100%)."""
    return peak.get("int8_gops") if fmt == "int8" else peak.get("fp32_gops")
