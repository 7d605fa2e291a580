"""The recover step on tiny classifiers: after structured pruning (distillation from the unpruned
model) and after magnitude pruning (fine-tuning with the masks held), and its order checks."""

from __future__ import annotations

import pytest
import torch

import nlpress
from nlpress.bench.harness import BenchConfig
from nlpress.errors import NlpressError
from nlpress.recipe import recipe_from_dict

BENCH = BenchConfig(rounds=1, seq_len=16, progress=False, latency_samples=2, throughput_batches=1)
RECOVER = {"batch_size": 4, "epochs": 2, "max_steps": 3, "lr": 1e-3}


def _compress(model, data, steps, out):
    rcp = recipe_from_dict({"name": "t", "steps": steps})
    return nlpress.compress(
        model, None, data, rcp, out, limit=8, bench=BENCH, memory=False, progress=False
    )


def _pred_model(path):
    return nlpress.load(path).module.model


def test_recover_distill_after_structured_trains_the_smaller_model(
    tiny_classifier, sst_file, tmp_path
):
    ffn = {"head_fraction": 0.0, "ffn_fraction": 0.5}
    _compress(tiny_classifier, sst_file, [{"prune-structured": ffn}], tmp_path / "a")
    steps = [{"prune-structured": ffn}, {"recover": {"method": "distill", **RECOVER}}]
    b = _compress(tiny_classifier, sst_file, steps, tmp_path / "b")
    info = b.metrics["steps"][1]["info"]
    assert info["method"] == "distill" and info["train_steps"] == 3
    assert info["final_loss"] > 0
    assert b.metrics["pruning"]["steps"][-1]["kind"] == "recover"
    pruned, recovered = _pred_model(tmp_path / "a"), _pred_model(tmp_path / "b")
    w0 = pruned.bert.encoder.layer[0].intermediate.dense.weight
    w1 = recovered.bert.encoder.layer[0].intermediate.dense.weight
    assert w1.shape == w0.shape == (32, 32)  # still half the FFN neurons
    assert (w1 - w0).abs().max() > 1e-4  # and trained


def test_recover_finetune_keeps_magnitude_masks(tiny_classifier, sst_file, tmp_path):
    steps = [{"prune-magnitude": {"sparsity": 0.6}}, {"recover": {"method": "finetune", **RECOVER}}]
    art = _compress(tiny_classifier, sst_file, steps, tmp_path / "m")
    assert art.metrics["steps"][1]["info"]["sparsity"] == pytest.approx(0.6, abs=1e-3)
    model = _pred_model(tmp_path / "m")
    for name, m in model.named_modules():
        if isinstance(m, torch.nn.Linear) and ".layer." in name:
            assert int((m.weight == 0).sum()) == round(0.6 * m.weight.numel()), name


@pytest.mark.parametrize(
    ("steps", "match"),
    [
        ([{"recover": {}}], "needs a prune step before it"),
        ([{"prune-magnitude": {}}, {"export-onnx": {}}, {"recover": {}}], "must come before"),
    ],
)
def test_recover_order_errors(steps, match):
    with pytest.raises(NlpressError, match=match):
        recipe_from_dict({"steps": steps})


def test_recover_finetune_needs_labels_for_embeddings(tiny_bert, sts_file, tmp_path):
    steps = [{"prune-magnitude": {}}, {"recover": {"method": "finetune"}}]
    with pytest.raises(NlpressError, match="method finetune needs labels"):
        _compress(tiny_bert, sts_file, steps, tmp_path / "e")
    assert not (tmp_path / "e").exists()
