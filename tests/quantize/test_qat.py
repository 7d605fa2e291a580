"""Quantization-aware training (nlpress.quantize.qat): the fake quantizers match ORT's int8, the
step trains and leaves plain Linears, and the recipe order is checked."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nlpress
from nlpress.bench.harness import BenchConfig
from nlpress.errors import NlpressError
from nlpress.quantize.qat import FakeQuant, fake_quant_activation, fake_quant_weight
from nlpress.recipe import recipe_from_dict

BENCH = BenchConfig(rounds=1, seq_len=16, progress=False, latency_samples=2, throughput_batches=1)


def test_weight_fake_quant_is_symmetric_per_channel_int8():
    w = torch.randn(6, 16)
    q = fake_quant_weight(w)
    scale = w.abs().amax(1, keepdim=True) / 127
    codes = q / scale
    assert torch.allclose(codes, codes.round(), atol=1e-4)  # on the int8 grid of each row
    assert codes.abs().max() <= 127 + 1e-4
    assert torch.allclose(q.abs().amax(1), w.abs().amax(1))  # each row's max is kept exactly


def test_activation_fake_quant_matches_ort_dynamic_quantize_linear():
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [
            helper.make_node("DynamicQuantizeLinear", ["x"], ["q", "s", "z"]),
            helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"]),
        ],
        "dql",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 32])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for x in (torch.randn(4, 32) * 3 + 1, torch.rand(4, 32) + 0.5, -torch.rand(4, 32)):
        ref = sess.run(None, {"x": x.numpy()})[0]
        np.testing.assert_allclose(fake_quant_activation(x).numpy(), ref, atol=1e-6)


def test_straight_through_gradients_and_removal_leaves_plain_linears():
    lin = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    fq = FakeQuant(lin, ["0", "2"])
    x = torch.randn(5, 8)
    lin(x).sum().backward()
    grad = lin[0].parametrizations.weight.original.grad
    assert grad is not None and grad.abs().sum() > 0  # STE: rounding passes gradients
    before = lin[0].parametrizations.weight.original.detach().clone()
    fq.remove()
    assert type(lin[0].weight) is torch.nn.Parameter and not hasattr(lin[0], "parametrizations")
    assert torch.equal(lin[0].weight.detach(), before)  # the trained float weight, unrounded
    assert not lin[0]._forward_pre_hooks


def test_qat_recipe_trains_and_exports_plain_int8(tiny_bert, sts_file, tmp_path):
    steps = [
        {"qat": {"batch_size": 4, "max_steps": 3, "lr": 1e-3}},
        {"export-onnx": {}},
        {"quantize-dynamic-int8": {}},
    ]
    rcp = recipe_from_dict({"name": "t", "steps": steps})
    art = nlpress.compress(
        tiny_bert,
        None,
        sts_file,
        rcp,
        tmp_path / "q",
        limit=8,
        bench=BENCH,
        memory=False,
        progress=False,
    )
    info = art.metrics["steps"][0]["info"]
    assert info["train_steps"] == 3 and info["fake_quantized_linears"] > 0
    assert art.metrics["result"]["backend"] == "onnxruntime"
    assert 0.5 < art.metrics["result"]["fidelity"]["cosine_mean"] <= 1.0
    ops = nlpress.load(art.path).compute_profile()
    assert ops["format"] == "int8"


def test_qat_trains_without_dropout_and_restores_it(tiny_bert, monkeypatch):
    # QAT matches the fp32 model's outputs: dropout off while training (seen from inside the
    # training run), every rate back afterwards; ``dropout: true`` keeps it on
    from transformers import AutoModel

    from nlpress.prune import recover
    from nlpress.quantize import qat
    from nlpress.step_configs import QatConfig

    model = AutoModel.from_pretrained(tiny_bert)
    rates = [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)]
    assert rates and max(rates) > 0
    seen = []

    def fake_run(st, cfg, callbacks):
        seen.append([m.p for m in st.torch_model.modules() if isinstance(m, torch.nn.Dropout)])
        return st.torch_model, type("R", (), {"steps": 0, "seconds": 0.0, "history": []})()

    monkeypatch.setattr(recover, "_run", fake_run)

    class St:
        torch_model = model
        weights_format = None

    qat.step_qat(St, QatConfig())
    qat.step_qat(St, QatConfig(dropout=True))
    assert seen[0] == [0.0] * len(rates) and seen[1] == rates
    assert [m.p for m in model.modules() if isinstance(m, torch.nn.Dropout)] == rates


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ([{"qat": {}}], "needs export-onnx and quantize-dynamic-int8 after it"),
        ([{"export-onnx": {}}, {"qat": {}}, {"quantize-dynamic-int8": {}}], "must come before"),
        ([{"qat": {}}, {"quantize-dynamic-int8": {"backend": "torch"}}], "needs export-onnx"),
    ],
)
def test_qat_order_errors(steps, message):
    with pytest.raises(NlpressError, match=message):
        recipe_from_dict({"name": "t", "steps": steps})


def test_qat_needs_training_data(tiny_bert, tmp_path):
    with pytest.raises(NlpressError, match="needs training data"):
        nlpress.compress(tiny_bert, recipe="int8-qat", out=tmp_path / "o", progress=False)
    assert not (tmp_path / "o").exists()
