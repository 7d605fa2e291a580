"""Weight-only RTN/GPTQ/AWQ on a tiny Llama: storage round trip, kernels, and error order."""

import copy

import pytest
import torch

from nlpress.errors import NlpressError
from nlpress.quantize.primitives import QuantSpec, fake_quantize
from nlpress.quantize.weight_only import (
    lm_calibration_batches,
    quantize_weight_only,
    rtn_quantize,
)
from nlpress.quantize.woq_linear import (
    QuantizedWeight,
    WeightOnlyLinear,
    load_weight_only,
    save_weight_only,
)
from nlpress.recipe import QuantizeWeightOnlyConfig


@pytest.mark.parametrize(
    ("bits", "symmetric", "group"), [(4, False, 32), (4, True, 64), (8, True, None)]
)
def test_stored_codes_dequantize_to_the_rtn_weight(bits, symmetric, group):
    w = torch.randn(24, 128, generator=torch.Generator().manual_seed(bits))
    gran = "group" if group else "channel"
    spec = QuantSpec(bits=bits, symmetric=symmetric, granularity=gran, group_size=group)
    w_q, qw = rtn_quantize(w, spec)
    torch.testing.assert_close(w_q, fake_quantize(w, spec))
    torch.testing.assert_close(qw.dequantize(), w_q, atol=1e-6, rtol=0)
    assert qw.codes.dtype == torch.uint8 and int(qw.codes.max()) < 2**bits


def test_int4_kernel_matches_dequantized_matmul():
    w = torch.randn(96, 256, generator=torch.Generator().manual_seed(0))
    _, qw = rtn_quantize(w, QuantSpec(bits=4, symmetric=False, granularity="group", group_size=64))
    lin = WeightOnlyLinear(qw, torch.randn(96))
    assert lin.kernel == "int4pack"
    x = torch.randn(3, 5, 256)
    ref = x @ qw.dequantize().t() + lin.bias
    y = lin(x)
    assert y.shape == (3, 5, 96)
    assert (y - ref).norm() / ref.norm() < 1e-2  # bf16 activations


def test_unsupported_group_falls_back_to_dequantized():
    w = torch.randn(8, 48)
    _, qw = rtn_quantize(w, QuantSpec(bits=4, symmetric=True, granularity="group", group_size=16))
    lin = WeightOnlyLinear(qw, None)
    assert lin.kernel == "dequantized"
    x = torch.randn(2, 48)
    torch.testing.assert_close(lin(x), x @ qw.dequantize().t())


def _llama(path):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _calib(model, n=16, t=32):
    ids = torch.randint(
        5, model.config.vocab_size, (4000,), generator=torch.Generator().manual_seed(1)
    )
    return lm_calibration_batches(ids, n, t)


def _logit_mse(ref, model, batches):
    with torch.no_grad():
        return sum(float((ref(**b).logits - model(**b).logits).square().mean()) for b in batches)


def test_gptq_and_awq_beat_rtn_on_a_tiny_llama(tiny_llama128):
    fp = _llama(tiny_llama128)
    calib = _calib(fp)
    held_out = lm_calibration_batches(
        torch.randint(5, fp.config.vocab_size, (2000,), generator=torch.Generator().manual_seed(9)),
        8,
        32,
    )
    errs, infos = {}, {}
    for method in ("rtn", "gptq", "awq"):
        m = copy.deepcopy(fp)
        cfg = QuantizeWeightOnlyConfig(method=method, group_size=32)
        infos[method], stored = quantize_weight_only(m, cfg, calib, progress=False)
        assert len(stored) == 14  # 7 linears x 2 blocks; embeddings / head untouched
        errs[method] = _logit_mse(fp, m, held_out)
    assert errs["gptq"] < 0.9 * errs["rtn"], errs
    assert errs["awq"] < errs["rtn"], errs
    assert infos["awq"]["awq_alphas"] and infos["gptq"]["layers"] == 14


def test_artifact_weights_round_trip(tiny_llama128, tmp_path):
    from transformers import AutoModelForCausalLM

    m = _llama(tiny_llama128)
    _, stored = quantize_weight_only(m, QuantizeWeightOnlyConfig(group_size=64), progress=False)
    save_weight_only(m, stored, tmp_path)
    loaded = load_weight_only(tmp_path, AutoModelForCausalLM)
    kinds = {type(mod).__name__ for mod in loaded.modules()}
    assert "WeightOnlyLinear" in kinds
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()
    ids = torch.randint(5, 60, (2, 20))
    with torch.no_grad():
        a, b = m(ids).logits, loaded(ids).logits
    assert (a - b).norm() / a.norm() < 2e-2
    fp_size = sum(f.stat().st_size for f in tiny_llama128.glob("*.safetensors"))
    assert (tmp_path / "model.safetensors").stat().st_size < 0.6 * fp_size


def test_bad_layers_are_clear_errors(tiny_llama):
    m = _llama(tiny_llama)  # 32 wide: group 128 does not divide it
    with pytest.raises(NlpressError, match="group size 128 does not divide"):
        quantize_weight_only(m, QuantizeWeightOnlyConfig(), progress=False)
    with pytest.raises(NlpressError, match="no linear layers to quantize"):
        quantize_weight_only(
            m,
            QuantizeWeightOnlyConfig(group_size=16, targets=["re:.*mlp.*"], ignore=["re:.*"]),
            progress=False,
        )


def test_calibration_windows():
    ids = torch.arange(1000)
    a, b = lm_calibration_batches(ids, 20, 50), lm_calibration_batches(ids, 20, 50)
    assert [x["input_ids"].shape for x in a] == [(8, 50), (8, 50), (4, 50)]
    assert all(torch.equal(x["input_ids"], y["input_ids"]) for x, y in zip(a, b, strict=True))
    row = a[0]["input_ids"][0]
    assert torch.equal(row, torch.arange(int(row[0]), int(row[0]) + 50))  # contiguous windows
    with pytest.raises(NlpressError, match="fewer than one window"):
        lm_calibration_batches(torch.arange(30), 4, 50)


def test_quantized_weight_dequantize_formula():
    qw = QuantizedWeight(
        torch.tensor([[0, 15, 8, 3]], dtype=torch.uint8),
        torch.tensor([[0.5, 2.0]]),
        torch.tensor([[8, 1]], dtype=torch.uint8),
        4,
        2,
    )
    torch.testing.assert_close(qw.dequantize(), torch.tensor([[-4.0, 3.5, 14.0, 4.0]]))


def test_rtn_without_copy_leaves_the_model_and_writes_the_same_artifact(tiny_llama128, tmp_path):
    # the pipeline's RTN step quantizes a module tree that shares the baseline's tensors
    from nlpress.calib.pipeline_steps import shared_copy

    fp = _llama(tiny_llama128)
    before = {k: v.clone() for k, v in fp.state_dict().items()}
    cfg = QuantizeWeightOnlyConfig(group_size=64)
    view = shared_copy(fp)
    assert view.model.embed_tokens.weight is fp.model.embed_tokens.weight  # nothing copied
    _, stored = quantize_weight_only(view, cfg, progress=False, inplace=False)
    for k, v in fp.state_dict().items():
        assert torch.equal(v, before[k]), k  # the baseline is untouched
    inplace = copy.deepcopy(fp)
    _, stored2 = quantize_weight_only(inplace, cfg, progress=False)
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    save_weight_only(view, stored, tmp_path / "a")
    save_weight_only(inplace, stored2, tmp_path / "b")
    # the same tensors and metadata (not the same bytes: safetensors writes the metadata map in
    # the order of a Rust HashMap, which can differ between two saves in one process)
    from safetensors import safe_open

    files = [safe_open(str(tmp_path / d / "model.safetensors"), "pt") for d in ("a", "b")]
    assert files[0].metadata() == files[1].metadata()
    assert sorted(files[0].keys()) == sorted(files[1].keys())
    for k in files[0].keys():
        assert torch.equal(files[0].get_tensor(k), files[1].get_tensor(k)), k
    with pytest.raises(ValueError, match="only RTN"):
        quantize_weight_only(view, QuantizeWeightOnlyConfig(method="gptq"), [], inplace=False)
