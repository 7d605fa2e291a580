"""The int8 step on tiny models: SQNR floors against fp32, ORT and torch backends."""

import numpy as np
import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.export.onnx_export import export_onnx
from nlpress.export.ort_optimize import ort_optimize
from nlpress.models.loader import load_model
from nlpress.quantize import primitives
from nlpress.quantize.dynamic import quantize_onnx_dynamic, quantize_torch_dynamic
from nlpress.quantize.torch_io import load_dynamic_int8, save_dynamic_int8
from nlpress.recipe import ExportOnnxConfig, OrtOptimizeConfig, QuantizeDynamicInt8Config
from nlpress.runtime.predictor import OrtPredictor, TorchPredictor, torch_predictor_from_loaded

TEXTS = [
    "the movie was great fun",
    "a cat sat on the mat and the dog sat too",
    "bad",
    "i love this film",
] * 4


# Why the floors hold on any x86-64 CPU: nlpress runs int8 GEMMs exactly everywhere (on CPUs without
# VNNI its sessions set ORT's session.x64quantprecision, see nlpress.runtime.isa), so what is left is
# the quantization error alone: 25 dB is about 5.6% relative RMS error, which per-channel int8 of
# these tiny models clears by >= 3 dB on AVX-512 VNNI and on AVX2 alike. Without the exact mode, an
# AVX2-only Zen 3 measured 19.99 / 20.47 dB here (pair saturation), and per-tensor beat per-channel.


def sqnr(ref: np.ndarray, got: np.ndarray) -> float:
    return primitives.sqnr(torch.from_numpy(np.asarray(ref)), torch.from_numpy(np.asarray(got)))


def _onnx_int8(path, tmp_path, cfg=None, fuse=True, session_after=False):
    cfg = cfg or QuantizeDynamicInt8Config()
    lm = load_model(path)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    export_onnx(lm, tmp_path / "e.onnx", ExportOnnxConfig(), ref.tokenize(TEXTS[:4]))
    src = tmp_path / "e.onnx"
    if fuse:
        ort_optimize(
            src,
            tmp_path / "o.onnx",
            lm.model.config.to_dict(),
            OrtOptimizeConfig(mode="transformers"),
        )
        src = tmp_path / "o.onnx"
    info = quantize_onnx_dynamic(src, tmp_path / "q.onnx", cfg)
    final = tmp_path / "q.onnx"
    if session_after:
        info["session"] = ort_optimize(
            final, tmp_path / "qs.onnx", lm.model.config.to_dict(), OrtOptimizeConfig()
        )
        final = tmp_path / "qs.onnx"
    q = OrtPredictor(
        final, task=lm.task, tokenizer=lm.tokenizer, input_names=ref.input_names, name="q"
    )
    batch = ref.tokenize(TEXTS)
    return ref.forward(batch), q.forward(batch), info


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_classifier", "tiny_llama"])
def test_onnx_int8_sqnr_floor(fixture, request, tmp_path):
    ref, got, info = _onnx_int8(
        request.getfixturevalue(fixture), tmp_path, fuse=fixture != "tiny_llama"
    )
    assert sqnr(ref, got) >= 25.0
    assert info["quantized_ops"]


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_llama"])
def test_int8_then_session_optimize_fuses_int8_matmuls(fixture, request, tmp_path):
    ref, got, info = _onnx_int8(
        request.getfixturevalue(fixture), tmp_path, fuse=False, session_after=True
    )
    assert sqnr(ref, got) >= 25.0
    assert (
        info["session"]["fused"].get("DynamicQuantizeMatMul", 0)
        + info["session"]["fused"].get("MatMulIntegerToFloat", 0)
        >= 8
    )


def test_onnx_int8_quantizes_fused_attention_and_embeddings(tiny_bert, tmp_path):
    _, _, info = _onnx_int8(tiny_bert, tmp_path)
    assert info["quantized_ops"].get("QAttention") == 2
    assert info["quantized_ops"].get("QEmbedLayerNormalization") == 1


def test_per_channel_beats_per_tensor(tiny_bert, tmp_path):
    ref, pc, _ = _onnx_int8(tiny_bert, tmp_path / "a" if (tmp_path / "a").mkdir() is None else None)
    (tmp_path / "b").mkdir()
    ref2, pt, _ = _onnx_int8(
        tiny_bert, tmp_path / "b", QuantizeDynamicInt8Config(per_channel=False)
    )
    assert sqnr(ref, pc) > sqnr(ref2, pt)


def test_ignore_keeps_nodes_in_float(tiny_bert, tmp_path):
    cfg = QuantizeDynamicInt8Config(ignore=["re:Attention_.*"])
    _, _, info = _onnx_int8(tiny_bert, tmp_path, cfg)
    assert "QAttention" not in info["quantized_ops"] and info["excluded"]


def test_ignore_pattern_that_matches_nothing_is_an_error(tiny_bert, tmp_path):
    with pytest.raises(NlpressError, match="matches no layer"):
        _onnx_int8(tiny_bert, tmp_path, QuantizeDynamicInt8Config(ignore=["re:nothing.*"]))


def _torch_pred(model, lm):
    from nlpress.models.task_module import TaskModule, model_input_names

    names = model_input_names(lm.model, lm.tokenizer)
    return TorchPredictor(
        TaskModule(model, lm.task, names),
        task=lm.task,
        tokenizer=lm.tokenizer,
        input_names=names,
        name="t",
        files=[],
    )


def test_torch_backend_sqnr_and_safetensors_round_trip(tiny_classifier, tmp_path):
    lm = load_model(tiny_classifier)
    ref = torch_predictor_from_loaded(lm, "fp32", [])
    import copy

    qmodel = copy.deepcopy(lm.model)
    info = quantize_torch_dynamic(qmodel, QuantizeDynamicInt8Config(backend="torch"))
    assert info["quantized_linear"] == sum(
        isinstance(m, torch.nn.Linear) for m in lm.model.modules()
    )
    batch = ref.tokenize(TEXTS)
    got = _torch_pred(qmodel, lm).forward(batch)
    assert sqnr(ref.forward(batch), got) >= 25.0
    # weights: per-channel int8 reconstructs each Linear within a tight SQNR floor
    w = lm.model.bert.encoder.layer[0].intermediate.dense.weight.detach()
    wq = qmodel.bert.encoder.layer[0].intermediate.dense.weight().dequantize()
    assert sqnr(w.numpy(), wq.numpy()) >= 35.0
    save_dynamic_int8(qmodel, tmp_path)
    from transformers import AutoModelForSequenceClassification

    again = load_dynamic_int8(tmp_path, AutoModelForSequenceClassification)
    np.testing.assert_array_equal(_torch_pred(again, lm).forward(batch), got)


def test_torch_backend_rejects_uint8(tiny_bert):
    lm = load_model(tiny_bert)
    with pytest.raises(NlpressError, match="int8 only"):
        quantize_torch_dynamic(
            lm.model, QuantizeDynamicInt8Config(backend="torch", weight_type="uint8")
        )


def test_model_without_linear_layers_is_an_error():
    class NoLinear(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(4, 4)

    with pytest.raises(NlpressError, match="no linear layer"):
        quantize_torch_dynamic(NoLinear(), QuantizeDynamicInt8Config(backend="torch"))
