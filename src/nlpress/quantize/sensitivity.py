"""Per-layer quantization sensitivity: how much fidelity each linear layer costs in int8.

Method: the one-layer-at-a-time probe of Wu et al. 2020, "Integer Quantization for Deep Learning
Inference: Principles and Empirical Evaluation" (its "partial quantization"), in both
directions. Each quantizable MatMul/Gemm node is measured against the fp32 graph on the same texts:

* **quantize-one**: only this layer in int8, every other candidate in fp32: the fidelity lost by
  this layer alone;
* **keep-one**: every candidate in int8 but this one: the fidelity regained by keeping it in fp32.

The two rankings differ when errors compound (a noisy layer feeding an amplifying one); the mixed
precision search (:mod:`nlpress.quantize.mixed`) tries both and keeps the one that meets the
target with fewer fp32 layers.

Why measured rather than estimated: the variants are real ONNX models written by the same
quantizer the recipe uses and run by ONNX Runtime, so activation quantization (dynamic per-batch
ranges, or calibrated static ones) is inside the number, which weight-error proxies (weight SQNR,
Hessian traces as in HAWQ, Dong et al. 2019) cannot see. The cost is 2 x (layers + 1) small
measurements, linear in depth.

The math is pure and tested alone (:func:`score_rows`, :func:`rank_quantize_one`,
:func:`rank_keep_one`, :func:`smallest_passing`); :class:`Probe` is the glue that builds and runs
the variants.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nlpress.evaluate.fidelity import embedding_fidelity, logits_fidelity

log = logging.getLogger(__name__)

# the fidelity a --min-fidelity target is compared with, per task (higher is better, 1 = same)
FIDELITY_METRIC = {
    "sentence-embedding": "cosine_mean",
    "text-classification": "top1_agreement",
    "causal-lm": "top1_agreement",
}
# the finer, lower-is-better number layers are ranked by (agreement moves in coarse steps)
LOSS_METRIC = {
    "sentence-embedding": "1 - cosine_mean",
    "text-classification": "kl_mean",
    "causal-lm": "kl_mean",
}
LINEAR_OPS = ("MatMul", "Gemm")


@dataclass(frozen=True)
class Score:
    fidelity: float  # FIDELITY_METRIC of the task
    loss: float  # LOSS_METRIC of the task


def score_rows(task: str, ref: np.ndarray, new: np.ndarray) -> Score:
    """Fidelity and loss of ``new`` against ``ref``, both ``(rows, D)``: embeddings, or logits
    of classifiers or of next-token prediction (one row per real token)."""
    if task == "sentence-embedding":
        cos = embedding_fidelity(ref, new)["cosine_mean"]
        return Score(cos, 1.0 - cos)
    f = logits_fidelity(ref, new)
    return Score(f["top1_agreement"], f["kl_mean"])


def rank_quantize_one(losses: Mapping[str, float]) -> list[str]:
    """Most sensitive first: the layers whose quantization alone loses the most.
    Ties keep the given (graph) order."""
    return sorted(losses, key=lambda n: -losses[n])


def rank_keep_one(losses: Mapping[str, float]) -> list[str]:
    """Most sensitive first: the layers whose keeping in fp32 (all others int8) leaves the least
    loss. Ties keep the given (graph) order."""
    return sorted(losses, key=lambda n: losses[n])


def smallest_passing(
    measure: Callable[[int], float], target: float, lo: int, hi: int
) -> int | None:
    """The smallest ``k`` in ``[lo, hi]`` with ``measure(k) >= target``, by bisection, or None
    when even ``measure(hi)`` falls short.

    Assumes fidelity grows with ``k`` (more layers in fp32). Where it does not, the answer is
    still one that was measured to pass, with ``k - 1`` measured to fail (or ``k == lo``).
    Each ``k`` is measured at most once; ``lo`` first, as the cheapest answer.
    """
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    seen: dict[int, float] = {}

    def f(k: int) -> float:
        if k not in seen:
            seen[k] = measure(k)
        return seen[k]

    if f(lo) >= target:
        return lo
    if f(hi) < target:
        return None
    fail, ok = lo, hi  # f(fail) < target <= f(ok)
    while ok - fail > 1:
        mid = (fail + ok) // 2
        if f(mid) >= target:
            ok = mid
        else:
            fail = mid
    return ok


def linear_nodes(path: Path, *, weights_only: bool) -> list[str]:
    """Names of the MatMul/Gemm nodes of an ONNX graph, in graph order. ``weights_only``: only
    those whose second input is a stored weight (what dynamic quantization can quantize)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    return [
        n.name
        for n in graph.node
        if n.op_type in LINEAR_OPS
        and (not weights_only or (len(n.input) > 1 and n.input[1] in weights))
    ]


def embedding_nodes(path: Path) -> list[str]:
    """Names of the Gather nodes that look up a stored 2-D table (token, position embeddings)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    tables = {i.name for i in graph.initializer if len(i.dims) == 2}
    return [n.name for n in graph.node if n.op_type == "Gather" and n.input[0] in tables]


Batch = dict[str, np.ndarray]


class Probe:
    """Builds quantized variants of one fp32 ONNX graph and scores them against it.

    ``build(keep_fp32, dst)`` writes the model with every candidate layer in int8 except the
    named ones. ``splits`` names lists of tokenized batches ("sensitivity", "holdout"); the fp32
    outputs on each are computed once. Scores are cached per (kept set, split).
    """

    def __init__(
        self,
        src: Path,
        build: Callable[[list[str], Path], dict],
        task: str,
        splits: Mapping[str, Sequence[Batch]],
        workdir: Path,
    ):
        self.build, self.task, self.splits, self.workdir = build, task, splits, Path(workdir)
        self.ref = {name: self._rows(src, batches) for name, batches in splits.items()}
        self._cache: dict[tuple[frozenset, str], Score] = {}
        self.builds = 0

    def score(self, keep_fp32: Sequence[str], split: str) -> Score:
        key = (frozenset(keep_fp32), split)
        if key not in self._cache:
            dst = self.workdir / "variant.onnx"
            self.build(list(keep_fp32), dst)
            self.builds += 1
            self._cache[key] = score_rows(
                self.task, self.ref[split], self._rows(dst, self.splits[split])
            )
            dst.unlink()
        return self._cache[key]

    def _rows(self, path: Path, batches: Sequence[Batch]) -> np.ndarray:
        import onnxruntime as ort

        from nlpress.runtime.isa import configure_int8_session

        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as loaded
        configure_int8_session(so)  # as nlpress.load runs it: exact int8 on every CPU
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        names = [i.name for i in sess.get_inputs()]
        rows = []
        for b in batches:
            out = sess.run(None, {n: b[n] for n in names})[0]
            if self.task == "causal-lm":  # (B, T, V) -> (real tokens, V)
                out = out[b["attention_mask"].astype(bool)]
            rows.append(np.asarray(out, dtype=np.float64))
        return np.concatenate(rows)


def layer_sensitivity(
    probe: Probe, layers: Sequence[str], modes: Sequence[str], progress: bool = False
) -> list[dict]:
    """One row per layer: fidelity and loss with it quantized alone and/or kept fp32 alone,
    measured on the probe's "sensitivity" split."""
    from tqdm.auto import tqdm

    rows = [{"layer": name} for name in layers]
    jobs = [(mode, i) for mode in modes for i in range(len(layers))]
    for mode, i in tqdm(jobs, desc="layer sensitivity", unit="model", disable=not progress):
        name = layers[i]
        keep = [n for n in layers if n != name] if mode == "quantize-one" else [name]
        s = probe.score(keep, "sensitivity")
        key = mode.replace("-", "_")
        rows[i].update({f"{key}_fidelity": s.fidelity, f"{key}_loss": s.loss})
    return rows
