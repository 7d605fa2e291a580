"""Harness logic against a fake clock: exact numbers, no real timing and no timing assertions."""

from __future__ import annotations

import numpy as np
import pytest

from nlpress.bench import harness
from nlpress.bench.harness import BenchConfig, benchmark, interleaved_timings, ratios, summarize
from nlpress.errors import NlpressError


class FakeClock:
    """Stands in for time.perf_counter; fakes advance it to 'spend' time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def spend(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(harness.time, "perf_counter", fake)
    return fake


class FakePredictor:
    """Spends ``cost`` fake seconds per sequence; tokenizing spends a lot, to catch it if timed."""

    task = "sentence-embedding"
    backend = "numpy"
    threads = 1

    def __init__(self, name: str, cost: float, clock: FakeClock, log: list) -> None:
        self.name, self.cost, self.clock, self.log = name, cost, clock, log
        self.tokenized: list[list] = []

    def tokenize(self, inputs, *, pad_to=None, max_length=512):
        self.clock.spend(100.0)
        self.tokenized.append(list(inputs))
        length = pad_to or max(len(str(t).split()) for t in inputs)
        ids = np.full((len(inputs), length), len(self.tokenized) - 1, dtype=np.int64)
        return {"input_ids": ids, "attention_mask": np.ones_like(ids)}

    def forward(self, batch):
        rows = batch["input_ids"].shape[0]
        self.log.append((self.name, rows, int(batch["input_ids"][0, 0])))
        self.clock.spend(self.cost * rows)
        return np.zeros((rows, 4), dtype=np.float32)

    def size_bytes(self) -> int:
        return 1000 if self.name == "base" else 250


def test_interleaving_rotates_and_warmup_is_not_recorded(clock: FakeClock) -> None:
    calls: list[str] = []

    def make(name: str, cost: float):
        def fn() -> None:
            warm = calls.count(name) < 2
            calls.append(name)
            clock.spend(100.0 if warm else cost)

        return fn

    times = interleaved_timings(
        {"a": make("a", 1.0), "b": make("b", 2.0), "c": make("c", 3.0)}, rounds=4, warmup=2
    )
    assert calls[:6] == ["a", "a", "b", "b", "c", "c"]
    assert calls[6:] == list("abcbcacababc")
    assert times == {"a": [1.0] * 4, "b": [2.0] * 4, "c": [3.0] * 4}


def test_rotated() -> None:
    assert harness.rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    assert harness.rotated([], 3) == []


def test_summarize_matches_numpy_percentiles() -> None:
    samples = np.random.default_rng(0).lognormal(size=101)
    s = summarize(list(samples))
    q25, q50, q75, q95 = np.percentile(samples, [25, 50, 75, 95])
    assert s["median"] == pytest.approx(q50)
    assert s["p95"] == pytest.approx(q95)
    assert s["iqr"] == pytest.approx(q75 - q25)
    assert (s["min"], s["max"]) == (samples.min(), samples.max())
    with pytest.raises(ValueError):
        summarize([])


def _predictors(clock: FakeClock, log: list) -> dict[str, FakePredictor]:
    return {
        "base": FakePredictor("base", 0.010, clock, log),
        "fast": FakePredictor("fast", 0.004, clock, log),
    }


def test_benchmark_numbers_from_fake_clock(clock: FakeClock) -> None:
    log: list = []
    preds = _predictors(clock, log)
    texts = ["one two three", "one", "a b c d e f"]
    cfg = BenchConfig(batch_size=5, rounds=3, warmup=1, latency_samples=4, progress=False)
    res = benchmark(preds, texts, cfg)
    base, fast = res["base"], res["fast"]
    assert base["latency_p50_ms"] == pytest.approx(10.0)
    assert base["latency_p95_ms"] == pytest.approx(10.0)
    assert fast["latency_p50_ms"] == pytest.approx(4.0)
    assert base["throughput"] == pytest.approx(100.0)  # 1 / 0.010 s per sequence
    assert fast["throughput"] == pytest.approx(250.0)
    assert fast["throughput_spread"] == pytest.approx(0.0)
    assert base["seq_len"] == 6  # padded to the longest text of the throughput batch
    assert (base["batch_size"], base["rounds"], base["size_bytes"], base["threads"]) == (
        5,
        3,
        1000,
        1,
    )
    assert base["latency_samples"] == 3 * 4  # every batch-1 sample of every round is kept
    # throughput batches: fewer texts than needed, so they are cycled; 4 batches of 5 per round
    assert preds["base"].tokenized[-1] == (texts * 7)[15:20]
    # latency calls are batch 1 and cycle through the texts (batch id = text index here)
    latency_ids = [i for name, rows, i in log if name == "base" and rows == 1]
    assert latency_ids == [i % 3 for i in range((3 + 1) * 4)]


def test_benchmark_fixed_seq_len_and_ratios(clock: FakeClock) -> None:
    log: list = []
    cfg = BenchConfig(
        batch_size=4, seq_len=16, rounds=1, warmup=0, latency_samples=2, progress=False
    )
    res = benchmark(_predictors(clock, log), ["x y"], cfg)
    assert res["fast"]["seq_len"] == 16
    r = ratios(res, "base")
    assert list(r) == ["fast"]
    assert r["fast"]["throughput_speedup"] == pytest.approx(2.5)
    assert r["fast"]["latency_speedup"] == pytest.approx(2.5)
    assert r["fast"]["size_fraction"] == pytest.approx(0.25)


def test_ratios_missing_values_and_bad_baseline() -> None:
    res = {
        "a": {"throughput": 10.0, "latency_p50_ms": 0.0, "size_bytes": 4},
        "b": {"throughput": 30.0, "size_bytes": 1},
    }
    assert ratios(res, "a")["b"] == {
        "throughput_speedup": 3.0,
        "latency_speedup": None,
        "size_fraction": 0.25,
    }
    with pytest.raises(NlpressError, match="baseline"):
        ratios(res, "nope")


@pytest.mark.parametrize(
    "kwargs", [{"rounds": 0}, {"batch_size": -1}, {"warmup": -1}, {"seq_len": 0}]
)
def test_bench_config_rejects_bad_values(kwargs: dict) -> None:
    with pytest.raises(NlpressError, match=next(iter(kwargs))):
        BenchConfig(**kwargs)


def test_benchmark_needs_texts_and_predictors(clock: FakeClock) -> None:
    cfg = BenchConfig(progress=False)
    with pytest.raises(NlpressError):
        benchmark({}, ["a"], cfg)
    with pytest.raises(NlpressError):
        benchmark(_predictors(clock, []), [], cfg)


def test_benchmark_real_clock_smoke() -> None:
    """Real perf_counter, a numpy matmul; only checks shapes and signs, never speed."""

    class MatmulPredictor(FakePredictor):
        def forward(self, batch):
            x = batch["input_ids"].astype(np.float32)
            return x @ np.ones((x.shape[1], 8), dtype=np.float32)

    preds = {"m": MatmulPredictor("m", 0.0, FakeClock(), [])}
    res = benchmark(
        preds, ["a b", "c"], BenchConfig(batch_size=2, rounds=2, latency_samples=2, progress=True)
    )
    assert (
        res["m"]["throughput"] > 0 and res["m"]["latency_p95_ms"] >= res["m"]["latency_p50_ms"] > 0
    )


def test_spread_samples_evenly_in_data_order() -> None:
    from nlpress.bench.harness import spread

    texts = [f"t{i}" for i in range(100)]
    assert spread(texts, 5) == ["t0", "t25", "t50", "t74", "t99"]
    assert spread(texts[:3], 5) == ["t0", "t1", "t2", "t0", "t1"]


def test_throughput_counts_every_batch(clock: FakeClock) -> None:
    preds = _predictors(clock, [])
    texts = [f"w{i}" for i in range(64)]
    cfg = BenchConfig(
        batch_size=4, rounds=3, warmup=0, latency_samples=1, throughput_batches=3, progress=False
    )
    res = benchmark(preds, texts, cfg)
    assert res["base"]["throughput"] == pytest.approx(100.0)  # 12 sequences in 0.12 s per round
