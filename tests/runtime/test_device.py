"""--device: provider selection, the checks that fail before any work, and what load() records.

No test here needs a GPU: the CUDA path is checked up to the point where a GPU would be used
(provider lists, the errors, the device an artifact records), with torch's CUDA check patched
where a test needs it to say yes or no whatever the machine has.
"""

from __future__ import annotations

import json
import shutil

import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import load_recipe
from nlpress.runtime.device import (
    check_device,
    check_recipe_device,
    check_recipe_runtimes,
    ort_providers,
    recipe_backend,
)


@pytest.fixture()
def no_gpu(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_cpu_never_gets_the_cuda_provider():
    both = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert ort_providers("cpu", both) == ["CPUExecutionProvider"]
    assert ort_providers("cuda", both[::-1]) == both  # CUDA first, CPU for the ops it lacks


def test_cuda_without_the_cuda_provider_names_the_package():
    with pytest.raises(NlpressError, match="onnxruntime-gpu"):
        ort_providers("cuda", ["CPUExecutionProvider"])


def test_unknown_device():
    with pytest.raises(NlpressError, match="unknown device 'tpu'"):
        ort_providers("tpu", [])


def test_cuda_without_a_gpu_is_one_clear_error(no_gpu):
    for backend in ("pytorch", "onnxruntime"):
        with pytest.raises(NlpressError, match="PyTorch sees no CUDA GPU") as e:
            check_device("cuda", backend)
        assert "\n" not in str(e.value)
    check_device("cpu", "openvino")
    with pytest.raises(NlpressError, match="CPU plugin only"):
        check_device("cuda", "openvino")


def test_cuda_with_a_gpu_still_needs_the_cuda_provider_for_onnx(monkeypatch):
    import onnxruntime as ort
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CPUExecutionProvider"])
    check_device("cuda", "pytorch")
    with pytest.raises(NlpressError, match="CUDAExecutionProvider"):
        check_device("cuda", "onnxruntime")


@pytest.mark.parametrize(
    "recipe, backend",
    [
        ("int8", "onnxruntime"),
        ("int8-torch", "pytorch"),
        ("bf16", "pytorch"),
        ("openvino", "openvino"),
        ("int8-openvino", "openvino"),
        ("int8-auto", "auto"),
    ],
)
def test_recipe_backend(recipe, backend):
    assert recipe_backend(load_recipe(recipe).steps) == backend


def test_select_backend_is_for_the_cpu(no_gpu):
    with pytest.raises(NlpressError, match="select-backend measures CPU runtimes"):
        check_recipe_device(load_recipe("int8-auto").steps, "cuda")
    check_recipe_device(load_recipe("int8-auto").steps, "cpu")


def test_missing_openvino_names_the_extra(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(NlpressError, match=r"pip install 'nlpress\[openvino\]'"):
        check_recipe_runtimes(load_recipe("int8-openvino").steps, "cpu")
    check_recipe_runtimes(load_recipe("int8").steps, "cpu")  # ORT recipes do not need it
    s = load_recipe("int8-auto", ["select-backend.candidates=[onnxruntime-int8]"])
    check_recipe_runtimes(s.steps, "cpu")


def _fake_artifact(tmp_path, model_dir, **meta):
    """nlpress.json and a tokenizer: all that load() reads before it reaches the runtime."""
    out = tmp_path / "art"
    out.mkdir()
    for f in model_dir.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "vocab")):
            shutil.copy(f, out / f.name)
    base = {
        "format_version": 1,
        "task": "sentence-embedding",
        "input_names": ["input_ids", "attention_mask"],
        "name": "x",
        "model_file": "model.xml",
        "backend": "openvino",
    }
    (out / "nlpress.json").write_text(json.dumps({**base, **meta}))
    return out


def test_openvino_artifact_where_openvino_is_missing(tiny_bert, tmp_path, monkeypatch):
    import sys

    import nlpress

    art = _fake_artifact(tmp_path, tiny_bert)
    monkeypatch.setitem(sys.modules, "openvino", None)
    with pytest.raises(NlpressError, match=r"needs OpenVINO.*pip install 'nlpress\[openvino\]'"):
        nlpress.load(art)


def test_artifact_recorded_for_cuda_says_how_to_run_it_here(tiny_bert, tmp_path, no_gpu):
    import nlpress

    art = _fake_artifact(tmp_path, tiny_bert, backend="onnxruntime", model_file="model.onnx")
    meta = json.loads((art / "nlpress.json").read_text())
    (art / "nlpress.json").write_text(json.dumps({**meta, "device": "cuda"}))
    with pytest.raises(NlpressError, match=r"records device cuda.*device='cpu'"):
        nlpress.load(art)
    with pytest.raises(NlpressError, match="PyTorch sees no CUDA GPU"):
        nlpress.load(tiny_bert, device="cuda")  # a model folder: checked before the weight load


def test_torch_predictor_moves_only_when_asked(tiny_bert):
    from nlpress.models.loader import load_model
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    pred = torch_predictor_from_loaded(load_model(tiny_bert), "fp32", [])
    assert pred.device == "cpu" and pred.to("cpu") is pred
    assert next(pred.module.parameters()).device.type == "cpu"
