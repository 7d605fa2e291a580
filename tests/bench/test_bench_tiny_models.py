"""The bench tools on real (tiny, locally built) models through nlpress.load: integration only."""

from __future__ import annotations

from pathlib import Path

from nlpress.bench import BenchConfig, benchmark, peak_memory_mb, ratios

TEXTS = [
    "the movie was great fun",
    "a terrible boring plot",
    "the quick brown fox jumps over the lazy dog",
]


def test_benchmark_two_tiny_models(tiny_bert: Path, tiny_classifier: Path) -> None:
    from nlpress.runtime import load

    preds = {"bert": load(tiny_bert, threads=1), "cls": load(tiny_classifier, threads=1)}
    cfg = BenchConfig(batch_size=4, seq_len=16, rounds=2, latency_samples=2, progress=False)
    res = benchmark(preds, TEXTS, cfg)
    assert res["bert"]["seq_len"] == 16 and res["bert"]["name"] == "pytorch-fp32"
    assert res["bert"]["size_bytes"] > 0 and res["cls"]["throughput"] > 0
    assert set(ratios(res, "bert")["cls"]) == {
        "throughput_speedup",
        "latency_speedup",
        "size_fraction",
    }


def test_memory_probe_with_real_loader(tiny_bert: Path) -> None:
    out = peak_memory_mb(str(tiny_bert), batch_size=4, seq_len=16, texts=TEXTS, timeout=300)
    assert out["batch_shape"] == [4, 16]
    assert out["rss_after_import_mb"] > 50  # torch and friends were imported before measuring
    assert out["model_peak_mb"] >= 0
