"""Interleaved latency and throughput measurement for several predictors at once.

Why interleaved: the machines nlpress runs on are small, shared and noisy (2 cores, neighbours
stealing time, turbo and thermal drift). Benchmarking model A for a minute and then model B for a
minute puts any drift straight into the A/B ratio. Instead every round runs every predictor once,
in an order rotated by the round number, so slow spells hit all predictors alike and each
predictor sees every position in the round. We then report medians (robust to the odd stall) and
the inter-quartile range as the spread, never means.

Why this shape: one small generic loop (:func:`interleaved_timings`) with the measurement tasks
built around it in :func:`benchmark`. Tokenization happens once, before any timing, so the numbers
are model time only; the tokenizer is the same for before and after and would only dilute ratios.
"""

from __future__ import annotations

import gc
import itertools
import logging
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

TextInput = str | tuple[str, str]


class Predictor(Protocol):
    """What the harness needs from a predictor (see :mod:`nlpress.runtime`)."""

    task: str
    backend: str
    name: str
    threads: int

    def tokenize(
        self, inputs: list[TextInput], *, pad_to: int | None = None, max_length: int = 512
    ) -> dict[str, np.ndarray]: ...

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray: ...

    def size_bytes(self) -> int: ...


# Bounds on what a benchmark may allocate: a batch of 100,000 padded texts is tens of GB of
# activations, and ONNX Runtime then fails with an allocation traceback deep in a run.
MAX_BATCH = 4096
MAX_SEQ_LEN = 1 << 16


@dataclass
class BenchConfig:
    """How to benchmark. Defaults fit a 2-core CPU box in about a minute per model pair."""

    batch_size: int = 32  # throughput batch: large enough to amortise per-call overhead
    seq_len: int | None = None  # None: pad to the longest text of each batch; else pad to this
    rounds: int = 7  # interleaved rounds; odd so the median is a real sample
    warmup: int = 1  # untimed runs per task first (allocator, thread pools, ORT arena)
    latency_samples: int = 20  # batch-1 calls per predictor per round, each one kept
    # throughput batches per round, drawn evenly across the data so the padded lengths follow
    # the data's length distribution rather than its first rows
    throughput_batches: int = 4
    progress: bool = True  # tqdm bar over rounds on stderr
    # GOP/s achieved and the fraction of this machine's measured GEMM peak (nlpress.bench.peak);
    # the peak is measured once per machine and thread count (a few seconds), then cached
    peak: bool = True

    def __post_init__(self) -> None:
        for field in ("batch_size", "rounds", "latency_samples", "throughput_batches"):
            value = getattr(self, field)
            if not isinstance(value, int) or value < 1:
                raise NlpressError(f"bench {field} must be a positive integer, got {value!r}")
        if not isinstance(self.warmup, int) or self.warmup < 0:
            raise NlpressError(f"bench warmup must be an integer >= 0, got {self.warmup!r}")
        if self.seq_len is not None and (not isinstance(self.seq_len, int) or self.seq_len < 1):
            raise NlpressError(
                f"bench seq_len must be a positive integer or None, got {self.seq_len!r}"
            )
        if self.batch_size > MAX_BATCH or (self.seq_len or 0) > MAX_SEQ_LEN:
            raise NlpressError(
                f"bench batch_size must be at most {MAX_BATCH} and seq_len at most {MAX_SEQ_LEN}, "
                f"got {self.batch_size} and {self.seq_len}; lower them"
            )


def rotated(names: Sequence[Hashable], r: int) -> list[Hashable]:
    """``names`` rotated left by ``r``: round r starts with a different entry each time."""
    if not names:
        return []
    k = r % len(names)
    return list(names[k:]) + list(names[:k])


def _run_rounds(
    tasks: dict[Hashable, Callable[[], list[float]]],
    rounds: int,
    warmup: int,
    progress: bool,
    desc: str,
) -> dict[Hashable, list[float]]:
    """Run self-timing tasks (each returns its own list of seconds) in rotated rounds."""
    names = list(tasks)
    for name in names:
        for _ in range(warmup):
            tasks[name]()
    samples: dict[Hashable, list[float]] = {name: [] for name in names}
    iterator: Any = range(rounds)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, desc=desc or "bench", unit="round", leave=False)
    for r in iterator:
        gc.collect()  # outside the timed region, so a collection does not land in one sample
        for name in rotated(names, r):
            samples[name].extend(tasks[name]())
    return samples


def _timed(fn: Callable[[], object]) -> Callable[[], list[float]]:
    def task() -> list[float]:
        t0 = time.perf_counter()
        fn()
        return [time.perf_counter() - t0]

    return task


def interleaved_timings(
    fns: dict[str, Callable[[], object]],
    rounds: int,
    warmup: int,
    progress: bool = False,
    desc: str = "",
) -> dict[str, list[float]]:
    """Time each function once per round, rounds interleaved; returns seconds per call.

    Each function is first called ``warmup`` times untimed. Round ``r`` then calls every function
    once, in the key order rotated left by ``r``.
    """
    return _run_rounds({k: _timed(f) for k, f in fns.items()}, rounds, warmup, progress, desc)  # type: ignore[return-value]


def summarize(samples: Sequence[float]) -> dict[str, float]:
    """Median, 95th percentile, min, max and inter-quartile range of ``samples`` (same unit)."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("summarize needs at least one sample")
    q25, q50, q75, q95 = np.percentile(a, [25, 50, 75, 95])
    return {
        "median": float(q50),
        "p95": float(q95),
        "min": float(a.min()),
        "max": float(a.max()),
        "iqr": float(q75 - q25),
    }


def _call(predictor: Predictor) -> Callable[[dict[str, np.ndarray]], Any]:
    """What one timed call runs: ``bench_forward`` where the predictor has one (a causal LM's
    output head in row blocks, :class:`nlpress.runtime.predictor.TorchPredictor`), else ``forward``."""
    return getattr(predictor, "bench_forward", None) or predictor.forward


def _cycled(texts: Sequence[TextInput], n: int) -> list[TextInput]:
    return list(itertools.islice(itertools.cycle(texts), n))


def _latency_task(
    predictor: Predictor, batches: list[dict[str, np.ndarray]], per_round: int
) -> Callable[[], list[float]]:
    """``per_round`` batch-1 calls, one text each, cycling through ``batches`` across rounds."""
    position = itertools.count()
    call = _call(predictor)

    def task() -> list[float]:
        times = []
        for _ in range(per_round):
            batch = batches[next(position) % len(batches)]
            t0 = time.perf_counter()
            call(batch)
            times.append(time.perf_counter() - t0)
        return times

    return task


def spread(texts: Sequence[TextInput], n: int) -> list[TextInput]:
    """``n`` texts evenly spaced over ``texts`` (cycled when there are fewer), in data order."""
    if len(texts) >= n:
        return [texts[int(i)] for i in np.linspace(0, len(texts) - 1, n).round()]
    return _cycled(texts, n)


def _tasks_for(
    predictor: Predictor, texts: Sequence[TextInput], cfg: BenchConfig
) -> tuple[Callable[[], list[float]], Callable[[], list[float]], list[tuple[int, int]]]:
    """Tokenize once (untimed) and return (latency task, throughput task, batch shapes).

    Throughput batches are consecutive chunks of an evenly spaced sample of the data, each padded
    to its own longest text (not sorted by length: a conservative, realistic amount of padding).
    """
    n_latency = min(len(texts), cfg.latency_samples * (cfg.rounds + cfg.warmup))
    max_length = cfg.seq_len or 512  # a fixed seq_len also truncates, so shapes are exact
    singles = [
        predictor.tokenize([t], pad_to=cfg.seq_len, max_length=max_length)
        for t in spread(texts, n_latency)
    ]
    n_batches = 1 if cfg.seq_len else cfg.throughput_batches  # fixed length: one shape suffices
    pool = spread(texts, cfg.batch_size * n_batches)
    batches = [
        predictor.tokenize(
            pool[i * cfg.batch_size : (i + 1) * cfg.batch_size],
            pad_to=cfg.seq_len,
            max_length=max_length,
        )
        for i in range(n_batches)
    ]
    shapes = [tuple(b["input_ids"].shape) for b in batches]

    def run_batches() -> None:
        call = _call(predictor)
        for b in batches:
            call(b)

    return _latency_task(predictor, singles, cfg.latency_samples), _timed(run_batches), shapes


def benchmark(
    predictors: dict[str, Predictor], texts: Sequence[TextInput], cfg: BenchConfig
) -> dict[str, dict[str, Any]]:
    """Measure latency and throughput of every predictor in one interleaved run.

    Latency: batch-1 forward passes, one text per call, cycling through ``texts``;
    ``cfg.latency_samples`` calls per predictor per round, all kept, reported as p50/p95 in ms.
    Throughput: ``cfg.throughput_batches`` forward passes of ``cfg.batch_size`` texts drawn evenly
    across the data (one batch when ``cfg.seq_len`` fixes the shape), each padded to its longest
    text or to ``cfg.seq_len``, once per round; reported as the median in sequences/s with
    ``throughput_spread`` = IQR / median of the per-round times. ``seq_len`` is the mean padded length.
    """
    if not predictors:
        raise NlpressError("benchmark needs at least one predictor")
    if not texts:
        raise NlpressError("benchmark needs at least one text; pass some data")
    tasks: dict[Hashable, Callable[[], list[float]]] = {}
    shapes: dict[str, list[tuple[int, int]]] = {}
    for name, predictor in predictors.items():
        latency, throughput, shapes[name] = _tasks_for(predictor, texts, cfg)
        tasks[(name, "latency")] = latency
        tasks[(name, "throughput")] = throughput
    log.info(
        "benchmarking %s: %d rounds, batch %d, seq_len %s",
        ", ".join(predictors),
        cfg.rounds,
        cfg.batch_size,
        cfg.seq_len or "from data",
    )
    samples = _run_rounds(tasks, cfg.rounds, cfg.warmup, cfg.progress, "bench")
    results = {}
    n_seq = cfg.batch_size * (1 if cfg.seq_len else cfg.throughput_batches)
    for name, predictor in predictors.items():
        lat = summarize(samples[(name, "latency")])
        tput = summarize(samples[(name, "throughput")])
        results[name] = {
            "name": getattr(predictor, "name", name),
            "backend": getattr(predictor, "backend", None),
            "latency_p50_ms": lat["median"] * 1e3,
            "latency_p95_ms": lat["p95"] * 1e3,
            "throughput": n_seq / tput["median"],
            "throughput_spread": tput["iqr"] / tput["median"],
            "size_bytes": int(predictor.size_bytes()),
            "threads": getattr(predictor, "threads", None),
            "seq_len": round(float(np.mean([t for _, t in shapes[name]]))),
            "batch_size": cfg.batch_size,
            "rounds": cfg.rounds,
            "latency_samples": len(samples[(name, "latency")]),
        }
        if cfg.peak:
            results[name].update(_fraction_of_peak(predictor, shapes[name], tput["median"]))
    return results


def _fraction_of_peak(
    predictor: Predictor, shapes: list[tuple[int, int]], seconds: float
) -> dict[str, Any]:
    """GOP/s of the throughput run and its fraction of the machine's peak for the model's format."""
    from nlpress.bench.peak import gop, peak_beaten, peak_for

    profile = getattr(predictor, "compute_profile", lambda: None)()
    if not profile or not profile["linear_macs"]:
        return {}
    achieved = sum(gop(profile, b, t) for b, t in shapes) / seconds
    peak = peak_beaten(int(getattr(predictor, "threads", 0) or 1), profile["format"], achieved)
    top = peak_for(peak, profile["format"])
    return {
        "gops": achieved,
        "gemm_format": profile["format"],
        "peak_gops": top,
        "peak_fraction": achieved / top if top else None,
        "int8_kernel": peak["int8_kernel"],
    }


def _ratio(num: float | None, den: float | None) -> float | None:
    if num is None or den is None or den == 0:
        return None
    return float(num) / float(den)


def ratios(results: dict[str, dict[str, Any]], baseline: str) -> dict[str, dict[str, float | None]]:
    """For each non-baseline entry: throughput speedup, latency speedup and size fraction.

    ``throughput_speedup`` = result / baseline throughput, ``latency_speedup`` = baseline / result
    p50 latency (both > 1 means faster), ``size_fraction`` = result / baseline size on disk.
    """
    if baseline not in results:
        raise NlpressError(f"baseline {baseline!r} is not among the results: {sorted(results)}")
    base = results[baseline]
    out = {}
    for name, res in results.items():
        if name == baseline:
            continue
        out[name] = {
            "throughput_speedup": _ratio(res.get("throughput"), base.get("throughput")),
            "latency_speedup": _ratio(base.get("latency_p50_ms"), res.get("latency_p50_ms")),
            "size_fraction": _ratio(res.get("size_bytes"), base.get("size_bytes")),
        }
    return out
