"""Each distillation loss against a plain loop over its textbook formula."""

from __future__ import annotations

import math

import pytest
import torch

from nlpress.train import losses as L


def _softmax(row: list[float], t: float) -> list[float]:
    e = [math.exp(x / t) for x in row]
    return [x / sum(e) for x in e]


def _ref_kd(s, t, y, temp, alpha) -> float:
    soft = hard = 0.0
    for i in range(len(s)):
        p, q = _softmax(t[i], temp), _softmax(s[i], temp)
        soft += sum(pj * (math.log(pj) - math.log(qj)) for pj, qj in zip(p, q, strict=True))
        if y is not None:
            hard -= math.log(_softmax(s[i], 1.0)[y[i]])
    n = len(s)
    if y is None:
        return soft / n * temp * temp
    return alpha * soft / n * temp * temp + (1 - alpha) * hard / n


@pytest.mark.parametrize("temp,alpha", [(1.0, 0.5), (2.0, 0.9), (4.0, 0.0)])
def test_kd_loss_matches_formula(temp, alpha):
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(5, 3, generator=g), torch.randn(5, 3, generator=g) * 2
    y = torch.tensor([0, 2, 1, 1, 0])
    got = L.kd_loss(s, t, y, temperature=temp, alpha=alpha)
    want = _ref_kd(s.tolist(), t.tolist(), y.tolist(), temp, alpha)
    torch.testing.assert_close(got, torch.tensor(want), rtol=1e-5, atol=1e-6)
    no_labels = L.kd_loss(s, t, None, temperature=temp, alpha=alpha)
    torch.testing.assert_close(
        no_labels, torch.tensor(_ref_kd(s.tolist(), t.tolist(), None, temp, 1))
    )


def test_kd_loss_is_zero_for_identical_logits_and_grows_with_difference():
    s = torch.randn(4, 5)
    assert float(L.kd_loss(s, s.clone(), temperature=3.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(L.kd_loss(s, s + torch.randn(4, 5))) > 1e-3


def test_hidden_mse_with_mask_and_projection():
    g = torch.Generator().manual_seed(1)
    s, t = torch.randn(2, 4, 3, generator=g), torch.randn(2, 4, 5, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    proj = torch.nn.Linear(3, 5)
    got = L.hidden_mse(s, t, mask, proj)
    total, count = 0.0, 0
    with torch.no_grad():
        for b in range(2):
            for i in range(4):
                if mask[b, i]:
                    ps = proj(s[b, i])
                    total += sum((float(ps[k]) - float(t[b, i, k])) ** 2 for k in range(5))
                    count += 5
    torch.testing.assert_close(got, torch.tensor(total / count), rtol=1e-5, atol=1e-6)
    got.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0  # W_h is learned
    with pytest.raises(ValueError, match="projection"):
        L.hidden_mse(s, t, mask)


def _att(g, shape):
    return torch.softmax(torch.randn(*shape, generator=g), dim=-1)


def test_attention_losses_match_formula():
    g = torch.Generator().manual_seed(2)
    s, t = _att(g, (2, 2, 3, 3)), _att(g, (2, 2, 3, 3))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    mse_sum = kl_sum = 0.0
    rows = 0
    for b in range(2):
        for h in range(2):
            for i in range(3):
                if not mask[b, i]:
                    continue
                rows += 1
                for j in range(3):
                    mse_sum += (float(s[b, h, i, j]) - float(t[b, h, i, j])) ** 2
                    p = float(t[b, h, i, j])
                    kl_sum += p * (math.log(p) - math.log(float(s[b, h, i, j])))
    torch.testing.assert_close(L.attention_mse(s, t, mask), torch.tensor(mse_sum / (rows * 3)))
    torch.testing.assert_close(
        L.attention_kl(s, t, mask), torch.tensor(kl_sum / rows), rtol=1e-5, atol=1e-6
    )
    with pytest.raises(ValueError, match="heads"):
        L.attention_kl(s[:, :1], t, mask)


def test_embedding_losses_match_formula():
    g = torch.Generator().manual_seed(3)
    s, t = torch.randn(3, 4, generator=g), torch.randn(3, 4, generator=g)
    cos = [
        sum(a * b for a, b in zip(x, y, strict=True))
        / math.sqrt(sum(a * a for a in x) * sum(b * b for b in y))
        for x, y in zip(s.tolist(), t.tolist(), strict=True)
    ]
    torch.testing.assert_close(
        L.embedding_loss(s, t, "cosine"), torch.tensor(sum(1 - c for c in cos) / 3)
    )
    mse = (
        sum(
            (a - b) ** 2
            for x, y in zip(s.tolist(), t.tolist(), strict=True)
            for a, b in zip(x, y, strict=True)
        )
        / 12
    )
    torch.testing.assert_close(L.embedding_loss(s, t, "mse"), torch.tensor(mse))
    assert float(L.embedding_loss(s, 2 * s, "cosine")) == pytest.approx(0.0, abs=1e-6)


def test_layer_map():
    assert L.layer_map(3, 6) == [1, 3, 5]
    assert L.layer_map(6, 6) == list(range(6))
    assert L.layer_map(1, 12) == [11]
    with pytest.raises(ValueError):
        L.layer_map(7, 6)
