"""The pruning recipe steps: glue between the steps' shared state and the pruning functions.

Each step works on a copy of the model (the baseline measured in the same run keeps the
original), records what it removed per layer for the report, and picks how the weights are
saved: ``bitmask`` (size falls with sparsity; also the format that can hold a head-pruned BERT)
or plain Hugging Face safetensors.
"""

from __future__ import annotations

import copy
import logging

from nlpress.recipe import (
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneSparseGPTConfig,
    PruneStructuredConfig,
    PruneWandaConfig,
)
from nlpress.state import CheckContext, State

log = logging.getLogger(__name__)

CALIB_BATCH = 16  # texts per calibration forward pass: small, bounded memory

NO_SPARSE_KERNEL = (
    "{kind} sparsity has no faster kernel on CPU PyTorch or ONNX Runtime: the zeros are still "
    "multiplied, so expect no speedup (the measured speed above says what it is); the gain is "
    "size on disk with storage: sparse."
)
NM_GPU = " 2:4 runs faster only with sparse tensor-core kernels on NVIDIA Ampere or newer GPUs."
STRUCTURED = (
    "Structured pruning removed whole heads, neurons or blocks: every matrix product is smaller, "
    "so it is faster on any backend."
)


def prune_step(
    st: State, cfg: PruneMagnitudeConfig | PruneNMConfig | PruneStructuredConfig
) -> dict:
    """Run one pruning step on ``st``; return the step's info."""
    if st.torch_model is None:
        st.torch_model = copy.deepcopy(st.lm.model)
    if isinstance(cfg, PruneStructuredConfig):
        from nlpress.prune.structured import prune_structured

        batches = _batches(st) if cfg.score == "activation" else None
        st.torch_model, summary = prune_structured(st.torch_model, cfg, batches)
        st.masks = {}  # masks of an earlier step no longer fit the smaller matrices
        kind, storage, warning = "structured", "dense", STRUCTURED
    elif isinstance(cfg, PruneWandaConfig | PruneSparseGPTConfig):
        summary, kind, storage, warning = _oneshot(st, cfg)
    else:
        from nlpress.prune.unstructured import prune_unstructured

        st.masks, summary = prune_unstructured(st.torch_model, cfg)
        nm = isinstance(cfg, PruneNMConfig)
        kind = f"{cfg.n}:{cfg.m}" if nm else "unstructured"
        storage = cfg.storage
        warning = NO_SPARSE_KERNEL.format(kind="N:M" if nm else "Unstructured")
        if nm and (cfg.n, cfg.m) == (2, 4):
            warning += NM_GPU
    narrowed = getattr(st.torch_model.config, "nlpress_attention_heads", None) is not None
    st.weights_format = "bitmask" if storage == "sparse" or narrowed else "hf"
    if narrowed and kind == "structured":
        warning += (
            " Heads were removed from a BERT: transformers 5 cannot express that in a BERT "
            "config, so load it with nlpress.load or export it to ONNX (see the README)."
        )
    st.pruning = {
        "kind": kind,
        "per_layer": summary["per_layer"],
        "weights_format": st.weights_format,
        "warnings": [*st.pruning.get("warnings", []), warning],
        "steps": [*st.pruning.get("steps", []), {"kind": kind, **summary["info"]}],
    }
    return summary["info"]


def _oneshot(st: State, cfg: PruneWandaConfig | PruneSparseGPTConfig) -> tuple[dict, str, str, str]:
    """Wanda / SparseGPT through the calibration engine: (summary, kind, storage, warning)."""
    from nlpress.calib.pipeline_steps import calibration_batches
    from nlpress.prune.oneshot_steps import prune_oneshot

    masks, summary = prune_oneshot(st.torch_model, cfg, calibration_batches(st, cfg), st.progress)
    st.masks = {**st.masks, **masks}
    summary["info"]["calibration_source"] = st.calib_source
    nm = cfg.n is not None
    warning = NO_SPARSE_KERNEL.format(kind="N:M" if nm else "Unstructured")
    if nm and (cfg.n, cfg.m) == (2, 4):
        warning += NM_GPU
    return summary, (f"{cfg.n}:{cfg.m}" if nm else "unstructured"), cfg.storage, warning


def _batches(st: State):
    import torch

    texts = st.calib_texts
    for i in range(0, len(texts), CALIB_BATCH):
        batch = st.tokenize(texts[i : i + CALIB_BATCH])
        yield {k: torch.from_numpy(v) for k, v in batch.items()}


def check_prune(cfg, ctx: CheckContext, i: int = 0) -> None:
    """Check a pruning step against the model's structure before any weight is loaded.

    The model is built on the meta device from its config (no memory, no weights), so a target
    pattern that matches nothing or a head count that empties a layer fails in a second, before
    the slow load and before any progress bar. After a structured step the model is smaller:
    later steps are checked when they run.
    """
    if ctx.reshaped:
        return
    import torch

    model = ctx.meta_model()
    if isinstance(cfg, PruneStructuredConfig):
        from nlpress.prune.adapters import blocks, geometry, layout_for
        from nlpress.prune.structured import counts, layers_to_drop

        lay, blks = layout_for(model), blocks(model)
        width = blks[0].get_submodule(lay.ffn_out).weight.shape[1]
        counts(cfg, len(blks), geometry(model), width)
        if cfg.score == "magnitude" or cfg.drop_layers:
            layers_to_drop(
                cfg, len(blks), None if cfg.score == "magnitude" else torch.zeros(len(blks))
            )
        ctx.reshaped = True
        return
    from nlpress.prune.unstructured import target_linears

    target_linears(model, cfg.targets, cfg.ignore)
