"""Weight-only int8/int4 quantization of a model's linear layers: RTN, GPTQ or AWQ.

``quantize_weight_only(model, cfg, batches)`` is the one verb. RTN (round-to-nearest) needs no
data; GPTQ (:mod:`nlpress.quantize.gptq`) and AWQ (:mod:`nlpress.quantize.awq`) are calibrated
block by block by the shared engine (:mod:`nlpress.calib.sequential`), so each block is calibrated
on the outputs of the already-quantized blocks before it, and memory stays near one block's worth
beyond the weights. Inside the walk each layer's weight is replaced by its dequantized values
(what the next block must see); the integer codes, scales and zero points are returned per layer
and become :class:`~nlpress.quantize.woq_linear.WeightOnlyLinear` modules when saved and loaded.

Why the blocks' linears only by default: the embedding table (tied to the LM head in SmolLM2) is
read by a lookup, and the LM head's error lands directly on every logit; GPTQ and AWQ leave both
in float as well. ``targets``/``ignore`` select layers by name or ``re:`` pattern.

Causal-LM calibration follows GPTQ's protocol: ``num_samples`` random windows of ``seq_len``
tokens from the calibration text (seeded), one sample per batch row.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from nlpress.errors import NlpressError
from nlpress.quantize.primitives import QuantSpec, compute_qparams, fake_quantize
from nlpress.quantize.woq_linear import QuantizedWeight, codes_from

if TYPE_CHECKING:
    from nlpress.calib.sequential import BlockContext
    from nlpress.recipe import QuantizeWeightOnlyConfig

log = logging.getLogger(__name__)

CALIB_BATCH = 8  # calibration rows per forward: 8 x 512 tokens keeps activations ~50 MB
AWQ_ROWS = 512  # input rows AWQ's alpha search runs on, per scale group
# AWQ does not clip the query/key projections: their error meets in q.k, not in their outputs
CLIP_SKIP = re.compile(r"(^|\.)(q_proj|k_proj|query|key)$")


def weight_spec(bits: int, group_size: int | None, symmetric: bool) -> QuantSpec:
    if group_size is None:
        return QuantSpec(bits=bits, symmetric=symmetric, granularity="channel")
    return QuantSpec(bits=bits, symmetric=symmetric, granularity="group", group_size=group_size)


def _to_stored(
    w_q: Tensor, scale: Tensor, zero: Tensor, spec: QuantSpec, in_features: int
) -> QuantizedWeight:
    """Unsigned codes + (out, groups) params from a dequantized weight and primitives' params."""
    out = w_q.shape[0]
    g = spec.group_size or in_features
    scale = scale.reshape(out, -1).float()
    zero = zero.reshape(out, -1).float()
    if spec.symmetric:  # codes in [-qmax, qmax] -> shifted by 2^(b-1)
        zero = zero + 2 ** (spec.bits - 1)
    codes = codes_from(w_q, scale, zero, spec.bits, g)
    return QuantizedWeight(codes, scale, zero.to(torch.uint8), spec.bits, g)


def rtn_quantize(weight: Tensor, spec: QuantSpec) -> tuple[Tensor, QuantizedWeight]:
    """Round-to-nearest: (dequantized weight, stored form)."""
    w = weight.detach().float()
    scale, zero = compute_qparams(w, spec)
    w_q = fake_quantize(w, spec)
    return w_q, _to_stored(w_q, scale, zero, spec, w.shape[1])


def check_layers(model: nn.Module, names: list[str], spec: QuantSpec) -> None:
    """Clear errors before any work: no layers, or a group size that does not divide a layer."""
    if not names:
        raise NlpressError(
            "the model has no linear layers to quantize (or targets/ignore exclude them all); "
            "weight-only quantization needs nn.Linear layers in the model's blocks"
        )
    if spec.granularity == "group":
        from nlpress.quantize.primitives import _group_view

        for n in names:
            w = model.get_submodule(n).weight
            try:
                _group_view(w[:1], spec)
            except NlpressError as e:
                raise NlpressError(f"layer {n}: {e}") from None


def check_model(model: nn.Module, cfg, calib_tokens: int | None = None) -> None:
    """Everything :func:`quantize_weight_only` would reject, checked up front."""
    spec = weight_spec(cfg.bits, cfg.group_size, cfg.symmetric)
    check_layers(model, _block_linear_names(model, cfg), spec)
    if calib_tokens is not None and calib_tokens < cfg.seq_len:
        raise NlpressError(
            f"the calibration text has {calib_tokens} tokens, fewer than one window of "
            f"seq_len={cfg.seq_len}; pass a longer --calib text or lower seq_len "
            "(--set quantize-weight-only.seq_len=...)"
        )


def _block_linear_names(model: nn.Module, cfg) -> list[str]:
    from nlpress.calib.adapters import block_linears
    from nlpress.select import select

    *_, linears = block_linears(model)
    return select(list(linears), cfg.targets, cfg.ignore)


def quantize_weight_only(
    model: nn.Module,
    cfg: QuantizeWeightOnlyConfig,
    batches: list[dict[str, Tensor]] | None = None,
    progress: bool = True,
    inplace: bool = True,
) -> tuple[dict, dict[str, QuantizedWeight]]:
    """Quantize ``model``'s block linears in place (dequantized values); (info, stored layers).

    ``inplace=False`` (RTN only) leaves the weights untouched and returns only the stored codes:
    each layer is quantized on its own, so nothing downstream needs the dequantized values, and
    the caller need not copy the model (a whole fp32 copy of SmolLM2 is 538 MB)."""
    spec = weight_spec(cfg.bits, cfg.group_size, cfg.symmetric)
    names = _block_linear_names(model, cfg)
    check_layers(model, names, spec)
    t0 = time.perf_counter()
    stored: dict[str, QuantizedWeight] = {}
    fallbacks: list[str] = []
    if cfg.method == "rtn":
        with torch.no_grad():
            for n in names:
                lin = model.get_submodule(n)
                w_q, stored[n] = rtn_quantize(lin.weight, spec)
                if inplace:
                    lin.weight.copy_(w_q.to(lin.weight.dtype))
                del w_q
        blocks: list[dict] = []
    else:
        if not inplace:
            raise ValueError("only RTN can quantize without changing the model's weights")
        if not batches:
            raise NlpressError(f"{cfg.method} needs calibration data; pass --calib FILE or --data")
        from nlpress.calib.sequential import run_sequential

        collect = ("hessian",) if cfg.method == "gptq" else ("abs_mean", "samples")

        def transform(ctx: BlockContext) -> dict:
            if cfg.method == "awq":
                return _awq_block(ctx, spec, cfg, stored)
            return _gptq_block(ctx, spec, cfg, stored, fallbacks)

        blocks = run_sequential(
            model, batches, transform, collect=collect, targets=names, progress=progress
        )
    info = {
        "method": cfg.method,
        "bits": cfg.bits,
        "group_size": cfg.group_size,
        "symmetric": cfg.symmetric,
        "layers": len(stored),
        "calibration_samples": sum(int(b["input_ids"].shape[0]) for b in batches or []),
        "quantize_seconds": round(time.perf_counter() - t0, 2),
    }
    if fallbacks:
        info["rtn_fallback_layers"] = fallbacks
    if cfg.method == "awq":
        info["awq_alphas"] = [a for b in blocks for a in b.get("alphas", [])]
    return info, stored


def _gptq_block(ctx, spec: QuantSpec, cfg, stored: dict, fallbacks: list) -> dict:
    from nlpress.quantize.gptq import GPTQError, gptq_quantize

    for name, lin in ctx.linears.items():
        try:
            res = gptq_quantize(
                lin.weight,
                ctx.stats[name].hessian,
                spec,
                percdamp=cfg.percdamp,
                block_size=cfg.block_size,
                act_order=cfg.act_order,
                range_search=cfg.range_search,
            )
            w_q = res.weight.float()
            stored[name] = _to_stored(w_q, res.scale, res.zero_point, spec, w_q.shape[1])
        except GPTQError as e:
            log.warning("GPTQ failed on %s (%s); using round-to-nearest for it", name, e)
            fallbacks.append(name)
            w_q, stored[name] = rtn_quantize(lin.weight, spec)
        lin.weight.data.copy_(w_q.to(lin.weight.dtype))
    return {}


def _awq_block(ctx, spec: QuantSpec, cfg, stored: dict) -> dict:
    """Search and fold AWQ scales for each scale group, clip, then round every selected linear."""
    from nlpress.quantize.awq import CLIP_ROWS, apply_clip, awq_search, clip_search
    from nlpress.quantize.scale_fold import fold_scales

    by_module = {id(m): n for n, m in ctx.linears.items()}
    alphas, folded = [], {}
    for producer, consumers, _, _ in ctx.scale_groups:
        names = [by_module.get(id(c)) for c in consumers]
        if any(n is None for n in names):
            continue  # a consumer is not being quantized: scaling would only move error around
        st = ctx.stats[names[0]]
        x = st.samples[:: max(1, st.samples.shape[0] // AWQ_ROWS)][:AWQ_ROWS]  # (rows, in)
        res = awq_search(
            x, [c.weight for c in consumers], st.abs_mean, spec, cfg.awq_grid, cfg.awq_duo_scaling
        )
        fold_scales(producer, consumers, res.scales)
        folded.update(dict.fromkeys(names, res.scales))  # their inputs are now x / s
        alphas.append(res.alpha)
    with torch.no_grad():
        for name, lin in ctx.linears.items():
            if cfg.awq_clip and not CLIP_SKIP.search(name):
                x = ctx.stats[name].samples
                x = x[:: max(1, x.shape[0] // CLIP_ROWS)][:CLIP_ROWS].float()
                if name in folded:
                    x = x / folded[name]
                apply_clip(lin.weight, clip_search(lin.weight, x, spec))
            w_q, stored[name] = rtn_quantize(lin.weight, spec)
            lin.weight.copy_(w_q.to(lin.weight.dtype))
    return {"alphas": alphas}


def lm_calibration_batches(
    ids: Tensor, num_samples: int, seq_len: int, seed: int = 0
) -> list[dict[str, Tensor]]:
    """GPTQ's protocol: ``num_samples`` random ``seq_len``-token windows of ``ids`` (seeded)."""
    n = ids.numel()
    if n < seq_len:
        raise NlpressError(
            f"the calibration text has {n} tokens, fewer than one window of seq_len={seq_len}; "
            "pass a longer --calib text or lower seq_len (--set quantize-weight-only.seq_len=...)"
        )
    if n < num_samples * seq_len:
        log.warning(
            "calibration text has %d tokens, %d windows of %d overlap", n, num_samples, seq_len
        )
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, n - seq_len + 1, (num_samples,), generator=g)
    rows = torch.stack([ids[s : s + seq_len] for s in starts.tolist()])  # (num_samples, seq_len)
    return [
        {
            "input_ids": rows[i : i + CALIB_BATCH],
            "attention_mask": torch.ones_like(rows[i : i + CALIB_BATCH]),
        }
        for i in range(0, num_samples, CALIB_BATCH)
    ]
