"""Measure what compression bought: latency, throughput, peak memory, and the environment.

Everything here measures several models side by side on the same machine at the same time, so
the ratios can be trusted on a small, noisy CPU box; see :mod:`nlpress.bench.harness`.
"""

from nlpress.bench.env import environment
from nlpress.bench.harness import BenchConfig, benchmark, interleaved_timings, ratios, summarize
from nlpress.bench.memory import peak_memory_mb

__all__ = [
    "BenchConfig",
    "benchmark",
    "environment",
    "interleaved_timings",
    "peak_memory_mb",
    "ratios",
    "summarize",
]
