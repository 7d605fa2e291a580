"""``nlpress compress`` end to end on each task, each built-in recipe and a YAML recipe."""

from __future__ import annotations

import json

import numpy as np
import pytest

import nlpress


def test_sentence_embedding_subprocess_with_memory(
    tiny_bert, sts_file, tmp_path, cli_subprocess, check_artifact
):
    """The one full run in a fresh process: memory probe on, --json on stdout, then load()."""
    out = tmp_path / "emb"
    r = cli_subprocess(
        "compress",
        "--model",
        tiny_bert,
        "--data",
        sts_file,
        "--out",
        out,
        "--rounds",
        "1",
        "--seq-len",
        "16",
        "--json",
    )
    assert r.rc == 0, r.err
    printed = r.json()
    assert printed["artifact"] == str(out)
    metrics = check_artifact(out, "model.onnx")
    assert metrics["task"] == "sentence-embedding"
    assert printed["result"]["quality"] == metrics["result"]["quality"]
    assert "env" not in printed  # the environment lives in env.json
    for row in ("baseline", "result"):
        assert "spearman" in metrics[row]["quality"]
        assert metrics[row]["peak_memory_mb"] > 0 and metrics[row]["peak_rss_mb"] > 0
    assert metrics["result"]["fidelity"]["cosine_mean"] > 0.99  # int8 of a random tiny BERT
    # STS pairs: whether int8 keeps the ranking of the pairs' similarities (6 pairs here)
    assert 0.5 < metrics["result"]["fidelity"]["similarity_spearman"] <= 1.0
    assert metrics["data"] == {"source": str(sts_file), "n": 6}

    m = nlpress.load(out)
    assert m.backend == "onnxruntime"
    emb = m.encode(["a man is playing a guitar", "a cat", "the quick brown fox jumps"])
    assert isinstance(emb, np.ndarray) and emb.shape == (3, 32)
    assert np.isfinite(emb).all()
    with pytest.raises(nlpress.NlpressError, match="predict"):
        m.predict(["a cat"])


def test_text_classification(tiny_classifier, sst_file, tmp_path, cli, check_artifact):
    """Default --seq-len: the report adds the fixed 128-token benchmark."""
    out = tmp_path / "cls"
    r = cli(
        "compress",
        "--model",
        tiny_classifier,
        "--task",
        "text-classification",
        "--data",
        sst_file,
        "--out",
        out,
        "--rounds",
        "1",
        "--no-memory",
        "--json",
    )
    assert r.rc == 0, r.err
    assert r.json()["artifact"] == str(out)
    metrics = check_artifact(out, "model.onnx")
    assert {"accuracy", "f1"} <= set(metrics["result"]["quality"])
    assert 0 <= metrics["result"]["quality"]["accuracy"] <= 100
    assert metrics["result"]["fidelity"]["top1_agreement"] >= 0.75
    assert [x["seq_len"] for x in metrics["extra_benchmarks"]] == [128]
    assert "peak_memory_mb" not in metrics["result"]  # --no-memory

    m = nlpress.load(out)
    p = m.predict(["the movie was great fun", "a terrible boring plot", "not very good"])
    assert set(p.labels) <= {"negative", "positive"} and len(p.labels) == 3
    assert p.probabilities.shape == (3, 2)
    np.testing.assert_allclose(p.probabilities.sum(axis=1), 1.0, atol=1e-6)
    pairs = m.predict([("a man sat", "a man sat on the mat"), ("good", "bad")])
    assert pairs.probabilities.shape == (2, 2) and len(pairs.labels) == 2
    np.testing.assert_allclose(pairs.probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_causal_lm(tiny_llama, lm_text, tmp_path, cli, fast, check_artifact):
    out = tmp_path / "lm"
    r = cli("compress", "--model", tiny_llama, "--data", lm_text, "--out", out, *fast)
    assert r.rc == 0, r.err
    assert f"artifact: {out}/" in r.out  # the table, not JSON
    metrics = check_artifact(out, "model.onnx")
    assert metrics["task"] == "causal-lm"
    for row in ("baseline", "result"):
        assert metrics[row]["quality"]["perplexity"] > 1
    assert set(metrics["result"]["fidelity"]) >= {"top1_agreement", "kl_mean"}
    # random weights over a 90-word vocabulary: perplexity near the vocabulary size
    ppl = nlpress.load(out).perplexity(lm_text.read_text())
    assert isinstance(ppl, float) and np.isfinite(ppl) and ppl > 1
    assert ppl == pytest.approx(metrics["result"]["quality"]["perplexity"], rel=1e-3)


def test_int8_torch_recipe_through_python_api(tiny_classifier, sst_file, tmp_path, check_artifact):
    from nlpress.bench.harness import BenchConfig

    out = tmp_path / "torch-int8"
    art = nlpress.compress(
        tiny_classifier,
        data=sst_file,
        recipe="int8-torch",
        out=out,
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
    )
    assert art.path == out
    assert art.metrics["result"]["backend"] == "pytorch"
    metrics = check_artifact(out, "model.safetensors")
    assert not list(out.glob("*.onnx"))
    assert metrics["result"]["quality"] == art.metrics["result"]["quality"]
    assert metrics["ratios"]["size_fraction"] < 1  # int8 weights are smaller than fp32
    m = art.load()
    assert m.backend == "pytorch"
    for inputs in (["i love this movie", "i hate this film"], [("a cat", "a dog")]):
        p = m.predict(inputs)
        assert len(p.labels) == len(inputs) and set(p.labels) <= {"negative", "positive"}
        np.testing.assert_allclose(p.probabilities.sum(axis=1), 1.0, atol=1e-6)


def test_onnx_recipe(tiny_bert, sts_file, tmp_path, cli, fast, check_artifact):
    out = tmp_path / "onnx"
    r = cli(
        "compress",
        "--model",
        tiny_bert,
        "--data",
        sts_file,
        "--recipe",
        "onnx",
        "--out",
        out,
        *fast,
    )
    assert r.rc == 0, r.err
    metrics = check_artifact(out, "model.onnx")
    assert [s["name"] for s in metrics["steps"]] == ["export-onnx", "ort-optimize"]
    assert metrics["result"]["fidelity"]["cosine_min"] > 0.9999  # fp32: the same function


def test_yaml_recipe(tiny_bert, sts_file, tmp_path, cli, fast, check_artifact):
    recipe = tmp_path / "my-recipe.yaml"
    recipe.write_text(
        "version: 1\n"
        "name: mine\n"
        "steps:\n"
        "  - export-onnx: {opset: 17, atol: 1.0e-3}\n"
        "  - quantize-dynamic-int8: {per_channel: false, quantize_embeddings: false}\n"
    )
    out = tmp_path / "yaml"
    r = cli(
        "compress",
        "--model",
        tiny_bert,
        "--data",
        sts_file,
        "--recipe",
        recipe,
        "--out",
        out,
        "--json",
        *fast,
    )
    assert r.rc == 0, r.err
    assert r.json()["recipe"] == "mine"
    metrics = check_artifact(out, "model.onnx")
    assert [s["name"] for s in metrics["steps"]] == ["export-onnx", "quantize-dynamic-int8"]
    import yaml

    resolved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert resolved["name"] == "mine"
    export, quant = (next(iter(s.values())) for s in resolved["steps"])
    assert export["atol"] == 1.0e-3 and export["exporter"] == "torchscript"  # defaults filled in
    assert quant["per_channel"] is False and quant["quantize_embeddings"] is False
    assert json.loads((out / "nlpress.json").read_text())["recipe"] == "mine"
