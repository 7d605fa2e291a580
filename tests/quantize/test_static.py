"""The static int8 step: config validation, SQNR floors per calibration method, end to end."""

import json

import numpy as np
import pytest
import torch

from nlpress.cli import main
from nlpress.errors import NlpressError
from nlpress.export.onnx_export import export_onnx
from nlpress.export.ort_optimize import op_counts, ort_optimize
from nlpress.models.loader import load_model
from nlpress.quantize import primitives
from nlpress.quantize.static import _Reader, calibration_batches, quantize_onnx_static
from nlpress.recipe import (
    ExportOnnxConfig,
    OrtOptimizeConfig,
    QuantizeStaticInt8Config,
    load_recipe,
    recipe_from_dict,
)
from nlpress.runtime.predictor import OrtPredictor, torch_predictor_from_loaded

TEXTS = [
    "the movie was great fun",
    "a cat sat on the mat and the dog sat too",
    "bad",
    "i love this film",
    "the quick brown fox jumps over the lazy dog",
    "a woman is playing the piano",
    "not very good and a boring plot",
    "the best film of the year",
] * 4


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return primitives.sqnr(torch.from_numpy(np.asarray(ref)), torch.from_numpy(np.asarray(got)))


@pytest.mark.parametrize(
    "kw, key",
    [
        ({"method": "kl"}, "method"),
        ({"percentile": 90.0}, "percentile"),
        ({"percentile": 100.5}, "percentile"),
        ({"num_samples": 7}, "num_samples"),
        ({"activation_type": "int4"}, "activation_type"),
        ({"calib": "x"}, "calib"),
    ],
)
def test_config_rejects_bad_values(kw, key):
    with pytest.raises(NlpressError, match=key):
        recipe_from_dict({"steps": [{"export-onnx": {}}, {"quantize-static-int8": kw}]})


def test_recipe_order_checks():
    with pytest.raises(NlpressError, match="needs an export-onnx step"):
        recipe_from_dict({"steps": [{"quantize-static-int8": {}}]})
    with pytest.raises(NlpressError, match="already quantized"):
        recipe_from_dict(
            {"steps": ["export-onnx", "quantize-static-int8", "quantize-dynamic-int8"]}
        )
    steps = load_recipe("int8-static").steps
    assert [type(s) for s in steps] == [
        ExportOnnxConfig,
        QuantizeStaticInt8Config,
        OrtOptimizeConfig,
    ]


def test_reader_chunks_cover_every_batch():
    batches = [{"input_ids": np.zeros((1, 3), np.int64), "x": 0} for _ in range(6)]
    r = _Reader(batches, ["input_ids"])
    assert len(r) == 6
    r.set_range(3, 6)
    got = list(iter(r.get_next, None))
    assert len(got) == 3 and set(got[0]) == {"input_ids"}


def _static_int8(path, tmp_path, cfg, optimize=False):
    lm = load_model(path)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    export_onnx(lm, tmp_path / "e.onnx", ExportOnnxConfig(), ref.tokenize(TEXTS[:4]))
    # batches of 4 are padded to different lengths: the histogram calibrators must cope
    batches = calibration_batches(TEXTS, ref.tokenize, 4)
    assert len({b["input_ids"].shape for b in batches}) > 1
    info = quantize_onnx_static(tmp_path / "e.onnx", tmp_path / "q.onnx", cfg, batches)
    final = tmp_path / "q.onnx"
    if optimize:
        ort_optimize(final, tmp_path / "qs.onnx", lm.model.config.to_dict(), OrtOptimizeConfig())
        final = tmp_path / "qs.onnx"
    q = OrtPredictor(
        final, task=lm.task, tokenizer=lm.tokenizer, input_names=ref.input_names, name="q"
    )
    batch = ref.tokenize(TEXTS[:8])
    return ref.forward(batch), q.forward(batch), info, op_counts(final)


# floors measured on tiny_bert (minmax 37.5, percentile 37.8, entropy 34.9 dB), set a little below
@pytest.mark.parametrize(
    "method, floor", [("minmax", 35.0), ("percentile", 35.0), ("entropy", 32.0)]
)
def test_static_int8_sqnr_floor(method, floor, tiny_bert, tmp_path):
    ref, got, info, ops = _static_int8(tiny_bert, tmp_path, QuantizeStaticInt8Config(method=method))
    assert sqnr(ref, got) >= floor
    assert ops.get("QuantizeLinear") and ops.get("DequantizeLinear")
    # 2 layers x (6 linear + 2 attention MatMuls), less the 2 FFN down-projections after GELU
    assert info["quantized_ops"]["MatMul"] == 14 and len(info["excluded"]) == 2
    assert "LayerNormalization" not in info["quantized_ops"]


def test_static_int8_after_session_optimize_runs_int8_kernels(tiny_bert, tmp_path):
    ref, got, _, ops = _static_int8(tiny_bert, tmp_path, QuantizeStaticInt8Config(), optimize=True)
    assert sqnr(ref, got) >= 35.0
    int8 = ("QLinearMatMul", "MatMulIntegerToFloat", "QuantizeLinear", "DynamicQuantizeMatMul")
    assert any(ops.get(t) for t in int8)


def test_float_after_gelu_keeps_ffn_down_projections_float(tiny_bert, tmp_path):
    cfg = QuantizeStaticInt8Config(float_after_gelu=False)
    _, _, info, _ = _static_int8(tiny_bert, tmp_path, cfg)
    assert info["quantized_ops"]["MatMul"] == 16 and not info["excluded"]
    assert all(
        "output/dense" in n
        for n in _static_int8(tiny_bert, tmp_path, QuantizeStaticInt8Config())[2]["excluded"]
    )


def test_excluding_every_op_type_is_an_error(tiny_bert, tmp_path):
    from onnxruntime.quantization.registry import QDQRegistry

    everything = QuantizeStaticInt8Config(exclude_op_types=list(QDQRegistry))
    with pytest.raises(NlpressError, match="no layer to quantize"):
        _static_int8(tiny_bert, tmp_path, everything)
    with pytest.raises(NlpressError, match="no layer was quantized"):
        _static_int8(tiny_bert, tmp_path, QuantizeStaticInt8Config(ignore=["re:.*"]))


def test_cli_compress_int8_static(tiny_classifier, sst_file, tmp_path, capsys):
    out = tmp_path / "o"
    args = ["compress", "--model", str(tiny_classifier), "--data", str(sst_file)]
    args += ["--recipe", "int8-static", "--calib", str(sst_file), "--out", str(out)]
    assert main([*args, "--rounds", "1", "--no-memory"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["result"]["fidelity"]
    step = next(s for s in metrics["steps"] if s["name"] == "quantize-static-int8")
    assert step["info"]["calibration_source"] == str(sst_file)
    assert step["info"]["calibration_texts"] == 8


def test_compress_without_calib_records_evaluation_texts(tiny_classifier, sst_file, tmp_path):
    from nlpress.bench.harness import BenchConfig
    from nlpress.pipeline import compress

    art = compress(
        tiny_classifier,
        data=sst_file,
        recipe="int8-static",
        out=tmp_path / "o",
        bench=BenchConfig(rounds=1, progress=False),
        memory=False,
        progress=False,
    )
    step = art.metrics["steps"][1]
    assert step["info"]["calibration_source"].startswith("evaluation data")


@pytest.mark.parametrize(
    "content, message",
    [
        ("sentence\tlabel\nbad\t0\ngood\t1\nfun\t1\n", "at least 8 texts, got 3"),
        (None, "calibration file not found"),
        ("", "calibration file"),
    ],
)
def test_bad_calibration_file_is_one_error_line(
    content, message, tiny_classifier, sst_file, tmp_path, capsys
):
    calib = tmp_path / "calib.tsv"
    if content is not None:
        calib.write_text(content)
    out = tmp_path / "o"
    args = ["compress", "--model", str(tiny_classifier), "--data", str(sst_file)]
    args += ["--recipe", "int8-static", "--calib", str(calib), "--out", str(out)]
    assert main([*args, "--rounds", "1", "--no-memory"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists()


def test_calib_without_static_step_is_an_error(tiny_classifier, sst_file, tmp_path):
    out = tmp_path / "o"
    args = ["compress", "--model", str(tiny_classifier), "--data", str(sst_file)]
    args += ["--recipe", "int8", "--calib", str(sst_file), "--out", str(out)]
    assert main(args) == 2 and not out.exists()
