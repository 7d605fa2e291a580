"""GPTQ against a plain column loop written from the paper's Algorithm 1, and against RTN."""

import pytest
import torch

from nlpress.quantize.gptq import GPTQError, gptq_quantize, inverse_hessian_chol
from nlpress.quantize.primitives import QuantSpec, compute_qparams, fake_quantize


def _problem(out=12, inp=32, n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(inp, inp, generator=g) * 0.3 + torch.eye(inp)  # correlated inputs
    x = torch.randn(n, inp, generator=g, dtype=torch.float64) @ mix.double()  # (n, in)
    w = torch.randn(out, inp, generator=g)
    return w, (2.0 / n) * (x.t() @ x)  # H = 2/n X^T X, float64


def reference_range(w: torch.Tensor, row: QuantSpec):
    """The reference quantizer's ``mse`` search, row by row: shrink the range by p = 1, 0.99, ...,
    0.21 and keep the p with the smallest sum |q - w|^2.4."""
    scales, zeros = [], []
    for r in range(w.shape[0]):
        x = w[r : r + 1]
        lo, hi = min(float(x.min()), 0.0), max(float(x.max()), 0.0)
        best = (float("inf"), None, None)
        for i in range(80):
            p = 1 - i / 100
            sc, zp = compute_qparams(x, row, xmin=torch.tensor(p * lo), xmax=torch.tensor(p * hi))
            q = (torch.clamp(torch.round(x / sc) + zp, row.qmin, row.qmax) - zp) * sc
            err = float((q - x).abs().pow(2.4).sum())
            if err < best[0]:
                best = (err, sc, zp)
        scales.append(best[1])
        zeros.append(best[2])
    return torch.cat(scales), torch.cat(zeros)


def reference_gptq(
    w: torch.Tensor, h: torch.Tensor, spec: QuantSpec, percdamp: float, search: bool = False
):
    """Algorithm 1 with block size 1, float64: quantize column j, update every later column."""
    w = w.double().clone()
    h = h.double().clone()
    cols = w.shape[1]
    g = spec.group_size or cols
    h += torch.eye(cols, dtype=torch.float64) * percdamp * torch.diag(h).mean()
    u = torch.linalg.cholesky(torch.linalg.inv(h), upper=True)  # upper Cholesky of H^-1
    row = QuantSpec(bits=spec.bits, symmetric=spec.symmetric, granularity="channel")
    q = torch.zeros_like(w)
    for j in range(cols):
        if j % g == 0:
            params = reference_range if search else compute_qparams
            s, z = params(w[:, j : j + g], row)
            s, z = s[:, 0], z[:, 0].double()
        qj = (torch.clamp(torch.round(w[:, j] / s) + z, row.qmin, row.qmax) - z) * s
        q[:, j] = qj
        err = (w[:, j] - qj) / u[j, j]
        for k in range(j + 1, cols):
            w[:, k] -= err * u[j, k]
    return q


def _layer_error(w, q, h):
    d = w.double() - q.double()  # (out, in)
    return float(torch.trace(d @ h.double() @ d.t()))


@pytest.mark.parametrize(("symmetric", "group"), [(False, 8), (True, 8), (False, None)])
@pytest.mark.parametrize("block_size", [1, 5, 128])
def test_blocked_gptq_matches_the_column_loop(symmetric, group, block_size):
    w, h = _problem()
    gran = "group" if group else "channel"
    spec = QuantSpec(bits=4, symmetric=symmetric, granularity=gran, group_size=group)
    res = gptq_quantize(w, h, spec, percdamp=0.01, block_size=block_size)
    ref = reference_gptq(w, h, spec, 0.01)
    torch.testing.assert_close(res.weight.double(), ref, atol=2e-4, rtol=0)


def test_range_search_matches_the_reference_quantizer_and_lowers_the_layer_error():
    w, h = _problem(seed=3)
    w[2, 5], w[7, 20] = 6.0, -5.0  # outliers that stretch their groups' ranges
    spec = QuantSpec(bits=4, symmetric=False, granularity="group", group_size=8)
    res = gptq_quantize(w, h, spec, percdamp=0.01, block_size=1, range_search=True)
    ref = reference_gptq(w, h, spec, 0.01, search=True)
    torch.testing.assert_close(res.weight.double(), ref, atol=2e-4, rtol=0)
    plain = gptq_quantize(w, h, spec, percdamp=0.01)
    assert not torch.equal(res.weight, plain.weight)
    assert _layer_error(w, res.weight, h) < _layer_error(w, plain.weight, h)


@pytest.mark.parametrize("act_order", [False, True])
def test_gptq_beats_round_to_nearest_on_the_layer_objective(act_order):
    w, h = _problem(seed=1)
    spec = QuantSpec(bits=4, symmetric=False, granularity="group", group_size=8)
    res = gptq_quantize(w, h, spec, act_order=act_order)
    rtn = fake_quantize(w, spec)
    assert _layer_error(w, res.weight, h) < 0.8 * _layer_error(w, rtn, h)
    # every weight lies on its group's grid: (w / s + z) is an integer code in range
    s = res.scale.repeat_interleave(8, dim=1)
    z = res.zero_point.float().repeat_interleave(8, dim=1)
    codes = res.weight / s + z
    assert torch.allclose(codes, codes.round(), atol=1e-3)
    assert codes.round().min() >= 0 and codes.round().max() <= 15


def test_dead_inputs_get_zero_weight():
    w, h = _problem(seed=2)
    h[3, :], h[:, 3] = 0.0, 0.0
    spec = QuantSpec(bits=4, symmetric=True, granularity="group", group_size=8)
    res = gptq_quantize(w, h, spec)
    assert torch.all(res.weight[:, 3] == 0)


def test_damping_is_raised_when_the_hessian_is_not_positive_definite():
    h = torch.diag(torch.tensor([1.0, 1.0, 1.0, -0.05]))
    upper, damp = inverse_hessian_chol(h, 0.01)
    assert damp == pytest.approx(0.1)
    hd = h + torch.eye(4) * damp * h.diag().mean()
    torch.testing.assert_close(upper.t() @ upper, torch.linalg.inv(hd), atol=1e-4, rtol=1e-4)
    with pytest.raises(GPTQError):
        inverse_hessian_chol(torch.diag(torch.tensor([1.0, -50.0])), 0.01)
