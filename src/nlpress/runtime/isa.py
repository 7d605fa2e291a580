"""What this CPU's int8 kernels do, and the ONNX Runtime session settings that keep int8 exact.

Why this module exists: on x86-64 CPUs without a VNNI instruction (AMD Zen 3 and older, Intel
before Cascade Lake, any AVX-512 CPU without AVX512_VNNI) ONNX Runtime's U8S8 GEMM multiplies
pairs of uint8 activations and int8 weights with ``vpmaddubsw``, whose int16 pair sums saturate:
255 * 127 * 2 = 64,770 > 32,767. Measured here on a Zen 3 against an int64 reference, MLAS's
U8S8 MatMulInteger at 2048^3 was off by up to 224,523 on outputs of about 2.2M, and the tiny
test models' int8 SQNR fell from above 25 dB to 20 dB. VNNI (``vpdpbusd``) accumulates in
int32 and is exact; so is the U8U8 path on AVX2, which widens to int16 before ``vpmaddwd``.

ONNX Runtime's own remedy is the session option ``session.x64quantprecision``: at load time its
``Avx2WeightS8ToU8Transformer`` rewrites the int8 weights of QAttention, DynamicQuantizeMatMul,
MatMulIntegerToFloat, MatMulInteger, QLinearMatMul, QGemm and QLinearConv to uint8 (skipping
weights that fit in 7 bits, which cannot saturate), so every int8 GEMM runs the exact U8U8
kernel. The artifact on disk keeps the int8 weights that are fastest on VNNI CPUs, and a CPU
without VNNI pays the U8U8 speed (measured in ``benchmarks/int8_isa.py``) instead of silently
losing accuracy. We set it only where our own ISA check says the pairs saturate: on a VNNI CPU
ORT's coarser check may still convert, which would slow the exact VNNI path for nothing.

``reduce_range`` (7-bit weights) avoids saturation too, but it throws away a bit of every
weight on every CPU: on the Zen 3 it gave the demo a lower mean cosine (0.9914) than saturating
int8 (0.9922), while exact U8U8 keeps full 8-bit weights.
"""

from __future__ import annotations

import functools
import platform
from pathlib import Path

# One key of ORT's session config (onnxruntime_session_options_config_keys.h,
# kOrtSessionOptionsAvx2PrecisionMode): use U8U8 instead of the saturating U8S8 kernels.
PRECISE_INT8_KEY = "session.x64quantprecision"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The first processor's /proc/cpuinfo flags; empty where there is no such file."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def is_x86() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64", "i386", "i686")


def u8s8_saturates(flags: frozenset[str] | None = None) -> bool:
    """Whether ORT's U8S8 int8 GEMM saturates on this CPU: x86 without any VNNI instruction.

    Unknown flags (no /proc/cpuinfo on an x86 machine) count as saturating: the exact path only
    costs speed, the other one accuracy."""
    if flags is None:
        if not is_x86():
            return False  # ARM's sdot/udot accumulate in int32: no pair saturation
        flags = cpu_flags()
    return not any(f in flags for f in VNNI_FLAGS)


def int8_kernel(flags: frozenset[str] | None = None) -> str:
    """A short name for the int8 GEMM this CPU runs under nlpress: what reports print."""
    if flags is None:
        if not is_x86():
            return platform.machine().lower()
        flags = cpu_flags()
    if "amx_int8" in flags:
        return "amx"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    if "avx_vnni" in flags:
        return "avx-vnni"
    return "u8u8-exact (no VNNI: U8S8 would saturate)"


def configure_int8_session(so, *, exact: bool = True) -> bool:
    """Set ORT ``SessionOptions`` ``so`` so that int8 GEMMs are exact on this CPU.

    Returns whether the precise mode was turned on. ``exact=False`` keeps ORT's default (faster,
    saturating U8S8 on CPUs without VNNI): only for measuring what the exact mode costs."""
    if exact and u8s8_saturates():
        so.add_session_config_entry(PRECISE_INT8_KEY, "1")
        return True
    return False


def built_on() -> dict:
    """What nlpress.json records of the CPU an artifact was built and measured on."""
    from nlpress.bench.env import _cpuinfo

    return {
        "cpu_model": _cpuinfo().get("model name"),
        "int8_kernel": int8_kernel(),
        "vnni": not u8s8_saturates() if is_x86() else None,
    }


def check_int8_portability(meta: dict, has_int8) -> str | None:
    """A warning where an int8 artifact runs on a CPU whose int8 path differs from the one it was
    measured on; None where nothing changes. Accuracy never changes under nlpress (the exact mode
    above), speed does: without VNNI every int8 GEMM takes the exact U8U8 kernel.

    ``has_int8``: a bool, or a callable returning one, called only where the CPU's int8 path
    differs from the recorded one (it reads the model graph: not worth doing on every load)."""
    built = meta.get("built_on")
    if not isinstance(built, dict) or built.get("vnni") is None or not is_x86():
        return None
    here = not u8s8_saturates()
    if built["vnni"] == here:
        return None
    if not (has_int8() if callable(has_int8) else has_int8):
        return None
    if built["vnni"] and not here:
        return (
            f"this int8 model was measured on a CPU with VNNI ({built.get('int8_kernel')}); this "
            "CPU has none, so its int8 layers run ONNX Runtime's exact U8U8 kernels, slower than "
            "the artifact's report says (the faster U8S8 kernels would saturate here); "
            "re-run nlpress compress on this machine for its own figures"
        )
    if not built["vnni"] and here:
        return (
            "this int8 model was measured on a CPU without VNNI; this CPU has it, so it will run "
            "faster than the artifact's report says"
        )
    return None
