"""Pruning recipes end to end on tiny models: exact sparsity in the saved artifact, the report's
pruning section and plot, chaining with quantization, and one-line refusals that write nothing."""

from __future__ import annotations

import json

import pytest
import torch

import nlpress
from nlpress.bench.harness import BenchConfig
from nlpress.errors import NlpressError

BENCH = BenchConfig(rounds=1, seq_len=16, progress=False, latency_samples=2, throughput_batches=1)


def _compress(model, data, recipe, out, **kw):
    return nlpress.compress(
        model, None, data, recipe, out, limit=8, bench=BENCH, memory=False, progress=False, **kw
    )


def _linear_weights(model):
    return {
        n: m.weight
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and ".layer." in f".{n}"
    }


def test_magnitude_50_exact_sparsity_in_artifact_and_report(tiny_classifier, sst_file, tmp_path):
    out = tmp_path / "m50"
    art = _compress(tiny_classifier, sst_file, "magnitude-50", out)
    meta = json.loads((out / "nlpress.json").read_text())
    assert meta["weights_format"] == "bitmask"
    pred = nlpress.load(out)  # the bitmask file read back through the runtime
    weights = _linear_weights(pred.module.model)
    assert len(weights) == 12  # 2 layers x (q, k, v, o, in, out)
    for name, w in weights.items():
        assert int((w == 0).sum()) == w.numel() // 2, name  # exactly 50% per layer
    assert art.metrics["pruning"]["kind"] == "unstructured"
    assert art.metrics["pruning"]["per_layer"]["bert.encoder.layer.0.attention.self.query"] == 0.5
    md = (out / "report.md").read_text()
    assert "## Sparsity per layer" in md and "sparsity_per_layer.png" in md
    assert "no faster kernel on CPU PyTorch or ONNX Runtime" in md
    assert (out / "sparsity_per_layer.png").read_bytes()[:4] == b"\x89PNG"
    assert art.metrics["steps"][0]["info"]["sparsity"] == 0.5
    assert "same_backend" not in art.metrics["pruning"]  # the baseline is that reference


def test_global_scope_and_ignore(tiny_classifier, sst_file, tmp_path):
    sets = [
        "prune-magnitude.sparsity=0.7",
        "prune-magnitude.scope=global",
        "prune-magnitude.ignore=['re:.*attention.*']",
    ]
    art = _compress(tiny_classifier, sst_file, "magnitude-50", tmp_path / "g", overrides=sets)
    per = art.metrics["pruning"]["per_layer"]
    assert not any("attention" in k for k in per) and len(per) == 4
    sizes = {k: (32 * 64) for k in per}  # each FFN matrix is 32x64 or 64x32
    removed = sum(per[k] * sizes[k] for k in per)
    assert removed == round(0.7 * sum(sizes.values()))  # exact, globally
    assert len({round(v, 6) for v in per.values()}) > 1  # one threshold, per-layer shares differ


def test_magnitude_2_4_every_group(tiny_llama, tmp_path):
    txt = tmp_path / "lm.txt"
    txt.write_text("the quick brown fox jumps over the lazy dog and the cat sat on the mat\n" * 3)
    out = tmp_path / "nm"
    art = _compress(tiny_llama, txt, "magnitude-2:4", out)
    model = nlpress.load(out).module.model
    for name, w in _linear_weights(model).items():
        groups = (w != 0).reshape(-1, 4).sum(1)
        assert (groups == 2).all(), name
    md = (out / "report.md").read_text()
    assert "sparse tensor-core" in md and art.metrics["pruning"]["kind"] == "2:4"


def test_structured_then_onnx_int8_chain(tiny_classifier, sst_file, tmp_path):
    recipe = tmp_path / "chain.yaml"
    recipe.write_text(
        "steps:\n"
        "  - prune-structured: {head_fraction: 0.5, ffn_fraction: 0.5}\n"
        "  - export-onnx: {}\n"
        "  - quantize-dynamic-int8: {}\n"
    )
    out = tmp_path / "chain"
    art = _compress(tiny_classifier, sst_file, recipe, out)
    assert (out / "model.onnx").is_file()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["intermediate_size"] == 32 and cfg["nlpress_attention_heads"] == 2
    assert art.metrics["steps"][0]["info"]["heads_per_layer"] == "2 of 4"
    same = art.metrics["pruning"]["same_backend"]  # pruned ONNX vs unpruned ONNX, same steps
    assert same["backend"] == "onnxruntime" and same["ratios"]["size_fraction"] < 1
    assert same["unpruned"]["throughput"] > 0 and same["result"]["throughput"] > 0
    assert "on onnxruntime (same steps, same run)" in (out / "report.md").read_text()
    assert not (out / ".unpruned").exists()
    assert nlpress.load(out).predict(["the movie was great"]).labels[0] in ("negative", "positive")


def test_prune_structured_builtin_plain_transformers(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    txt = tmp_path / "lm.txt"
    txt.write_text("the quick brown fox jumps over the lazy dog and the cat sat on the mat\n" * 3)
    out = tmp_path / "st"
    art = _compress(tiny_llama, txt, "prune-structured", out, overrides=["1.head_fraction=0.5"])
    assert json.loads((out / "nlpress.json").read_text())["weights_format"] == "hf"
    plain = AutoModelForCausalLM.from_pretrained(out)
    assert plain.config.num_key_value_heads == 1 and plain.config.intermediate_size == 32
    assert art.metrics["ratios"]["size_fraction"] < 1
    assert "faster on any backend" in (out / "report.md").read_text()


@pytest.mark.parametrize(
    "recipe,sets,match",
    [
        ("magnitude-50", ["prune-magnitude.sparsity=1.0"], "sparsity"),
        ("magnitude-50", ["prune-magnitude.sparsity=-0.5"], "sparsity"),
        ("magnitude-2:4", ["prune-nm.n=4"], "n < m"),
        ("magnitude-50", ["prune-magnitude.targets=['re:.*nothing.*']"], "matches no layer"),
        ("prune-structured", ["prune-structured.head_fraction=1.0"], "all 4 heads"),
    ],
)
def test_bad_inputs_one_line_nothing_written(
    recipe, sets, match, tiny_classifier, sst_file, tmp_path, capsys
):
    from nlpress.cli import main

    out = tmp_path / "bad"
    args = ["compress", "--model", str(tiny_classifier), "--data", str(sst_file)]
    args += ["--recipe", recipe, "--out", str(out), "--rounds", "1", "--no-memory"]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("error:") and match in err[0], err
    assert not out.exists() and not list(tmp_path.glob(".bad*"))


def test_prune_must_come_before_export():
    from nlpress.recipe import recipe_from_dict

    with pytest.raises(NlpressError, match="must come before export-onnx"):
        recipe_from_dict({"steps": [{"export-onnx": {}}, {"prune-magnitude": {}}]})


def test_structured_then_torch_int8(tiny_classifier, sst_file, tmp_path):
    out = tmp_path / "pt8"
    recipe = tmp_path / "pt8.yaml"
    recipe.write_text(
        "steps:\n"
        "  - prune-structured: {head_fraction: 0.5}\n"
        "  - quantize-dynamic-int8: {backend: torch}\n"
    )
    art = _compress(tiny_classifier, sst_file, recipe, out)
    assert json.loads((out / "nlpress.json").read_text())["weights_format"] == "dynamic-int8"
    assert art.metrics["result"]["fidelity"]["top1_agreement"] >= 0.5
    q = nlpress.load(out).module.model.bert.encoder.layer[0].attention.self.query
    assert q.weight().shape == (16, 32)  # 2 of 4 heads, int8


def test_activation_score_uses_calibration_texts(tiny_classifier, sst_file, tmp_path):
    sets = [
        "prune-structured.score=activation",
        "prune-structured.num_samples=8",
        "prune-structured.layer_fraction=0.5",
        "prune-structured.head_fraction=0.25",
    ]
    art = _compress(tiny_classifier, sst_file, "prune-structured", tmp_path / "act", overrides=sets)
    info = art.metrics["steps"][0]["info"]
    assert info["score"] == "activation" and info["layers_kept"] == 1
    assert len(info["layers_dropped"]) == 1 and info["heads_per_layer"] == "3 of 4"
    assert art.metrics["pruning"]["per_layer"][f"layer {info['layers_dropped'][0]}"] == 1.0
