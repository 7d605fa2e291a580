"""Time and peak memory of each stage of a run (load, each step, evaluation, benchmark, write).

A whole ``compress`` of a causal LM once peaked at 8.4 GB for a 538 MB model, while the
quantization itself needed 1.5 GB; nobody could tell which stage it was without a profiler. Every
artifact now records, per stage, its seconds and the process's peak resident memory during it,
and the CLI prints them.

How the per-stage peak is taken: on Linux, writing ``5`` to ``/proc/self/clear_refs`` resets the
kernel's high-water mark of resident memory (VmHWM) to the current RSS, so VmHWM read at the end
of a stage is that stage's own peak, with no sampling thread to miss a short spike. Where that
file cannot be written (not Linux, or a restricted container) a 20 ms sampling thread stands in.
The reset also resets what ``getrusage`` reports as the process's maximum RSS, so ``/usr/bin/time
-v`` around such a run shows only the last stage's peak: the run's peak is the largest stage peak,
which metrics.json records as ``peak_rss_mb`` and the CLI prints.

Each stage ends by handing the C heap's free memory back to the system (glibc's
``malloc_trim``). Per-layer temporaries (a dequantized weight, a layer's int32 codes) are freed
into the heap, which glibc keeps for reuse, and the next stage started from that higher RSS. After
SmolLM2's int4 quantization step it was 1,437 MiB resident, and 951 MiB after the trim (anonymous
memory 912 -> 426 MiB; the rest is the fp32 baseline's memory-mapped weights). Where glibc is
absent the call is skipped.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _reset_hwm() -> bool:
    try:
        _CLEAR_REFS.write_text("5")
        return _status_kb("VmHWM") is not None
    except OSError:
        return False


def trim_heap() -> None:
    """Return the C heap's free pages to the system (glibc ``malloc_trim``); no-op elsewhere."""
    global _LIBC
    if _LIBC is None:
        import ctypes
        import ctypes.util

        try:
            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 (musl and macOS have no malloc_trim)
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None

# glibc mallopt parameters (malloc.h) and its ceiling for the dynamic mmap threshold on 64-bit
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD_MAX = 32 << 20


@contextlib.contextmanager
def bounded_heap(threshold: int = 1 << 20) -> Iterator[None]:
    """Inside: every C allocation of ``threshold`` bytes or more gets its own mapping, handed back
    to the system when freed, so resident memory follows the live tensors.

    Why: glibc raises its mmap threshold to the size of each large block freed (up to 32 MiB), so
    later temporaries of a causal LM's 2,048-token windows come from the heap instead. The freed
    ones stay resident there, beside the next window's. In one SmolLM2 int4 compress, resident
    memory grew from 1,481 to 1,800 MiB over three windows of perplexity, with no live growth.
    Inside this context (1 MiB), the same passes stayed within 1,301-1,361 MiB. Outside
    evaluation this costs speed: a fresh mapping per temporary took MiniLM's batch of 32 from
    127 to 141-146 ms. So on leaving, the threshold is set to glibc's own 32 MiB ceiling and
    the trim threshold to twice that. That is where glibc's dynamic rule settles once large
    tensors have been freed; interleaved runs of both models measured no slowdown at that
    setting. A no-op without glibc.
    """
    trim_heap()
    ok = bool(_LIBC) and hasattr(_LIBC, "mallopt")
    ok = ok and _LIBC.mallopt(_M_MMAP_THRESHOLD, threshold) == 1
    try:
        yield
    finally:
        if ok:
            _LIBC.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX)
            _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * _MMAP_THRESHOLD_MAX)
        trim_heap()


class StageLog:
    """``with log.stage("evaluate"): ...`` appends {name, seconds, peak_rss_mb} to ``log.rows``."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        if _reset_hwm():
            sampler = None
        else:
            sampler = _Sampler()
            sampler.start()
        try:
            yield
        finally:
            if sampler is None:
                hwm = _status_kb("VmHWM")
                peak = hwm / 1024 if hwm is not None else _rss_mb()
            else:
                peak = sampler.stop()
            trim_heap()  # the next stage starts from what this one still holds, not its garbage
            self.rows.append(
                {
                    "name": name,
                    "seconds": round(time.perf_counter() - t0, 2),
                    "peak_rss_mb": round(peak, 1),
                }
            )

    def summary(self) -> dict:
        peak = max((r["peak_rss_mb"] for r in self.rows), default=None)
        return {
            "stages": self.rows,
            "peak_rss_mb": peak,
            "seconds": round(time.perf_counter() - self.t0, 1),
        }


class _Sampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak, self._done = _rss_mb(), threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.02):
            self.peak = max(self.peak, _rss_mb())

    def stop(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, _rss_mb())


def format_stages(summary: dict) -> str:
    """Lines of ``stage  seconds  peak RSS`` for the CLI."""
    rows = summary.get("stages") or []
    if not rows:
        return ""
    width = max(len(r["name"]) for r in rows)
    lines = [f"{'stage'.ljust(width)}  seconds  peak RSS MiB"]
    lines += [
        f"{r['name'].ljust(width)}  {r['seconds']:7.1f}  {r['peak_rss_mb']:12.0f}" for r in rows
    ]
    peak = max(r["peak_rss_mb"] for r in rows)
    lines.append(
        f"{'whole run'.ljust(width)}  {sum(r['seconds'] for r in rows):7.1f}  {peak:12.0f}"
    )
    return "\n".join(lines)
