"""PyTorch-format artifacts open in the tools users already run, with the same outputs as
``nlpress.load``: ``sentence_transformers.SentenceTransformer(dir)`` for sentence embeddings and
``transformers.pipeline("text-classification", model=dir)`` for classifiers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nlpress

TEXTS = ["A first sentence.", "Another one.", "the movie was great fun"]


def _st_encode(out):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(out), device="cpu").encode(TEXTS, convert_to_numpy=True)


def _pipeline_labels(out):
    from transformers import pipeline

    return [
        p["label"] for p in pipeline("text-classification", model=str(out), device="cpu")(TEXTS)
    ]


@pytest.mark.parametrize(
    ("recipe", "overrides", "atol"),
    [
        ("prune-structured", ["prune-structured.head_fraction=0"], 1e-5),  # fp32, FFN pruned
        ("bf16", [], 2e-2),  # both run the bf16 weights; pooling rounding differs
    ],
)
def test_sentence_transformers_loads_embedding_artifacts(
    tmp_path, tiny_bert, recipe, overrides, atol, hf
):
    out = hf.build(tiny_bert, "sentence-embedding", recipe, tmp_path / "st", overrides=overrides)
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_mean_tokens"]
    np.testing.assert_allclose(_st_encode(out), nlpress.load(out).encode(TEXTS), atol=atol)
    fm, _ = hf.card(out)
    assert fm["library_name"] == "sentence-transformers" and "sentence-transformers" in fm["tags"]
    got = hf.run_card_code(out, hf.card_code(out)[0])["embeddings"]  # the card's own snippet
    np.testing.assert_allclose(got, _st_encode(out)[:2], atol=1e-6)


def test_cls_pooling_and_normalize_are_written_when_the_source_has_none(tmp_path, tiny_bert, hf):
    from nlpress.models.st_files import write_sentence_transformers_files

    out = hf.build(tiny_bert, "sentence-embedding", "bf16", tmp_path / "b")
    for p in ("modules.json", "sentence_bert_config.json"):
        (out / p).unlink()
    meta = {**json.loads((out / "nlpress.json").read_text()), "pooling": "cls", "normalize": True}
    assert write_sentence_transformers_files(out, tiny_bert, meta)
    modules = json.loads((out / "modules.json").read_text())
    assert [m["type"].rsplit(".", 1)[1] for m in modules] == ["Transformer", "Pooling", "Normalize"]
    assert json.loads((out / "1_Pooling" / "config.json").read_text())["pooling_mode_cls_token"]


def test_head_pruned_bert_gets_no_sentence_transformers_files(tmp_path, tiny_bert, hf):
    out = hf.build(tiny_bert, "sentence-embedding", "prune-structured", tmp_path / "hp")
    assert not (out / "modules.json").exists()  # plain transformers cannot build it
    fm, body = hf.card(out)
    assert fm["library_name"] == "nlpress" and "pruned" in fm["tags"]
    assert "nlpress.load" in hf.card_code(out)[0] and len(hf.card_code(out)) == 1


@pytest.mark.parametrize(
    ("recipe", "overrides"),
    [("bf16", []), ("prune-structured", ["prune-structured.head_fraction=0"])],
)
def test_pipeline_runs_classifier_artifacts(
    tmp_path, tiny_classifier, sst_file, recipe, overrides, hf
):
    out = hf.build(
        tiny_classifier, "text-classification", recipe, tmp_path / "c", sst_file, overrides
    )
    assert _pipeline_labels(out) == nlpress.load(out).predict(TEXTS).labels
    ns = hf.run_card_code(out, hf.card_code(out)[0])  # the card's pipeline snippet
    assert [p["label"] for p in ns["predictions"]] == nlpress.load(out).predict(TEXTS[:2]).labels


@pytest.mark.slow
def test_default_model_in_sentence_transformers(tmp_path, hf):
    """The default model's own ST files (Normalize included) carry over to a bf16 artifact."""
    out = hf.build("default", None, "bf16", tmp_path / "minilm-bf16")
    assert (out / "2_Normalize").is_dir() or "Normalize" in (out / "modules.json").read_text()
    st, ours = _st_encode(out), nlpress.load(out).encode(TEXTS)
    cos = (st * ours).sum(1) / np.linalg.norm(st, axis=1) / np.linalg.norm(ours, axis=1)
    assert cos.min() > 0.999, cos
    assert hf.card(out)[0]["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.slow
def test_default_model_as_classifier_in_pipeline(tmp_path, sst_file, hf):
    """MiniLM with a (random) classification head, cast to bf16: pipeline agrees with nlpress."""
    out = hf.build("default", "text-classification", "bf16", tmp_path / "minilm-cls", sst_file)
    assert _pipeline_labels(out) == nlpress.load(out).predict(TEXTS).labels
