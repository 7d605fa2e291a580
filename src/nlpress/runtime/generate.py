"""Greedy text generation for causal-LM predictors, and the prefill/decode timing it rests on.

PyTorch predictors run the Hugging Face model with its KV cache: one forward over the prompt
(*prefill*), then one single-token forward per new token (*decode*). Those two phases are what
``bench`` times separately (:func:`prefill_decode_seconds`): prefill is compute-bound (tokens/s
grows with the prompt), decode at batch 1 reads every weight once per token and is bound by
memory bandwidth, which is where int4 weights pay off. Other backends (an ONNX export has no
cache) generate by re-running the whole sequence each step: correct, slower.
"""

from __future__ import annotations

import time

import numpy as np

from nlpress.errors import NlpressError


def _hf_model(predictor):
    module = getattr(predictor, "module", None)
    return getattr(module, "model", None)


def _check(max_new_tokens: int) -> None:
    if (
        isinstance(max_new_tokens, bool)
        or not isinstance(max_new_tokens, int)
        or max_new_tokens < 1
    ):
        raise NlpressError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")


def generate_ids(predictor, ids: np.ndarray, max_new_tokens: int) -> np.ndarray:
    """Greedy continuation of ``ids`` (1, T): the new token ids (n,), stopping at EOS."""
    _check(max_new_tokens)
    eos = predictor.tokenizer.eos_token_id
    model = _hf_model(predictor)
    if model is not None:
        import torch

        with torch.inference_mode():
            out = model.generate(
                input_ids=torch.from_numpy(ids),
                attention_mask=torch.ones_like(torch.from_numpy(ids)),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=predictor.tokenizer.pad_token_id or eos,
            )
        return out[0, ids.shape[1] :].numpy()
    new: list[int] = []
    seq = ids
    for _ in range(max_new_tokens):
        nxt = int(predictor.next_token_logits(seq)[0, -1].argmax())
        new.append(nxt)
        if nxt == eos:
            break
        seq = np.concatenate([seq, [[nxt]]], axis=1)
    return np.asarray(new, dtype=np.int64)


def generate(predictor, prompt: str, max_new_tokens: int = 32) -> str:
    """Greedy continuation of ``prompt`` as text (the prompt itself not included)."""
    if predictor.task != "causal-lm":
        raise NlpressError(f"generate() is for causal-lm models; this one is {predictor.task}")
    ids = np.asarray(predictor.tokenizer(prompt, return_tensors="np")["input_ids"], dtype=np.int64)
    if ids.size == 0:
        raise NlpressError("generate needs a prompt of at least one token")
    new = generate_ids(predictor, ids, max_new_tokens)
    return predictor.tokenizer.decode(new, skip_special_tokens=True)


def prefill_decode_seconds(model, ids, new_tokens: int) -> tuple[float, float]:
    """(prefill seconds for ``ids`` (1, T), decode seconds for ``new_tokens`` greedy steps)."""
    import inspect

    import torch

    # transformers 5.x renamed past_key_values to cache (the old name warns until 5.40)
    new_name = "cache" in inspect.signature(model.forward).parameters
    key = "cache" if new_name else "past_key_values"
    with torch.inference_mode():
        t0 = time.perf_counter()
        out = model(input_ids=ids, use_cache=True)
        t1 = time.perf_counter()
        past, tok = getattr(out, key), out.logits[:, -1:].argmax(-1)  # (1, 1)
        for _ in range(new_tokens):
            out = model(input_ids=tok, use_cache=True, **{key: past})
            past, tok = getattr(out, key), out.logits[:, -1:].argmax(-1)
        t2 = time.perf_counter()
    return t1 - t0, t2 - t1
