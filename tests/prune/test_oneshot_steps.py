"""Wanda/SparseGPT on a tiny Llama through the calibration engine: masks, exact sparsity, inputs."""

from __future__ import annotations

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.prune.oneshot import sparsegpt_prune, wanda_mask
from nlpress.prune.oneshot_steps import prune_oneshot
from nlpress.recipe import PruneSparseGPTConfig, PruneWandaConfig


def test_wanda_prunes_every_block_linear_per_row_from_calibration_inputs(
    llama_model, llama_batches, inputs_of
):
    model, batches = llama_model, llama_batches
    up = model.model.layers[0].mlp.up_proj
    x, w0 = inputs_of(model, up, batches), up.weight.detach().clone()  # block 0: unpruned inputs
    masks, summary = prune_oneshot(model, PruneWandaConfig(sparsity=0.5), batches, progress=False)
    assert len(masks) == 14 and summary["info"]["layers"] == 14
    assert summary["info"]["sparsity"] == 0.5 and summary["info"]["method"] == "wanda"
    assert set(summary["per_layer"].values()) == {0.5}
    for name, mask in masks.items():
        w = model.get_parameter(name)
        assert (w[~mask] == 0).all()
        assert ((~mask).sum(1) == w.shape[1] // 2).all()  # per output row
    assert torch.equal(
        masks["model.layers.0.mlp.up_proj.weight"], wanda_mask(w0, x.norm(dim=0), 0.5)
    )


def test_sparsegpt_24_reconstructs_block0_like_the_pure_function(
    llama_model, llama_batches, inputs_of
):
    model, batches = llama_model, llama_batches
    q = model.model.layers[0].self_attn.q_proj
    x, w0 = inputs_of(model, q, batches), q.weight.detach().clone()
    cfg = PruneSparseGPTConfig(n=2, m=4, ignore=["re:.*down_proj"])
    masks, summary = prune_oneshot(model, cfg, batches, progress=False)
    assert len(masks) == 12 and summary["info"]["method"] == "sparsegpt 2:4"
    for name, mask in masks.items():
        assert (mask.reshape(mask.shape[0], -1, 4).sum(-1) == 2).all()
        assert (model.get_parameter(name)[~mask] == 0).all()
    assert (model.model.layers[1].mlp.down_proj.weight != 0).all()  # ignored: untouched
    ref, _, _ = sparsegpt_prune(w0, 2.0 / x.shape[0] * x.t() @ x, nm=(2, 4))
    torch.testing.assert_close(q.weight.detach(), ref, atol=1e-4, rtol=1e-4)
    assert not torch.equal(q.weight.detach(), w0 * masks["model.layers.0.self_attn.q_proj.weight"])


def test_sparsegpt_falls_back_to_wanda_on_singular_hessian(llama_model, llama_batches, monkeypatch):
    import nlpress.quantize.gptq as gptq

    def fail(h, percdamp):
        raise gptq.GPTQError("not positive definite")

    monkeypatch.setattr(gptq, "inverse_hessian_chol", fail)
    model = llama_model
    masks, summary = prune_oneshot(model, PruneSparseGPTConfig(sparsity=0.25), llama_batches, False)
    assert len(summary["info"]["wanda_fallback_layers"]) == 14
    assert all(((~m).sum(1) == m.shape[1] // 4).all() for m in masks.values())


def test_bad_configs_name_the_problem(llama_model, llama_batches):
    model, batches = llama_model, llama_batches
    with pytest.raises(NlpressError, match="no linear layer"):
        prune_oneshot(model, PruneWandaConfig(ignore=["re:.*"]), batches, False)
    with pytest.raises(NlpressError, match="not divisible by m=5"):
        prune_oneshot(model, PruneWandaConfig(n=2, m=5), batches, False)
    with pytest.raises(NlpressError, match="block_size 6"):
        prune_oneshot(model, PruneSparseGPTConfig(n=2, m=4, block_size=6), batches, False)
    with pytest.raises(NlpressError, match="calibration data"):
        prune_oneshot(model, PruneWandaConfig(), [], False)
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="both n and m"):
        PruneWandaConfig(n=2)
    with pytest.raises(ValidationError, match="n < m"):
        PruneSparseGPTConfig(n=4, m=4)


def test_encoders_prune_through_the_same_engine(tiny_bert):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_bert).eval()
    g = torch.Generator().manual_seed(1)
    batches = [
        {
            "input_ids": torch.randint(5, 50, (2, 8), generator=g),
            "attention_mask": torch.ones(2, 8, dtype=torch.long),
        }
    ]
    masks, summary = prune_oneshot(model, PruneSparseGPTConfig(sparsity=0.5), batches, False)
    assert "encoder.layer.1.output.dense.weight" in masks
    assert summary["info"]["sparsity"] == 0.5
    assert (
        model.encoder.layer[1].output.dense.weight[~masks["encoder.layer.1.output.dense.weight"]]
        == 0
    ).all()
