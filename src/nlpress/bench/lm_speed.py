"""Causal-LM speed: prefill and decode tokens/s at batch 1, interleaved across predictors.

Each round runs, for every predictor in rotated order, one prefill of ``prompt_len`` tokens and
``new_tokens`` greedy decode steps with the KV cache (:func:`nlpress.runtime.generate.
prefill_decode_seconds`); medians over rounds, as everywhere in nlpress's benchmarks. Predictors
without a Hugging Face model (ONNX Runtime exports, which carry no cache) are skipped.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from nlpress.bench.harness import _run_rounds, summarize
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)


@dataclass
class LMSpeedConfig:
    prompt_len: int = 128  # prefill length: a typical short prompt
    new_tokens: int = 32  # decode steps per round: enough to average per-token jitter
    rounds: int = 5
    warmup: int = 1
    progress: bool = False


def lm_speed(predictors: dict, text: str, cfg: LMSpeedConfig) -> dict[str, dict]:
    """{name: {prefill_tokens_per_s, decode_tokens_per_s, ...}} for predictors with an HF model."""
    import torch

    from nlpress.runtime.generate import _hf_model, prefill_decode_seconds

    models = {n: _hf_model(p) for n, p in predictors.items()}
    models = {n: m for n, m in models.items() if m is not None}
    if not models:
        return {}
    tok = next(iter(predictors.values())).tokenizer
    ids = np.asarray(tok(text, return_tensors="np")["input_ids"][0], dtype=np.int64)
    if ids.size < 2:
        raise NlpressError("the decode benchmark needs a text of at least two tokens")
    reps = -(-cfg.prompt_len // ids.size)
    prompt = torch.from_numpy(np.tile(ids, reps)[: cfg.prompt_len][None])  # (1, prompt_len)
    times: dict[str, list[tuple[float, float]]] = {n: [] for n in models}

    def task(name):
        def run() -> list[float]:
            times[name].append(prefill_decode_seconds(models[name], prompt, cfg.new_tokens))
            return [0.0]

        return run

    _run_rounds({n: task(n) for n in models}, cfg.rounds, cfg.warmup, cfg.progress, "decode")
    out = {}
    for n, ts in times.items():
        ts = ts[cfg.warmup :]
        pre, dec = summarize([t[0] for t in ts]), summarize([t[1] for t in ts])
        out[n] = {
            "prefill_tokens_per_s": prompt.shape[1] / pre["median"],
            "decode_tokens_per_s": cfg.new_tokens / dec["median"],
            "decode_spread": dec["iqr"] / dec["median"],
            "prompt_len": int(prompt.shape[1]),
            "new_tokens": cfg.new_tokens,
        }
    return out
