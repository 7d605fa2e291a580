"""quantize_attention: attention's own MatMuls (QK^T, attention x V) in int8, measured on fidelity.

Floors are SQNR in dB against fp32 PyTorch on the tiny BERT; ORT's int8 is exact on every x86
CPU under nlpress (nlpress.runtime.isa), so they hold on AVX2-only and VNNI CPUs alike. Dynamic
int8 of the two activation x activation MatMuls quantizes both operands per batch and per
tensor, a coarser grid than the per-channel weights. Measured on the AVX2-only machine: dynamic
44.96 dB for the linears alone, 44.96 with attention too; static 37.25 / 37.23 dB (the tiny
random BERT's attention is nearly uniform, so its int8 costs almost nothing here; MiniLM's
figure is benchmarks/int8_vs_ort.py's). Floors sit 7 dB below: a broken attention quantizer
(wrong scales, saturated scores) lands far under them.
"""

from __future__ import annotations

import onnx
import pytest

from nlpress.export.onnx_export import export_onnx
from nlpress.models.loader import load_model
from nlpress.quantize import primitives
from nlpress.quantize.dynamic import activation_matmuls, quantize_onnx_dynamic
from nlpress.quantize.static import calibration_batches, quantize_onnx_static
from nlpress.recipe import ExportOnnxConfig, QuantizeDynamicInt8Config, QuantizeStaticInt8Config
from nlpress.runtime.predictor import OrtPredictor, torch_predictor_from_loaded

TEXTS = [
    "the movie was great fun",
    "a cat sat on the mat and the dog sat too",
    "bad",
    "i love this film",
    "the quick brown fox jumps over the lazy dog",
    "a man is playing a guitar",
    "this plot was boring but the actor was good",
    "not very good",
] * 2


@pytest.fixture(scope="module")
def exported(tiny_bert, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("attn")
    lm = load_model(tiny_bert)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    export_onnx(lm, tmp / "e.onnx", ExportOnnxConfig(), ref.tokenize(TEXTS[:4]))
    return lm, ref, tmp


def _sqnr(lm, ref, path) -> float:
    q = OrtPredictor(
        path, task=lm.task, tokenizer=lm.tokenizer, input_names=ref.input_names, name="q"
    )
    batch = ref.tokenize(TEXTS)
    import torch

    return primitives.sqnr(torch.from_numpy(ref.forward(batch)), torch.from_numpy(q.forward(batch)))


def test_the_tiny_bert_has_two_attention_matmuls_per_layer(exported):
    _, _, tmp = exported
    assert len(activation_matmuls(onnx.load(str(tmp / "e.onnx")).graph)) == 4


def test_dynamic_int8_of_attention(exported):
    lm, ref, tmp = exported
    base = quantize_onnx_dynamic(tmp / "e.onnx", tmp / "lin.onnx", QuantizeDynamicInt8Config())
    cfg = QuantizeDynamicInt8Config(quantize_attention=True)
    info = quantize_onnx_dynamic(tmp / "e.onnx", tmp / "all.onnx", cfg)
    assert info["quantized_ops"]["MatMulInteger"] == base["quantized_ops"]["MatMulInteger"] + 4
    lin, full = _sqnr(lm, ref, tmp / "lin.onnx"), _sqnr(lm, ref, tmp / "all.onnx")
    print(f"dynamic int8 SQNR: linears {lin:.4f} dB, with attention {full:.4f} dB")
    assert lin >= 38.0 and full >= 38.0


def test_static_int8_can_leave_attention_in_float(exported):
    lm, ref, tmp = exported
    batches = calibration_batches(TEXTS, ref.tokenize, 8)
    both = quantize_onnx_static(tmp / "e.onnx", tmp / "s.onnx", QuantizeStaticInt8Config(), batches)
    cfg = QuantizeStaticInt8Config(quantize_attention=False)
    lin = quantize_onnx_static(tmp / "e.onnx", tmp / "sl.onnx", cfg, batches)
    attn = activation_matmuls(onnx.load(str(tmp / "e.onnx")).graph)
    assert set(attn) <= set(lin["excluded"]) and not set(attn) & set(both["excluded"])
    s_both, s_lin = _sqnr(lm, ref, tmp / "s.onnx"), _sqnr(lm, ref, tmp / "sl.onnx")
    print(f"static int8 SQNR: with attention {s_both:.4f} dB, linears only {s_lin:.4f} dB")
    assert both["quantized_ops"]["MatMul"] == lin["quantized_ops"]["MatMul"] + 4
    assert s_both >= 30.0 and s_lin >= 30.0
