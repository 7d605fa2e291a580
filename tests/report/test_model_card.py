"""The model card every artifact carries: hub metadata, and load snippets that run as written.

Each card's snippets are executed line for line with the artifact folder as the working
directory (they start from ``path = "."``), and their result is compared with ``nlpress.load``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import nlpress
from nlpress.report.snippets import snippets

TEXTS = ["A first sentence.", "Another one."]  # what the snippets encode


def test_snippets_in_the_card_are_the_tested_ones(tmp_path, tiny_bert, hf):
    out = hf.build(tiny_bert, "sentence-embedding", "onnx", tmp_path / "emb-onnx")
    meta = nlpress.artifact.read_meta(out)
    assert hf.card_code(out) == [c.rstrip() + "\n" for c in snippets(out, meta, False).values()]


@pytest.mark.parametrize("recipe", ["onnx", "int8"])
def test_onnx_embedding_card_runs_with_plain_onnxruntime(tmp_path, tiny_bert, recipe, hf):
    out = hf.build(tiny_bert, "sentence-embedding", recipe, tmp_path / f"emb-{recipe}")
    fm, body = hf.card(out)
    assert fm["library_name"] == "onnx" and fm["pipeline_tag"] == "sentence-similarity"
    assert {"nlpress", "onnx"} <= set(fm["tags"]) and ("int8" in fm["tags"]) == (recipe == "int8")
    assert "base_model" not in fm  # a local folder: nothing the hub could link to
    ort_code = next(c for c in hf.card_code(out) if "onnxruntime" in c)
    assert "import nlpress" not in ort_code  # plain onnxruntime + the saved tokenizer, nothing else
    got = hf.run_card_code(out, ort_code)["embeddings"]
    want = nlpress.load(out).encode(TEXTS)
    np.testing.assert_allclose(got, want, atol=1e-5)
    assert hf.run_card_code(out, hf.card_code(out)[-1])["embeddings"].shape == want.shape


def test_onnx_classifier_card_runs_and_has_the_measured_quality(
    tmp_path, tiny_classifier, sst_file, hf
):
    out = hf.build(tiny_classifier, "text-classification", "int8", tmp_path / "cls-int8", sst_file)
    fm, body = hf.card(out)
    ns = hf.run_card_code(out, hf.card_code(out)[0])
    assert ns["labels"] == nlpress.load(out).predict(TEXTS).labels
    (entry,) = fm["model-index"]
    (result,) = entry["results"]
    assert entry["name"] == "cls-int8" and result["task"]["type"] == "text-classification"
    assert result["dataset"]["name"] == sst_file.name
    measured = nlpress.load(out)  # the card's numbers are the artifact's own metrics
    metrics = json.loads((out / "metrics.json").read_text())
    by_type = {m["type"]: m["value"] for m in result["metrics"]}
    assert by_type["accuracy"] == pytest.approx(metrics["result"]["quality"]["accuracy"], abs=1e-4)
    assert "agreement" in by_type and measured.task == "text-classification"
    assert "| Size on disk (MB) |" in body and "## Measured on" in body and "ISA:" in body


def test_card_of_nlpress_only_weights_says_so(tmp_path, tiny_classifier, sst_file, hf):
    out = hf.build(
        tiny_classifier, "text-classification", "int8-torch", tmp_path / "cls-t8", sst_file
    )
    fm, body = hf.card(out)
    assert fm["library_name"] == "nlpress" and "int8" in fm["tags"]
    assert len(hf.card_code(out)) == 1 and "nlpress.load" in hf.card_code(out)[0]
    assert "nlpress's own format" in body
    assert (
        hf.run_card_code(out, hf.card_code(out)[0])["labels"]
        == nlpress.load(out).predict(TEXTS).labels
    )


def test_base_model_is_the_hub_id_of_a_builtin_or_hub_source():
    from nlpress.report.model_card import base_model

    assert base_model("all-MiniLM-L6-v2 (default)") == "sentence-transformers/all-MiniLM-L6-v2"
    assert base_model("smollm2") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert base_model("bert-base/uncased") == "bert-base/uncased"
    assert base_model("/tmp/some/folder") is None and base_model("./my-bert") is None


@pytest.mark.slow
def test_default_model_int8_card(tmp_path, hf):
    """The demo's artifact: base_model links to the hub, the ONNX snippet runs."""
    out = hf.build("default", None, "int8", tmp_path / "out")
    fm, _ = hf.card(out)
    assert fm["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert {"int8", "onnx", "quantized"} <= set(fm["tags"])
    got = hf.run_card_code(out, hf.card_code(out)[0])["embeddings"]
    np.testing.assert_allclose(got, nlpress.load(out).encode(TEXTS), atol=1e-5)
    assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-4)  # MiniLM's Normalize module
