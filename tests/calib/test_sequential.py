"""The sequential engine: statistics against plain hooks, and next-block inputs from modified blocks."""

import pytest
import torch

from nlpress.calib.sequential import LayerStats, run_sequential
from nlpress.errors import NlpressError


def test_statistics_match_plain_hooks_and_are_shared(llama_model, llama_batches, inputs_of):
    model, batches = llama_model, llama_batches
    x = inputs_of(model, model.model.layers[0].self_attn.q_proj, batches)  # unchanged model
    seen = {}

    def transform(ctx):
        seen[ctx.index] = ctx
        return {"block": ctx.index}

    infos = run_sequential(
        model,
        batches,
        transform,
        collect=("hessian", "abs_mean", "abs_max", "sq_sum"),
        progress=False,
    )
    assert infos == [{"block": 0}, {"block": 1}]
    st = seen[0].stats["model.layers.0.self_attn.q_proj"]
    torch.testing.assert_close(st.hessian, 2.0 / x.shape[0] * x.t() @ x, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(st.abs_mean, x.abs().mean(0))
    torch.testing.assert_close(st.abs_max, x.abs().amax(0))
    torch.testing.assert_close(st.sq_sum, x.square().sum(0), rtol=1e-5, atol=1e-5)
    assert st.n == x.shape[0]
    # q, k and v read the same tensor: one statistics object
    assert seen[0].stats["model.layers.0.self_attn.k_proj"] is st
    assert seen[0].stats["model.layers.0.self_attn.o_proj"] is not st
    assert len(seen[0].linears) == 7 and len(seen[0].scale_groups) == 3


def test_next_block_sees_the_modified_block(llama_model, llama_batches):
    model, batches = llama_model, llama_batches
    layer1 = model.model.layers[1]
    # with block 0's output projections zeroed, block 0 is the identity (residuals only), so
    # block 1's q_proj reads input_layernorm_1(embeddings)
    with torch.no_grad():
        emb = torch.cat([model.model.embed_tokens(b["input_ids"]).reshape(-1, 32) for b in batches])
        expected = layer1.input_layernorm(emb)

    def transform(ctx):
        if ctx.index == 0:
            for name, lin in ctx.linears.items():
                if name.endswith(("o_proj", "down_proj")):
                    lin.weight.data.zero_()
        return {}

    seen = {}

    def spy(ctx):
        seen[ctx.index] = ctx.stats["model.layers.1.self_attn.q_proj"] if ctx.index else None
        return transform(ctx)

    run_sequential(model, batches, spy, collect=("hessian",), progress=False)
    h = seen[1].hessian
    torch.testing.assert_close(
        h, 2.0 / expected.shape[0] * expected.t() @ expected, atol=1e-5, rtol=1e-4
    )


def test_bert_blocks_and_selection(tiny_bert):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(tiny_bert).eval()
    batches = [
        {
            "input_ids": torch.randint(5, 50, (2, 8)),
            "attention_mask": torch.ones(2, 8, dtype=torch.long),
        }
    ]
    names = []
    run_sequential(
        model,
        batches,
        lambda ctx: names.extend(ctx.linears) or {},
        collect=("abs_max",),
        ignore=["re:.*attention.*"],
        progress=False,
    )
    assert names and all("attention" not in n for n in names)
    assert "encoder.layer.1.output.dense" in names
    with pytest.raises(NlpressError, match="no linear layers"):
        run_sequential(model, batches, lambda ctx: {}, ignore=["re:.*"], progress=False)


def test_layer_stats_accumulate_like_one_batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 6, generator=g)
    collect = frozenset({"hessian", "abs_mean", "sq_sum", "abs_max", "samples"})
    one, parts = LayerStats(collect=collect), LayerStats(collect=collect)
    one.add(x)
    for chunk in (x[:7], x[7:30], x[30:]):
        parts.add(chunk)
    for key in ("hessian", "abs_mean", "sq_sum", "abs_max"):
        torch.testing.assert_close(getattr(parts, key), getattr(one, key))
    assert parts.samples.shape[1] == 6 and parts.n == 50
