import numpy as np
import pytest

from nlpress.export.onnx_export import ExportValidationError, export_onnx
from nlpress.export.ort_optimize import ort_optimize
from nlpress.models.loader import load_model
from nlpress.recipe import ExportOnnxConfig, OrtOptimizeConfig
from nlpress.runtime.predictor import OrtPredictor, torch_predictor_from_loaded

TEXTS = ["the movie was great fun", "a cat sat on the mat and the dog sat too", "bad"]


def _pair(path, tmp_path, task=None, cfg=None):
    cfg = cfg or ExportOnnxConfig()
    lm = load_model(path, task)
    ref = torch_predictor_from_loaded(lm, "torch", [])
    onnx_path = tmp_path / "m.onnx"
    info = export_onnx(lm, onnx_path, cfg, ref.tokenize(TEXTS))
    new = OrtPredictor(
        onnx_path, task=lm.task, tokenizer=lm.tokenizer, input_names=ref.input_names, name="ort"
    )
    return lm, ref, new, info


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_classifier", "tiny_llama"])
def test_export_matches_pytorch_within_tolerance(fixture, request, tmp_path):
    lm, ref, new, info = _pair(request.getfixturevalue(fixture), tmp_path)
    assert info["max_abs_diff"] <= 1e-4
    # other lengths and batch sizes than the export sample: dynamic axes work
    batch = ref.tokenize(["one", "two words here and more words in this one"] * 3)
    np.testing.assert_allclose(new.forward(batch), ref.forward(batch), atol=1e-4, rtol=1e-4)


def test_export_restores_attention_implementation(tiny_bert, tmp_path):
    lm, *_ = _pair(tiny_bert, tmp_path)
    assert lm.model.config._attn_implementation == "sdpa"


def test_validation_fails_loudly_when_outputs_differ(tiny_bert, tmp_path, monkeypatch):
    import nlpress.export.onnx_export as ex

    real = ex.validate_onnx

    def corrupt(module, path, sample, names, atol):
        import onnx
        from onnx import numpy_helper

        m = onnx.load(str(path))
        init = max(m.graph.initializer, key=lambda t: np.prod(t.dims))
        arr = numpy_helper.to_array(init) + np.random.default_rng(0).normal(size=init.dims)
        init.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), init.name))
        onnx.save(m, str(path))
        return real(module, path, sample, names, atol)

    monkeypatch.setattr(ex, "validate_onnx", corrupt)
    with pytest.raises(ExportValidationError, match="differs from PyTorch"):
        _pair(tiny_bert, tmp_path)


def _assert_matches(lm, ref, onnx_path):
    """The optimized graph at ``onnx_path`` gives the PyTorch outputs within 1e-4."""
    new = OrtPredictor(
        onnx_path, task=lm.task, tokenizer=lm.tokenizer, input_names=ref.input_names, name="o"
    )
    batch = ref.tokenize(TEXTS)
    np.testing.assert_allclose(new.forward(batch), ref.forward(batch), atol=1e-4)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_llama"])
def test_session_optimize_fuses_and_keeps_outputs(fixture, request, tmp_path):
    lm, ref, _, _ = _pair(request.getfixturevalue(fixture), tmp_path)
    info = ort_optimize(
        tmp_path / "m.onnx", tmp_path / "o.onnx", lm.model.config.to_dict(), OrtOptimizeConfig()
    )
    assert info["mode"] == "session" and info["nodes_after"] < info["nodes_before"]
    _assert_matches(lm, ref, tmp_path / "o.onnx")


def test_ort_optimize_fuses_attention_in_bert(tiny_bert, tmp_path):
    lm, ref, _, _ = _pair(tiny_bert, tmp_path)
    cfg = OrtOptimizeConfig(mode="transformers")
    info = ort_optimize(tmp_path / "m.onnx", tmp_path / "o.onnx", lm.model.config.to_dict(), cfg)
    assert info["fused"].get("Attention") == 2
    assert info["fused"].get("SkipLayerNormalization")
    _assert_matches(lm, ref, tmp_path / "o.onnx")


def test_transformers_optimize_leaves_unknown_architectures_alone(tiny_llama, tmp_path):
    lm, *_ = _pair(tiny_llama, tmp_path)
    cfg = OrtOptimizeConfig(mode="transformers")
    info = ort_optimize(tmp_path / "m.onnx", tmp_path / "o.onnx", lm.model.config.to_dict(), cfg)
    assert info["fused"] == {} and "no fusion" in info["note"]
