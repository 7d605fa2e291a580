"""A causal LM's output head applied in row blocks: the same scores in bounded memory.

Perplexity and the benchmark of a PyTorch causal LM send the last hidden states through the output
head HEAD_ROWS rows at a time instead of holding (T, V) logits; these tests pin that the scores
equal the whole-logits path, that more than one block is exercised, and that a model whose logits
are not its head's plain output keeps the whole-logits path.
"""

import numpy as np
import pytest
import torch

import nlpress
from nlpress.runtime import predictor as predictor_mod
from nlpress.runtime.predictor import Predictor


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(predictor_mod, "HEAD_ROWS", 5)  # a 40-token window spans 8 blocks


def _window(p, n=40):
    text = " ".join(["the cat sat on the mat and the dog sat on a log"] * 6)
    return np.asarray(p.tokenizer(text)["input_ids"], dtype=np.int64)[:n]


@pytest.mark.parametrize("skip", [0, 7, 38])
def test_block_scores_equal_whole_logits(tiny_llama, small_blocks, skip):
    p = nlpress.load(tiny_llama)
    w = _window(p)
    got = p.target_log_probs(w, skip)
    assert p._chunked is True  # the block path ran, not the fallback
    want = Predictor.target_log_probs(p, w, skip)  # whole (T, V) logits, numpy float64
    assert got.dtype == np.float64 and got.shape == (len(w) - 1 - skip,)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize("max_length,stride,scored", [(16, 16, 56), (16, 6, 59)])
def test_perplexity_through_blocks_matches_whole_logits(
    tiny_llama, small_blocks, max_length, stride, scored
):
    from nlpress.evaluate.metrics import perplexity

    p = nlpress.load(tiny_llama)
    ids = _window(p, 60)
    got = perplexity(None, ids, max_length, stride, log_probs_fn=p.target_log_probs)
    want = perplexity(p.next_token_logits, ids, max_length, stride)
    assert got["tokens"] == want["tokens"] == scored  # each window's first token has no context
    assert got["nll"] == pytest.approx(want["nll"], rel=1e-6)
    with torch.no_grad():  # and the first window against torch's own cross entropy
        logits = p.module.model(input_ids=torch.from_numpy(ids[:16])[None]).logits[0]
        ce = torch.nn.functional.cross_entropy(
            logits[:-1], torch.from_numpy(ids[1:16]), reduction="sum"
        )
    assert -p.target_log_probs(ids[:16], 0).sum() == pytest.approx(ce.item(), rel=1e-5)


def test_bench_forward_runs_the_head_in_blocks(tiny_llama, small_blocks, monkeypatch):
    p = nlpress.load(tiny_llama)
    head = p.module.output_head()
    rows = []
    handle = head.register_forward_hook(lambda m, args, out: rows.append(out[..., 0].numel()))
    batch = p.tokenize(["the cat sat on the mat", "a dog"])
    p.bench_forward(batch)
    handle.remove()
    assert p._chunked is True
    b, t = batch["input_ids"].shape
    # the check's whole-logits and block calls on 8 tokens first, then the B*T rows in blocks of 5
    assert rows[:2] == [8, 8] and sum(rows[2:]) == b * t and max(rows[2:]) == 5


def test_scaled_logits_keep_the_whole_logits_path(tiny_llama, small_blocks):
    p = nlpress.load(tiny_llama)
    model = p.module.model
    plain = model.forward

    class Out:
        def __init__(self, logits):
            self.logits = logits

    def scaled(*a, **kw):  # like Cohere's logit_scale: the logits are not the head's output
        return Out(plain(*a, **kw).logits * 0.5)

    model.forward = scaled
    w = _window(p)
    got = p.target_log_probs(w, 0)
    assert p._chunked is False
    np.testing.assert_allclose(got, Predictor.target_log_probs(p, w, 0), rtol=0, atol=1e-9)


def test_logit_blocks_equal_whole_logits_and_leave_grad_mode_alone(tiny_llama, small_blocks):
    p = nlpress.load(tiny_llama)
    w = _window(p, 23)  # 23 rows: four blocks of 5 and one of 3
    blocks = list(p.logit_blocks(w))
    assert p._chunked is True and [b.shape[0] for b in blocks] == [5, 5, 5, 5, 3]
    whole = p.next_token_logits(w[None, :])[0]
    np.testing.assert_allclose(np.concatenate(blocks), whole, rtol=0, atol=1e-5)
    whole_blocks = list(Predictor.logit_blocks(p, w))  # the fallback slices the whole logits
    assert [b.shape[0] for b in whole_blocks] == [5, 5, 5, 5, 3]
    # two generators interleaved, as the fidelity pass runs them: no mode left switched on
    for _ in zip(p.logit_blocks(w), p.logit_blocks(w), strict=True):
        pass
    assert not torch.is_inference_mode_enabled() and torch.is_grad_enabled()


def test_lm_fidelity_through_blocks_equals_whole_logits(tiny_llama, small_blocks, monkeypatch):
    from nlpress.evaluate import task_eval
    from nlpress.evaluate.fidelity import logits_fidelity

    p = nlpress.load(tiny_llama)
    q = nlpress.load(tiny_llama)
    with torch.no_grad():  # a second model that differs: its first weight matrix perturbed
        w0 = next(q.module.parameters())
        w0.add_(0.05 * torch.randn(w0.shape, generator=torch.Generator().manual_seed(0)))
    monkeypatch.setattr(task_eval, "LM_FIDELITY_WINDOWS", 1)
    monkeypatch.setattr(task_eval, "LM_FIDELITY_LEN", 23)
    text = " ".join(["the cat sat on the mat and the dog sat on a log"] * 6)
    got = task_eval.fidelity(p, q, text)
    w = np.asarray(p.tokenizer(text)["input_ids"], dtype=np.int64)[:23][None]
    want = logits_fidelity(p.next_token_logits(w)[0], q.next_token_logits(w)[0])
    assert got["top1_agreement"] == pytest.approx(want["top1_agreement"])
    assert got["kl_mean"] == pytest.approx(want["kl_mean"], rel=1e-5) and got["kl_mean"] > 0
