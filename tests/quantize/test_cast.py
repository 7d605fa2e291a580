import numpy as np
import pytest
import torch

import nlpress
from nlpress.bench import BenchConfig
from nlpress.errors import NlpressError
from nlpress.quantize.cast import cast_model
from nlpress.recipe import CastConfig


def test_bf16_artifact_is_half_size_and_close(tiny_bert, tmp_path):
    art = nlpress.compress(
        tiny_bert,
        data=None,
        recipe="bf16",
        out=tmp_path / "o",
        memory=False,
        progress=False,
        bench=BenchConfig(rounds=1, latency_samples=2, progress=False),
    )
    m = art.metrics
    assert m["result"]["backend"] == "pytorch"
    assert 0.45 < m["ratios"]["size_fraction"] < 0.56
    assert m["result"]["fidelity"]["cosine_min"] > 0.999
    p = nlpress.load(art.path)
    assert next(p.module.parameters()).dtype == torch.bfloat16
    emb = p.encode(["a cat sat on the mat", "good movie"])
    assert emb.dtype == np.float32 and emb.shape == (2, 32)


def test_fp16_needs_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("has a GPU")
    with pytest.raises(NlpressError, match="needs a GPU"):
        cast_model(torch.nn.Linear(2, 2), CastConfig(dtype="fp16"))
