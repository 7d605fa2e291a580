"""Fake predictors built by ``python -m nlpress.bench.memprobe --factory nlpress_fake_model:...``.

Not a test module: the memory tests put this folder on the probe's PYTHONPATH so the probe can
import it instead of loading a real model.
"""

from __future__ import annotations

import itertools

import numpy as np

ALLOC_MB = 200


class FakeModel:
    task = "sentence-embedding"
    backend = "numpy"
    name = "fake"
    threads = 1

    def __init__(self, weights: np.ndarray, expect: list[str] | None = None) -> None:
        self.weights = weights
        self.expect = expect

    def tokenize(self, inputs, *, pad_to=None, max_length=512):
        if self.expect is not None:
            wanted = list(itertools.islice(itertools.cycle(self.expect), len(inputs)))
            if list(inputs) != wanted:
                raise ValueError(f"fake got texts {inputs[:3]}, expected {wanted[:3]}")
        length = pad_to or max(len(str(t).split()) for t in inputs)
        return {"input_ids": np.ones((len(inputs), length), dtype=np.int64)}

    def forward(self, batch):
        return batch["input_ids"].astype(np.float32).sum(axis=1)

    def size_bytes(self) -> int:
        return int(self.weights.nbytes)


def build(path: str) -> FakeModel:
    """A model that holds ALLOC_MB of touched memory; path "alpha-beta" checks the texts."""
    weights = np.ones(ALLOC_MB * 1024 * 1024 // 8, dtype=np.float64)  # ones: pages are touched
    return FakeModel(weights, expect=["alpha", "beta"] if path == "alpha-beta" else None)


def build_small(path: str) -> FakeModel:
    return FakeModel(np.ones(16, dtype=np.float64))


def broken(path: str) -> FakeModel:
    raise RuntimeError(f"no model at {path}")
