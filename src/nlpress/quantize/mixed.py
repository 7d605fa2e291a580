"""Mixed precision: keep the most sensitive linear layers in fp32 until a fidelity target is met.

``--min-fidelity X`` (or ``min_fidelity`` on a ``quantize-dynamic-int8`` / ``quantize-static-int8``
step) turns an int8 step into a search (Wu et al. 2020, "Integer Quantization for Deep Learning
Inference", partial quantization):

1. rank the candidate layers by sensitivity on a few texts (:mod:`nlpress.quantize.sensitivity`:
   quantized alone, and kept fp32 alone);
2. for each ranking, bisect over ``k``, the number of top-ranked layers kept in fp32, for the
   smallest ``k`` whose model meets ``X`` on *held-out* texts (disjoint from step 1's). Every
   point of the search is a real quantized model, re-measured, never a sum of per-layer
   estimates, since quantization errors do not add up linearly;
3. keep the ranking that needs fewer fp32 layers and write that model.

Why bisection over a ranking rather than a search over subsets: with L layers a subset search is
2^L models; a ranking reduces it to L + 1 nested candidates and bisection to about log2(L) real
measurements per ranking. The target is met by construction (the chosen model was measured), or
the step fails with the best fidelity it found.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.quantize.sensitivity import (
    FIDELITY_METRIC,
    LOSS_METRIC,
    Probe,
    embedding_nodes,
    layer_sensitivity,
    linear_nodes,
    rank_keep_one,
    rank_quantize_one,
    smallest_passing,
)
from nlpress.recipe import QuantizeDynamicInt8Config, QuantizeStaticInt8Config, Recipe

log = logging.getLogger(__name__)

MIN_TEXTS = 8  # below this the held-out fidelity is a coin toss
FIDELITY_BATCH = 32
Int8Config = QuantizeDynamicInt8Config | QuantizeStaticInt8Config


def with_min_fidelity(rcp: Recipe, value: float) -> Recipe:
    """``rcp`` with ``min_fidelity`` set on each of its ONNX int8 steps (``--min-fidelity``)."""
    from nlpress.recipe import STEP_NAMES, load_recipe

    idx = [
        i
        for i, s in enumerate(rcp.steps, 1)
        if isinstance(s, QuantizeStaticInt8Config)
        or (isinstance(s, QuantizeDynamicInt8Config) and s.backend == "onnxruntime")
    ]
    if not idx:
        names = ", ".join(STEP_NAMES[type(s)] for s in rcp.steps)
        raise NlpressError(
            f"--min-fidelity needs an int8 step on ONNX Runtime; recipe {rcp.name!r} has "
            f"{names} (use --recipe int8 or int8-static)"
        )
    try:
        return load_recipe(rcp, [f"{i}.min_fidelity={value!r}" for i in idx])
    except NlpressError as e:
        raise NlpressError(f"--min-fidelity {value}: {e}") from e


def check_fidelity_texts(rcp: Recipe, texts: Sequence) -> None:
    """Fail before any slow work when a mixed-precision step would have too few texts."""
    if any(getattr(s, "min_fidelity", None) is not None for s in rcp.steps):
        if len(texts) < MIN_TEXTS:
            raise NlpressError(
                f"min_fidelity needs at least {MIN_TEXTS} texts to measure fidelity on, got "
                f"{len(texts)}; pass a larger --data file"
            )


def split_texts(texts: Sequence, n_sens: int, n_hold: int) -> tuple[list, list]:
    """Disjoint (sensitivity, held-out) texts: alternate rows, so both see the whole file's
    beginning rather than one taking the first rows and the other what follows."""
    sens, hold = list(texts[0::2])[:n_sens], list(texts[1::2])[:n_hold]
    return sens, hold


def candidate_layers(src: Path, cfg: Int8Config) -> list[str]:
    """The nodes mixed precision chooses from: the MatMul/Gemm nodes the step would quantize,
    and for dynamic int8 with ``quantize_embeddings`` the embedding lookups."""
    import onnx

    from nlpress.select import match_names

    static = isinstance(cfg, QuantizeStaticInt8Config)
    names = linear_nodes(src, weights_only=not static)
    if not static and cfg.quantize_embeddings:
        # int8 embedding tables cost fidelity (on MiniLM as much as an average linear layer)
        # and buy no speed, only size: a candidate like the others, found by the same ranking
        names = embedding_nodes(src) + names
    nodes = onnx.load(str(src), load_external_data=False).graph.node
    skip = set(match_names([n.name for n in nodes], cfg.ignore)) if cfg.ignore else set()
    if static and cfg.float_after_gelu:
        from nlpress.quantize.static import after_gelu

        skip |= set(after_gelu(nodes))
    layers = [n for n in names if n not in skip]
    if not layers:
        raise NlpressError("min_fidelity: the model has no linear layer left to quantize")
    return layers


def _builder(src: Path, cfg: Int8Config, calib_batches, workdir: Path) -> Callable:
    if isinstance(cfg, QuantizeStaticInt8Config):
        from nlpress.quantize.static import quantize_onnx_static

        ranges = workdir / "ranges.json"  # calibrated by the first build, reused by the rest
        return lambda keep, dst: quantize_onnx_static(
            src, dst, cfg, calib_batches, keep_fp32=keep, ranges=ranges
        )
    from nlpress.quantize.dynamic import quantize_onnx_dynamic

    return lambda keep, dst: quantize_onnx_dynamic(src, dst, cfg, keep_fp32=keep)


def quantize_mixed(
    src: Path,
    dst: Path,
    cfg: Int8Config,
    *,
    task: str,
    texts: Sequence,
    tokenize: Callable[[list], dict],
    calib_batches: list | None = None,
    progress: bool = False,
) -> dict:
    """Write to ``dst`` the int8 model with the fewest fp32 layers that meets ``cfg.min_fidelity``
    on held-out texts; return the quantizer's info with a ``mixed_precision`` record."""
    t0 = time.perf_counter()
    layers = candidate_layers(src, cfg)
    sens, hold = split_texts(texts, cfg.sensitivity_samples, cfg.holdout_samples)
    if len(sens) < MIN_TEXTS // 2 or len(hold) < MIN_TEXTS // 2:
        raise NlpressError(
            f"min_fidelity needs at least {MIN_TEXTS} texts, got {len(texts)}; pass more --data"
        )
    splits = {"sensitivity": sens, "holdout": hold}
    with tempfile.TemporaryDirectory(prefix="nlpress-mixed-") as tmp:
        build = _builder(src, cfg, calib_batches, Path(tmp))
        probe = Probe(src, build, task, _tokenized(splits, tokenize), Path(tmp))
        rows, orders = _rank(probe, layers, cfg.ranking, progress)
        trace, best = _search(probe, orders, cfg.min_fidelity)
        if best is None:
            raise NlpressError(
                _unmet_message(cfg.min_fidelity, task, trace, len(layers), len(hold))
            )
        ranking, k = best
        kept = orders[ranking][:k]
        info = build(kept, dst)
        all_int8 = probe.score([], "sensitivity")
    reached = next(t for t in trace if t["ranking"] == ranking and t["kept"] == k)
    info["mixed_precision"] = {
        "min_fidelity": cfg.min_fidelity,
        "metric": FIDELITY_METRIC[task],
        "loss_metric": LOSS_METRIC[task],
        "fidelity": reached["fidelity"],
        "loss": reached["loss"],
        "ranking": ranking,
        "kept_fp32": kept,
        "layers": len(layers),
        "int8_layers": len(layers) - k,
        "texts": {"sensitivity": len(sens), "holdout": len(hold)},
        "all_int8_sensitivity": {"fidelity": all_int8.fidelity, "loss": all_int8.loss},
        "sensitivity": rows,
        "trace": trace,
        "models_measured": probe.builds,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    log.info(
        "mixed precision: %d of %d layers kept fp32 (%s ranking), %s %.5f on %d held-out texts",
        k, len(layers), ranking, FIDELITY_METRIC[task], reached["fidelity"], len(hold),
    )  # fmt: skip
    return info


def _tokenized(splits: dict[str, list], tokenize: Callable) -> dict[str, list]:
    from nlpress.quantize.static import calibration_batches

    return {k: calibration_batches(v, tokenize, FIDELITY_BATCH) for k, v in splits.items()}


def _rank(
    probe: Probe, layers: list[str], ranking: str, progress: bool
) -> tuple[list[dict], dict[str, list[str]]]:
    """Per-layer sensitivity rows and, per ranking asked for, the layers most sensitive first."""
    modes = ["quantize-one", "keep-one"] if ranking == "auto" else [ranking]
    rows = layer_sensitivity(probe, layers, modes, progress)
    rank = {"quantize-one": rank_quantize_one, "keep-one": rank_keep_one}
    key = {"quantize-one": "quantize_one_loss", "keep-one": "keep_one_loss"}
    return rows, {m: rank[m]({r["layer"]: r[key[m]] for r in rows}) for m in modes}


def _search(
    probe: Probe, orders: dict[str, list[str]], target: float
) -> tuple[list[dict], tuple[str, int] | None]:
    """Bisect each ranking; return the trace and the (ranking, k) with the fewest fp32 layers
    (ties: the higher fidelity). Keeping every layer is no int8 model, so k stops at L - 1."""
    trace: list[dict] = []
    found: list[tuple[int, float, str]] = []
    for ranking, order in orders.items():

        def measure(k: int, ranking=ranking, order=order) -> float:
            s = probe.score(order[:k], "holdout")
            trace.append(
                {
                    "ranking": ranking,
                    "kept": k,
                    "fidelity": s.fidelity,
                    "loss": s.loss,
                    "meets": s.fidelity >= target,
                }
            )
            return s.fidelity

        k = smallest_passing(measure, target, 0, len(order) - 1)
        if k is not None:
            f = next(t["fidelity"] for t in trace if t["ranking"] == ranking and t["kept"] == k)
            found.append((k, -f, ranking))
    if not found:
        return trace, None
    k, _, ranking = min(found)
    return trace, (ranking, k)


def _unmet_message(target: float, task: str, trace: list[dict], n: int, n_hold: int) -> str:
    best = max(trace, key=lambda t: t["fidelity"])
    return (
        f"min_fidelity {target} cannot be met: even with up to {n - 1} of {n} layers kept "
        f"in fp32 the best model measured reaches {FIDELITY_METRIC[task]} {best['fidelity']:.5f} "
        f"({best['kept']} kept) on {n_hold} held-out texts; lower --min-fidelity, or use a float "
        "recipe (onnx, bf16)"
    )
