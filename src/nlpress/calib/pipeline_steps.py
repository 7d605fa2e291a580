"""Pipeline steps of the block-by-block calibrated methods (weight-only, SmoothQuant) and causal-LM speed.

Registered in :data:`nlpress.steps.STEPS` like every other step. Calibration inputs: for a
causal LM the whole ``--calib`` text (or the evaluation text), cut into GPTQ-style token windows;
for encoders, tokenized texts. Everything that can be checked before the slow work (layers, group
size, calibration length, architecture) is checked by :func:`check_calibrated`, the steps' cheap
``check``, on the model built on the meta device before any weight is loaded.
"""

from __future__ import annotations

import copy
from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.recipe import QuantizeWeightOnlyConfig, Recipe, SmoothQuantConfig
from nlpress.state import CheckContext, State


def step_weight_only(st: State, cfg: QuantizeWeightOnlyConfig) -> dict:
    from nlpress.quantize.weight_only import quantize_weight_only

    batches = None
    if cfg.method != "rtn":
        batches = calibration_batches(st, cfg)
    rtn = cfg.method == "rtn"
    # the baseline keeps the fp32 original: GPTQ and AWQ change a copy's weights block by block;
    # RTN only reads them, so its model is a new module tree over the same parameter tensors
    st.torch_model = shared_copy(st.current()) if rtn else copy.deepcopy(st.current())
    st.weights_format = "weight-only"
    info, st.quantized = quantize_weight_only(st.torch_model, cfg, batches, inplace=not rtn)
    info["calibration_source"] = st.calib_source if batches else ""
    return info


def shared_copy(model):
    """A copy of ``model``'s module tree whose parameters and buffers are the original tensors."""
    memo = {id(t): t for t in (*model.parameters(), *model.buffers())}
    return copy.deepcopy(model, memo)


def step_smooth(st: State, cfg: SmoothQuantConfig) -> dict:
    from nlpress.quantize.smoothquant import smooth_model

    lm = copy.copy(st.lm)  # the baseline keeps the fp32 original; later steps see the smoothed one
    lm.model = copy.deepcopy(st.lm.model)
    st.lm = lm
    return smooth_model(lm.model, cfg, calibration_batches(st, cfg))


def calibration_batches(st: State, cfg: QuantizeWeightOnlyConfig | SmoothQuantConfig) -> list:
    """Calibration batches: GPTQ-style token windows for causal LMs, tokenized texts otherwise."""
    import torch

    from nlpress.quantize.weight_only import CALIB_BATCH, lm_calibration_batches

    if st.lm.task == "causal-lm":
        text = "\n\n".join(str(t) for t in st.calib_texts)
        ids = torch.as_tensor(st.lm.tokenizer(text, return_tensors="np")["input_ids"][0])
        return lm_calibration_batches(ids, cfg.num_samples, cfg.seq_len)
    texts = st.calib_texts[: cfg.num_samples]
    return [
        {k: torch.from_numpy(v) for k, v in st.tokenize(texts[i : i + CALIB_BATCH]).items()}
        for i in range(0, len(texts), CALIB_BATCH)
    ]


def check_calibrated(cfg, ctx: CheckContext, i: int = 0) -> None:
    """Layers and calibration text fit a calibrated step: errors before any slow work."""
    from nlpress.quantize.weight_only import check_model

    model = ctx.meta_model()
    n_tokens = ctx.calib_tokens() if calibrated(cfg) else None
    if isinstance(cfg, QuantizeWeightOnlyConfig):
        check_model(model, cfg, n_tokens)
    elif isinstance(cfg, SmoothQuantConfig):
        from nlpress.quantize.smoothquant import check_smoothable

        check_smoothable(model)
    check_oneshot(cfg, model, n_tokens)
    if isinstance(cfg, SmoothQuantConfig) and n_tokens is not None and n_tokens < cfg.seq_len:
        raise NlpressError(
            f"the calibration text has {n_tokens} tokens, fewer than one window of "
            f"seq_len={cfg.seq_len}; pass a longer --calib text or lower smoothquant.seq_len"
        )


def check_oneshot(cfg, model, n_tokens: int | None) -> None:
    """Wanda/SparseGPT: layers, N:M shapes and calibration length, before any slow work."""
    from nlpress.recipe import STEP_NAMES, PruneSparseGPTConfig, PruneWandaConfig

    if not isinstance(cfg, PruneWandaConfig | PruneSparseGPTConfig):
        return
    from nlpress.prune.oneshot_steps import block_linear_names

    block_linear_names(model, cfg)
    if n_tokens is not None and n_tokens < cfg.seq_len:
        name = STEP_NAMES[type(cfg)]
        raise NlpressError(
            f"the calibration text has {n_tokens} tokens, fewer than one window of "
            f"seq_len={cfg.seq_len}; pass a longer --calib text or lower it "
            f"(--set {name}.seq_len=...)"
        )


def calibrated(s) -> bool:
    """Steps that run the block-by-block engine on calibration data."""
    from nlpress.recipe import PruneSparseGPTConfig, PruneWandaConfig

    if isinstance(s, PruneWandaConfig | PruneSparseGPTConfig):
        return True
    return isinstance(s, SmoothQuantConfig) or (
        isinstance(s, QuantizeWeightOnlyConfig) and s.method != "rtn"
    )


def needs_lm_calib(rcp: Recipe) -> bool:
    return any(calibrated(s) for s in rcp.steps)


def lm_calibration_texts(rcp: Recipe, task: str, calib, columns: dict, bench_texts: list):
    """Calibration texts for GPTQ/AWQ: the whole --calib text (causal LM) or its texts."""
    from nlpress.calib.texts import read_calib
    from nlpress.data.readers import read_text

    cfg = next(s for s in rcp.steps if calibrated(s))
    if calib is None:
        texts, source = bench_texts, "evaluation data (no --calib given)"
    elif task == "causal-lm":
        if not Path(calib).is_file():
            raise NlpressError(f"calibration file not found: {calib}; check the path")
        texts, source = [read_text(calib)], str(calib)
    else:
        texts, source = read_calib(calib, task, columns, cfg.num_samples), str(calib)
    if not texts or not any(str(t).strip() for t in texts):
        raise NlpressError(f"calibration data is empty ({source}); pass a file with text in it")
    return texts, source


def measure_lm_speed(baseline, result, text: str, cfg, metrics: dict) -> None:
    """Prefill and decode tokens/s at batch 1 (KV cache), baseline and result interleaved."""
    from nlpress.bench.lm_speed import LMSpeedConfig, lm_speed

    sp = lm_speed(
        {"baseline": baseline, "result": result},
        text,
        LMSpeedConfig(rounds=cfg.rounds, progress=cfg.progress),
    )
    if "baseline" not in sp or "result" not in sp:
        return
    for key in ("baseline", "result"):
        metrics[key].update(
            {k: sp[key][k] for k in ("prefill_tokens_per_s", "decode_tokens_per_s")}
        )
    b, r = sp["baseline"], sp["result"]
    metrics["ratios"]["decode_speedup"] = r["decode_tokens_per_s"] / b["decode_tokens_per_s"]
    metrics["ratios"]["prefill_speedup"] = r["prefill_tokens_per_s"] / b["prefill_tokens_per_s"]
    metrics["bench"]["lm"] = {"prompt_len": b["prompt_len"], "new_tokens": b["new_tokens"]}
