"""Structured pruning: scores against plain loops, exact counts, identical outputs when the
removed units were already zero, plain transformers loading, ONNX export, clear refusals."""

from __future__ import annotations

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.prune.adapters import blocks, geometry, layout_for, shrink, unit_rows
from nlpress.prune.structured import (
    head_magnitude,
    keep_indices,
    neuron_magnitude,
    prune_structured,
)
from nlpress.recipe import PruneStructuredConfig


def _bert(cls_name="BertModel", layers=2):
    import transformers

    torch.manual_seed(0)
    cfg = transformers.BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=layers,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
    )
    return getattr(transformers, cls_name)(cfg).eval()


def _llama(layers=3):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(1)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(cfg).eval()


def _inputs():
    ids = torch.tensor([[2, 7, 9, 11, 13, 3], [2, 5, 8, 3, 0, 0]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


def _zero_units(model, heads_gone, neurons_gone, layers=None):
    """Zero the output weights of the units to be removed, so removing them changes nothing."""
    lay, geo = layout_for(model), geometry(model)
    with torch.no_grad():
        for i, b in enumerate(blocks(model)):
            if layers is not None and i not in layers:
                continue
            q_rows, _ = unit_rows(torch.tensor(heads_gone), geo)
            b.get_submodule(lay.o).weight[:, q_rows] = 0
            b.get_submodule(lay.ffn_out).weight[:, neurons_gone] = 0


def test_keep_indices_reference():
    s = torch.tensor([0.5, 0.1, 0.9, 0.1, 0.3])
    assert keep_indices(s, 2).tolist() == [0, 2, 4]  # the two 0.1s go
    assert keep_indices(torch.ones(4), 1).tolist() == [1, 2, 3]  # tie: lower index goes
    assert keep_indices(s, 0).tolist() == [0, 1, 2, 3, 4]


def test_head_and_neuron_magnitude_match_plain_loops():
    m = _bert()
    lay, geo = layout_for(m), geometry(m)
    b = blocks(m)[0]
    got = head_magnitude(b, lay, geo)
    hd = geo.head_dim
    for h in range(4):
        sl = slice(h * hd, (h + 1) * hd)
        ref = (
            sum(b.get_submodule(n).weight[sl].pow(2).sum() for n in (lay.q, lay.k, lay.v))
            + b.get_submodule(lay.o).weight[:, sl].pow(2).sum()
        )
        assert got[h].item() == pytest.approx(ref.sqrt().item(), rel=1e-5)
    nm = neuron_magnitude(b, lay)
    j = 17
    ref = (
        b.get_submodule(lay.ffn_in[0]).weight[j].pow(2).sum()
        + b.get_submodule(lay.ffn_out).weight[:, j].pow(2).sum()
    ).sqrt()
    assert nm[j].item() == pytest.approx(ref.item(), rel=1e-5)


@pytest.mark.parametrize("cls_name", ["BertModel", "BertForSequenceClassification"])
def test_bert_removal_of_zeroed_units_keeps_outputs(cls_name):
    m = _bert(cls_name)
    _zero_units(m, [1], list(range(0, 64, 2)))
    keep_h, keep_n = torch.tensor([0, 2, 3]), torch.arange(1, 64, 2)
    small = shrink(m, [0, 1], [keep_h] * 2, [keep_n] * 2)
    x = _inputs()
    with torch.no_grad():
        a, b = m(**x), small(**x)
    if cls_name == "BertModel":
        mask = x["attention_mask"].bool()
        torch.testing.assert_close(
            b.last_hidden_state[mask], a.last_hidden_state[mask], atol=1e-5, rtol=0
        )
    else:
        torch.testing.assert_close(b.logits, a.logits, atol=1e-5, rtol=0)
    assert small.config.intermediate_size == 32
    assert small.config.nlpress_attention_heads == 3
    assert blocks(small)[0].attention.self.query.weight.shape == (24, 32)
    assert sum(p.numel() for p in small.parameters()) < sum(p.numel() for p in m.parameters())


def test_llama_removal_of_zeroed_groups_neurons_and_layer_keeps_outputs(tmp_path):
    from transformers import AutoModelForCausalLM

    m = _llama()
    _zero_units(m, [0], [3, 5, 40])
    with torch.no_grad():  # a pre-norm block whose outputs are zero is the identity
        blocks(m)[1].self_attn.o_proj.weight.zero_()
        blocks(m)[1].mlp.down_proj.weight.zero_()
    keep_n = torch.tensor([i for i in range(48) if i not in (3, 5, 40)])
    small = shrink(m, [0, 2], [torch.tensor([1])] * 2, [keep_n] * 2)
    x = _inputs()
    with torch.no_grad():
        want = m(**x).logits
        got = small(**x).logits
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    cfg = small.config
    assert (cfg.num_hidden_layers, cfg.num_attention_heads, cfg.num_key_value_heads) == (2, 2, 1)
    assert (cfg.head_dim, cfg.intermediate_size) == (8, 45)
    small.save_pretrained(tmp_path)
    plain = AutoModelForCausalLM.from_pretrained(tmp_path).eval()  # plain transformers
    with torch.no_grad():
        torch.testing.assert_close(plain(**x).logits, want, atol=1e-5, rtol=0)


def test_ffn_pruned_bert_is_a_plain_bert(tmp_path):
    from transformers import AutoModelForSequenceClassification

    m = _bert("BertForSequenceClassification")
    small, summary = prune_structured(m, PruneStructuredConfig(head_fraction=0, ffn_fraction=0.25))
    assert small.config.intermediate_size == 48 and not hasattr(
        small.config, "nlpress_attention_heads"
    )
    small.save_pretrained(tmp_path)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        torch.testing.assert_close(plain(**_inputs()).logits, small(**_inputs()).logits)
    assert summary["info"]["ffn_per_layer"] == "48 of 64"


def test_head_pruned_bert_round_trips_through_bitmask_and_refuses_plain_load(tmp_path):
    from transformers import AutoModel

    from nlpress.prune.sparse_io import load_sparse, save_sparse

    m = _bert()
    small, _ = prune_structured(m, PruneStructuredConfig(head_fraction=0.5, ffn_fraction=0.5))
    save_sparse(small, tmp_path)
    back = load_sparse(tmp_path, AutoModel)
    with torch.no_grad():
        torch.testing.assert_close(
            back(**_inputs()).last_hidden_state,
            small(**_inputs()).last_hidden_state,
            atol=0,
            rtol=0,
        )
    small.save_pretrained(tmp_path / "hf")
    with pytest.raises(RuntimeError, match="mismatched"):  # never loaded with wrong shapes
        AutoModel.from_pretrained(tmp_path / "hf")


@pytest.mark.parametrize("family", ["bert", "llama"])
def test_pruned_model_exports_to_onnx(family, tmp_path, tiny_bert, tiny_llama):
    from nlpress.export.onnx_export import export_onnx
    from nlpress.models.loader import load_model
    from nlpress.recipe import ExportOnnxConfig

    lm = load_model(tiny_bert if family == "bert" else tiny_llama)
    lm.model, _ = prune_structured(lm.model, PruneStructuredConfig(head_fraction=0.5))
    tok = lm.tokenizer(["the movie was great fun", "a dog"], padding=True, return_tensors="np")
    sample = {k: v.astype("int64") for k, v in tok.items()}
    info = export_onnx(lm, tmp_path / "m.onnx", ExportOnnxConfig(), sample)
    assert info["max_abs_diff"] <= 1e-4


def test_exact_counts_per_layer_and_summary():
    m = _llama(layers=4)
    small, s = prune_structured(
        m, PruneStructuredConfig(head_fraction=0.5, ffn_fraction=0.5, drop_layers=[3])
    )
    assert small.config.num_hidden_layers == 3
    assert small.config.intermediate_size == 24 and small.config.num_key_value_heads == 1
    assert s["per_layer"]["layer 3"] == 1.0
    assert 0 < s["per_layer"]["layer 0"] < 1


def test_activation_score_ranks_and_drops_least_influential_layer():
    m = _llama(layers=3)
    with torch.no_grad():  # block 1 becomes the identity: the least influential
        blocks(m)[1].self_attn.o_proj.weight.zero_()
        blocks(m)[1].mlp.down_proj.weight.zero_()
    cfg = PruneStructuredConfig(
        head_fraction=0, ffn_fraction=0.25, layer_fraction=0.34, score="activation"
    )
    small, s = prune_structured(m, cfg, [_inputs()])
    assert s["info"]["layers_dropped"] == [1]
    assert small.config.num_hidden_layers == 2 and small.config.intermediate_size == 36


def test_refusals():
    m = _bert()
    with pytest.raises(NlpressError, match="all 4 heads"):
        prune_structured(m, PruneStructuredConfig(head_fraction=1.0))
    with pytest.raises(ValueError, match="score: activation"):  # refused by the recipe itself
        PruneStructuredConfig(layer_fraction=0.5)
    with pytest.raises(NlpressError, match="drop_layers"):
        prune_structured(m, PruneStructuredConfig(drop_layers=[5]))
    with pytest.raises(NlpressError, match="all 2 layers"):
        prune_structured(m, PruneStructuredConfig(drop_layers=[0, 1]))


def test_activation_score_on_bert_removes_units_that_write_nothing():
    m = _bert()
    _zero_units(m, [1], [5, 9])
    cfg = PruneStructuredConfig(head_fraction=0.25, ffn_fraction=2 / 64, score="activation")
    small, s = prune_structured(m, cfg, [_inputs()])
    x = _inputs()
    with torch.no_grad():
        a, b = m(**x).last_hidden_state, small(**x).last_hidden_state
    mask = x["attention_mask"].bool()
    torch.testing.assert_close(b[mask], a[mask], atol=1e-5, rtol=0)  # exactly the zeroed ones
    assert s["info"]["heads_per_layer"] == "3 of 4" and s["info"]["ffn_per_layer"] == "62 of 64"
