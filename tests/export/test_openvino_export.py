"""export-openvino and quantize-openvino-int8 as recipe steps, through compress and load."""

from __future__ import annotations

import json

import numpy as np
import pytest

from nlpress.errors import NlpressError
from nlpress.recipe import load_recipe, recipe_from_dict

pytest.importorskip("nncf")


def _compress(model, task, data, recipe, out, overrides=()):
    import nlpress
    from nlpress.bench.harness import BenchConfig

    return nlpress.compress(
        model,
        task,
        data,
        recipe,
        out,
        overrides=list(overrides),
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
        limit=16,
    )


def test_int8_openvino_round_trip(tiny_bert, tmp_path):
    import nlpress
    from nlpress.models.loader import load_model
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    out = tmp_path / "ov"
    art = _compress(tiny_bert, "sentence-embedding", None, "int8-openvino", out)
    assert (out / "model.xml").is_file() and (out / "model.bin").is_file()
    assert not (out / "export").exists()
    meta = json.loads((out / "nlpress.json").read_text())
    assert meta["backend"] == "openvino" and meta["precision"] == "f32"
    assert meta["overflow_fix"] in ("enable", "disable") and meta["device"] == "cpu"
    assert meta["built_on"]["int8_kernel"]
    steps = {s["name"]: s["info"] for s in art.metrics["steps"]}
    assert steps["export-openvino"]["max_abs_diff"] <= 1e-4
    assert steps["quantize-openvino-int8"]["fake_quantize"] > 0
    # int8 of the tiny BERT keeps cosine to fp32 far above the demo's bar (measured 0.99998)
    assert art.metrics["result"]["fidelity"]["cosine_min"] >= 0.999
    pred = nlpress.load(out)
    assert pred.backend == "openvino"
    texts = ["a man is playing a guitar", "the cat sat"]
    ref = torch_predictor_from_loaded(load_model(tiny_bert), "fp32", [])
    got, want = pred.encode(texts), ref.encode(texts)
    cos = (got * want).sum(-1) / np.linalg.norm(got, axis=-1) / np.linalg.norm(want, axis=-1)
    assert cos.min() >= 0.999


def test_weights_mode_from_the_onnx_export(tiny_classifier, sst_file, tmp_path):
    import nlpress

    recipe = recipe_from_dict(
        {
            "steps": [
                {"export-onnx": {}},
                {"export-openvino": {"source": "onnx"}},
                {"quantize-openvino-int8": {"mode": "weights"}},
            ]
        }
    )
    out = tmp_path / "w"
    art = _compress(tiny_classifier, "text-classification", sst_file, recipe, out)
    assert not list(out.glob("*.onnx"))
    assert art.metrics["steps"][2]["info"]["int8_weights"] > 0
    # weights-only int8 computes in fp32: no prediction of these 8 flips
    assert art.metrics["result"]["fidelity"]["top1_agreement"] == 1.0
    p = nlpress.load(out).predict(["the best film", "the worst story"])
    assert p.probabilities.shape == (2, 2) and set(p.labels) <= {"negative", "positive"}


def test_builtin_openvino_recipes_parse():
    assert [type(s).__name__ for s in load_recipe("openvino").steps] == ["ExportOpenVinoConfig"]
    assert len(load_recipe("int8-openvino").steps) == 2
    auto = load_recipe("int8-auto", ["select-backend.openvino={mode: weights}"])
    assert auto.steps[1].openvino.mode == "weights"


BAD = {
    "quantize without export": ([{"quantize-openvino-int8": {}}], "needs export-openvino"),
    "onnx source without export": ([{"export-openvino": {"source": "onnx"}}], "export-onnx"),
    "onnx source after optimize": (
        [{"export-onnx": {}}, {"ort-optimize": {}}, {"export-openvino": {"source": "onnx"}}],
        "plain ONNX export",
    ),
    "ort step after openvino": (
        [{"export-onnx": {}}, {"export-openvino": {}}, {"quantize-dynamic-int8": {}}],
        "cannot follow export-openvino",
    ),
    "select not last": (
        [{"export-onnx": {}}, {"select-backend": {}}, {"ort-optimize": {}}],
        "last step",
    ),
    "select without export": ([{"select-backend": {}}], "export-onnx before it"),
    "select after quantize": (
        [{"export-onnx": {}}, {"quantize-dynamic-int8": {}}, {"select-backend": {}}],
        "quantizes the model itself",
    ),
    "bad mode": ([{"export-openvino": {}}, {"quantize-openvino-int8": {"mode": "int4"}}], "int4"),
    "nested typo": ([{"export-onnx": {}}, {"select-backend": {"openvino": {"mdoe": "x"}}}], "mdoe"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_openvino_recipes_fail_before_any_work(case):
    steps, word = BAD[case]
    with pytest.raises(NlpressError, match=word):
        recipe_from_dict({"steps": steps})
