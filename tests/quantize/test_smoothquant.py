"""SmoothQuant: the smoothed fp32 model computes the same function; int8 after it agrees with PyTorch."""

import copy

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.quantize.smoothquant import smooth_model
from nlpress.recipe import SmoothQuantConfig, load_recipe


def _batches(vocab, n=2):
    g = torch.Generator().manual_seed(0)
    out = []
    for _ in range(n):
        ids = torch.randint(5, vocab, (2, 16), generator=g)
        out.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    return out


def test_smoothing_keeps_the_fp32_function(tiny_llama):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_llama, dtype=torch.float32).eval()
    ref = copy.deepcopy(model)
    batches = _batches(model.config.vocab_size)
    info = smooth_model(model, SmoothQuantConfig(alpha=0.6), batches, progress=False)
    assert info["groups"] == 6  # norm -> qkv, norm -> gate/up, up -> down; 2 blocks
    changed = [
        n for (n, a), b in zip(model.named_parameters(), ref.parameters(), strict=True)
        if not torch.equal(a, b)
    ]  # fmt: skip
    assert changed
    with torch.no_grad():
        for b in batches:
            torch.testing.assert_close(model(**b).logits, ref(**b).logits, atol=1e-4, rtol=1e-4)


def test_post_ln_bert_is_a_clear_error(tiny_classifier):
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier)
    with pytest.raises(NlpressError, match="residual stream"):
        smooth_model(model, SmoothQuantConfig(), _batches(model.config.vocab_size), progress=False)


def test_smoothquant_int8_artifact_agrees_with_pytorch(tiny_llama128, lm_corpus, tmp_path):
    import nlpress
    from nlpress.bench.harness import BenchConfig

    art = nlpress.compress(
        tiny_llama128,
        data=lm_corpus,
        overrides=["smoothquant.seq_len=64", "smoothquant.num_samples=8"],
        recipe="int8-smoothquant",
        out=tmp_path / "sq",
        bench=BenchConfig(rounds=1, seq_len=16, progress=False),
        memory=False,
        progress=False,
    )
    steps = {s["name"]: s["info"] for s in art.metrics["steps"]}
    assert steps["smoothquant"]["groups"] == 6
    assert steps["export-onnx"]  # exported from the smoothed model and validated against it
    fid = art.metrics["result"]["fidelity"]
    assert fid["top1_agreement"] >= 0.95, fid


def test_smoothquant_must_come_first():
    from nlpress.recipe import recipe_from_dict

    assert load_recipe("int8-smoothquant").steps[0] == SmoothQuantConfig()
    with pytest.raises(NlpressError, match="must be the first step"):
        recipe_from_dict({"steps": [{"export-onnx": {}}, {"smoothquant": {}}]})
    with pytest.raises(NlpressError, match="int8"):
        recipe_from_dict({"steps": [{"smoothquant": {}}, {"cast": {}}]})
