"""The environment a measurement was taken in: library versions, CPU, ISA and threads.

Why: a speedup is only meaningful next to the machine that produced it. int8 kernels differ by
an order of magnitude between a CPU with AVX-512 VNNI or AMX and one with only AVX2, and thread
counts change throughput more than most compression recipes do. Every artifact and report
carries this dict.

Deliberately free of personal data: no hostname, user name, paths or environment dump, only the
few variables that change performance. Versions come from package metadata, so nothing heavy is
imported except torch, and only to ask for its thread count.
"""

from __future__ import annotations

import logging
import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PACKAGES = ("torch", "transformers", "onnxruntime", "onnx", "numpy")
# Flags that decide which int8 / bf16 kernels onnxruntime and torch can use.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _cpuinfo() -> dict[str, str]:
    """First processor block of /proc/cpuinfo as {key: value}; empty where there is none."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    info: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def isa_flags(flags: str) -> dict[str, bool]:
    """Which of :data:`ISA_FLAGS` a /proc/cpuinfo ``flags`` line has (amx: any amx_* flag)."""
    present = set(flags.split())
    out = {flag: flag in present for flag in ISA_FLAGS if flag != "amx"}
    out["amx"] = any(f.startswith("amx") for f in present)
    return out


def _cpu_count() -> int | None:
    try:
        return len(os.sched_getaffinity(0))  # what this process may use (containers, taskset)
    except AttributeError:
        return os.cpu_count()


def _torch_threads() -> int | None:
    if _version("torch") is None:
        return None
    try:
        import torch
    except ImportError:
        return None
    return int(torch.get_num_threads())


def _int8_kernel() -> str:
    from nlpress.runtime.isa import int8_kernel

    return int8_kernel()


def environment() -> dict[str, Any]:
    """Versions, CPU model, usable cores, ISA flags and thread settings of this machine."""
    cpu = _cpuinfo()
    env: dict[str, Any] = {
        "python": platform.python_version(),
        **{package: _version(package) for package in PACKAGES},
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu.get("model name") or platform.processor() or None,
        "cpu_count": _cpu_count(),
        "cpu_count_total": os.cpu_count(),
        "isa": isa_flags(cpu["flags"]) if "flags" in cpu else None,
        "torch_threads": _torch_threads(),
        "int8_kernel": _int8_kernel(),
    }
    for var in THREAD_VARS:
        env[var] = os.environ.get(var)
    return env
