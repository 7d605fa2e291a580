"""generate(), the default perplexity protocol and the prefill/decode benchmark on a tiny Llama."""

import numpy as np
import pytest
import torch

import nlpress
from nlpress.errors import NlpressError


def test_perplexity_default_is_non_overlapping_windows(tiny_llama):
    p = nlpress.load(tiny_llama)
    text = " ".join(["the cat sat on the mat and the dog sat on a log"] * 4)
    ids = torch.tensor(p.tokenizer(text)["input_ids"])  # (N,)
    w = 16
    nll, n = 0.0, 0
    with torch.no_grad():
        for s in range(0, ids.numel(), w):
            chunk = ids[s : s + w][None]  # (1, <=w)
            if chunk.shape[1] < 2:
                break
            logits = p.module.model(input_ids=chunk).logits[0]
            nll += torch.nn.functional.cross_entropy(
                logits[:-1], chunk[0, 1:], reduction="sum"
            ).item()
            n += chunk.shape[1] - 1
    assert p.perplexity(text, max_length=w) == pytest.approx(np.exp(nll / n), rel=1e-5)


def test_generate_is_greedy_and_checks_its_arguments(tiny_llama):
    p = nlpress.load(tiny_llama)
    ids = np.asarray(p.tokenizer("the dog", return_tensors="np")["input_ids"])
    from nlpress.runtime.generate import generate_ids

    got = generate_ids(p, ids, 4).tolist()
    seq = torch.from_numpy(ids)
    with torch.no_grad():
        for t in got:
            assert int(p.module.model(input_ids=seq).logits[0, -1].argmax()) == t
            seq = torch.cat([seq, torch.tensor([[t]])], dim=1)
    assert isinstance(p.generate("the dog", max_new_tokens=3), str)
    with pytest.raises(NlpressError, match="max_new_tokens"):
        p.generate("the dog", max_new_tokens=0)


def test_lm_speed_measures_both_phases(tiny_llama):
    from nlpress.bench.lm_speed import LMSpeedConfig, lm_speed

    p = nlpress.load(tiny_llama)
    out = lm_speed({"a": p, "b": p}, "the cat sat on the mat", LMSpeedConfig(16, 4, rounds=2))
    for row in out.values():
        assert row["prefill_tokens_per_s"] > 0 and row["decode_tokens_per_s"] > 0
        assert row["prompt_len"] == 16 and row["new_tokens"] == 4
