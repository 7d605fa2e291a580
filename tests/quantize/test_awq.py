"""AWQ and SmoothQuant scale math, and scale folding that leaves the function unchanged."""

import pytest
import torch
from torch import nn

from nlpress.quantize.awq import (
    apply_clip,
    awq_scales,
    awq_search,
    clip_search,
    scaled_output_error,
    smooth_scales,
)
from nlpress.quantize.primitives import QuantSpec, fake_quantize
from nlpress.quantize.scale_fold import fold_scales

SPEC = QuantSpec(bits=4, symmetric=False, granularity="group", group_size=16)


def test_awq_scales_formula():
    m = torch.tensor([0.5, 2.0, 8.0, 1.0])
    for alpha in (0.0, 0.3, 0.75):
        s = awq_scales(m, alpha)
        raw = [v**alpha for v in (0.5, 2.0, 8.0, 1.0)]
        norm = (max(raw) * min(raw)) ** 0.5
        torch.testing.assert_close(s, torch.tensor([r / norm for r in raw]))
    assert torch.all(awq_scales(m, 0.0) == 1.0)


def test_output_error_at_unit_scales_is_round_to_nearest():
    g = torch.Generator().manual_seed(0)
    x, w = torch.randn(64, 32, generator=g), torch.randn(8, 32, generator=g)
    err = scaled_output_error(x, [w], torch.ones(32), SPEC)
    expected = float((x @ w.t() - x @ fake_quantize(w, SPEC).t()).square().sum())
    assert err == pytest.approx(expected, rel=1e-5)


def test_search_finds_scales_that_protect_outlier_channels():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 32, generator=g)
    x[:, [3, 17]] *= 30.0  # two salient input channels, as in LLM activations
    ws = [torch.randn(16, 32, generator=g), torch.randn(24, 32, generator=g)]
    res = awq_search(x, ws, x.abs().mean(0), SPEC)
    assert res.alpha > 0
    assert res.error < 0.7 * res.rtn_error


def _group_errors(x, w, wq, g):
    """Mean squared error of each (output row, group)'s part of the output: (out, groups)."""
    xg, a, b = x.reshape(len(x), -1, g), w.reshape(len(w), -1, g), wq.reshape(len(w), -1, g)
    return (
        (torch.einsum("ngk,cgk->cng", xg, a) - torch.einsum("ngk,cgk->cng", xg, b)).square().mean(1)
    )


def test_clip_search_against_a_plain_loop_and_never_worse_than_no_clipping():
    g = torch.Generator().manual_seed(2)
    x, w = torch.randn(96, 32, generator=g), torch.randn(6, 32, generator=g)
    w[0, 3], w[4, 20] = 9.0, -7.0  # one outlier weight per group: clipping it can pay
    bound = clip_search(w, x, SPEC, grid=10, max_shrink=0.5)
    assert bound.shape == (6, 2)
    org = w.abs().reshape(6, 2, 16).amax(-1)
    for r in range(6):  # plain reference: try every shrink for every (row, group)
        for k in range(2):
            cols = slice(16 * k, 16 * k + 16)
            errs = []
            for i in range(5):
                b = float(org[r, k]) * (1 - i / 10)
                q = fake_quantize(w[r : r + 1].clamp(-b, b), SPEC)[0, cols]
                errs.append(float((x[:, cols] @ (w[r, cols] - q)).square().mean()))
            best = min(range(5), key=errs.__getitem__)
            assert float(bound[r, k]) == pytest.approx(float(org[r, k]) * (1 - best / 10))
    clipped = w.clone()
    apply_clip(clipped, bound)
    assert (clipped.abs().reshape(6, 2, 16).amax(-1) <= bound + 1e-6).all()
    before = _group_errors(x, w, fake_quantize(w, SPEC), 16)
    after = _group_errors(x, w, fake_quantize(clipped, SPEC), 16)
    assert (after <= before + 1e-6).all() and (after < before - 1e-4).any()


def test_smoothquant_scales_formula():
    a, w = torch.tensor([4.0, 1.0, 9.0]), torch.tensor([1.0, 4.0, 0.25])
    s = smooth_scales(a, w, 0.5)
    torch.testing.assert_close(s, torch.tensor([2.0, 0.5, 6.0]))


class _RMSNorm(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.weight = nn.Parameter(torch.rand(n) + 0.5)

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.weight


@pytest.mark.parametrize("producer", ["layernorm", "rmsnorm", "linear"])
def test_folding_keeps_the_function(producer):
    torch.manual_seed(0)
    prod = {"layernorm": nn.LayerNorm(16), "rmsnorm": _RMSNorm(16), "linear": nn.Linear(8, 16)}[
        producer
    ]
    if producer == "layernorm":
        nn.init.uniform_(prod.bias, -1, 1)
    cons = [nn.Linear(16, 5), nn.Linear(16, 7)]
    x = torch.randn(4, 16 if producer != "linear" else 8)
    before = [c(prod(x)) for c in cons]
    s = torch.rand(16) * 3 + 0.1
    fold_scales(prod, cons, s)
    for b, c in zip(before, cons, strict=True):
        torch.testing.assert_close(c(prod(x)), b, atol=1e-5, rtol=1e-5)
