"""Operation counts and the machine-peak fraction (nlpress.bench.peak)."""

import json

import pytest
import torch

from nlpress.bench import peak


def _linear_macs(model) -> int:
    return sum(
        m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)
    )


def test_torch_profile_counts_every_linear_and_attention(tiny_bert):
    from nlpress.models.loader import load_model

    lm = load_model(tiny_bert)
    prof = peak.torch_profile(lm.model, lm.model.config.to_dict())
    assert prof["linear_macs"] == _linear_macs(lm.model) > 0
    assert prof["attention_macs"] == 2 * 32  # 2 layers x (4 heads x 8 dims)
    assert prof["format"] == "fp32"
    # 2 x B x T x (linear + attention x T)
    assert peak.gop(prof, 4, 10) == pytest.approx(
        2 * 4 * 10 * (prof["linear_macs"] + 64 * 10) / 1e9
    )


def test_onnx_profile_matches_the_torch_model_and_sees_int8(tiny_bert, tmp_path):
    from nlpress.export.onnx_export import export_onnx
    from nlpress.models.loader import load_model
    from nlpress.quantize.dynamic import quantize_onnx_dynamic
    from nlpress.recipe import ExportOnnxConfig, QuantizeDynamicInt8Config
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    lm = load_model(tiny_bert)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    export_onnx(lm, tmp_path / "e.onnx", ExportOnnxConfig(), ref.tokenize(["a cat sat"]))
    cfg = lm.model.config.to_dict()
    fp = peak.onnx_profile(tmp_path / "e.onnx", cfg)
    # the export drops BERT's pooler (32 x 32), which embeddings never use; PyTorch still runs it
    assert fp["linear_macs"] == _linear_macs(lm.model) - 32 * 32 and fp["format"] == "fp32"
    quantize_onnx_dynamic(tmp_path / "e.onnx", tmp_path / "q.onnx", QuantizeDynamicInt8Config())
    q = peak.onnx_profile(tmp_path / "q.onnx", cfg)
    assert q["linear_macs"] == fp["linear_macs"] and q["format"] == "int8"


def test_machine_peak_is_measured_once_and_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("NLPRESS_CACHE_DIR", str(tmp_path))
    calls = []
    real = peak._best_gops

    def counting(op, threads, calls_=3):
        calls.append(op)
        return real(op, threads, 1)

    monkeypatch.setattr(peak, "_best_gops", counting)
    first = peak.machine_peak(1)
    assert first["fp32_gops"] > 0 and first["int8_gops"] > 0 and len(calls) == 2
    assert peak.machine_peak(1) == first and len(calls) == 2  # from the cache
    assert json.loads((tmp_path / "peak.json").read_text())
    (tmp_path / "peak.json").write_text("[not a dict")  # a broken cache is measured again
    peak.machine_peak(1)
    assert len(calls) == 4


def test_benchmark_reports_fraction_of_peak(tiny_bert, monkeypatch):
    from nlpress.bench.harness import BenchConfig, benchmark
    from nlpress.runtime import load

    fake = {"fp32_gops": 100.0, "int8_gops": 400.0, "threads": 1, "int8_kernel": "x"}
    monkeypatch.setattr(peak, "machine_peak", lambda threads, refresh=False: fake)
    pred = load(tiny_bert, threads=1)
    cfg = BenchConfig(rounds=1, latency_samples=1, throughput_batches=1, progress=False)
    res = benchmark({"m": pred}, ["the cat sat on the mat"] * 4, cfg)["m"]
    assert res["gemm_format"] == "fp32" and res["peak_gops"] == 100.0
    assert res["peak_fraction"] == pytest.approx(res["gops"] / 100.0)
    assert 0 < res["gops"] < 1e4


def test_a_peak_beaten_by_a_model_is_measured_again_once(tmp_path, monkeypatch):
    # a peak cached while other work shared the cores reads too low: the first model that goes
    # faster than it triggers one fresh measurement, and the fraction is read against that
    monkeypatch.setenv("NLPRESS_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(peak, "_REFRESHED", set())
    speeds = iter([10.0, 40.0, 50.0, 200.0])  # fp32, int8 under load; then fp32, int8 quiet
    monkeypatch.setattr(peak, "_best_gops", lambda op, threads, calls=5: next(speeds))
    loaded = peak.machine_peak(1)
    assert loaded["fp32_gops"] == 10.0 and "load_average" in loaded
    assert peak.peak_beaten(1, "fp32", 5.0) == loaded  # not beaten: the cache stands
    fresh = peak.peak_beaten(1, "fp32", 30.0)
    assert fresh["fp32_gops"] == 50.0 and fresh["int8_gops"] == 200.0
    assert peak.machine_peak(1) == fresh  # and it replaced the cached entry
    assert peak.peak_beaten(1, "int8", 500.0) == fresh  # at most once per process: no loop
