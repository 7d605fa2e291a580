"""Bitmask storage: bit-identical round trip, and size on disk that falls with sparsity."""

from __future__ import annotations

import pytest
import torch

from nlpress.prune.masks import apply_masks, importance, magnitude_mask
from nlpress.prune.sparse_io import decode, encode, read_sparse, save_sparse


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_encode_decode_bit_identical_with_negative_zero(dtype):
    torch.manual_seed(0)
    t = torch.randn(37, 11).to(dtype)
    t[t.abs() < 0.8] = 0
    t[0, 0], t[1, 1] = -0.0, float("nan")
    bits, values = encode(t)
    back = decode(bits, values, list(t.shape))
    assert back.dtype == dtype
    assert torch.equal(
        back.view(torch.int16 if dtype != torch.float32 else torch.int32),
        t.view(torch.int16 if dtype != torch.float32 else torch.int32),
    )
    assert bits.numel() == -(-t.numel() // 8)


def _sparse_model(sparsity):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    m = BertModel(
        BertConfig(
            vocab_size=40,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=256,
            max_position_embeddings=16,
        )
    ).eval()
    masks = {
        f"{n}.weight": magnitude_mask(importance(mod.weight), sparsity)
        for n, mod in m.named_modules()
        if isinstance(mod, torch.nn.Linear) and ".layer." in f".{n}"
    }
    apply_masks(m, masks)
    return m


def test_round_trip_exact_and_size_falls_with_sparsity(tmp_path):
    sizes = {}
    for s in (0.0, 0.5, 0.9):
        m = _sparse_model(s)
        folder = tmp_path / str(s)
        folder.mkdir()
        save_sparse(m, folder)
        sizes[s] = (folder / "model.safetensors").stat().st_size
        back = read_sparse(folder / "model.safetensors")
        for k, v in m.state_dict().items():
            assert torch.equal(back[k], v), k
    dense = sum(v.numel() * 4 for v in _sparse_model(0.0).state_dict().values())
    assert sizes[0.0] == pytest.approx(dense, rel=0.02)  # nothing pays at 0%: stored dense
    assert sizes[0.9] < sizes[0.5] < sizes[0.0]
    linear = sum(
        mod.weight.numel() * 4
        for n, mod in _sparse_model(0.0).named_modules()
        if isinstance(mod, torch.nn.Linear) and ".layer." in f".{n}"
    )
    # the linear layers' share: 1/8 byte of mask + 10% of the values, per weight
    saved = sizes[0.0] - sizes[0.9]
    assert saved == pytest.approx(linear * (1 - 1 / 32 - 0.1), rel=0.03)
