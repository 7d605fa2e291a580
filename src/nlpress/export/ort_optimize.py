"""ONNX Runtime graph optimization: transformer fusions for encoders, basic passes otherwise.

Uses onnxruntime's own transformer optimizer (``onnxruntime.transformers.optimizer``): it fuses
embeddings + LayerNorm, multi-head attention, Skip-LayerNorm and bias-GELU into single
kernels, which its int8 path then quantizes as a whole (``QAttention``). We do not write
fusions of our own. Only model types the optimizer knows get fused; for the rest the step
records that nothing was fused rather than pretending.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nlpress.recipe import OrtOptimizeConfig

log = logging.getLogger(__name__)

# model_type in config.json -> the optimizer's model_type
FUSABLE = {
    "bert": "bert", "roberta": "bert", "xlm-roberta": "bert", "electra": "bert",
    "distilbert": "bert", "mpnet": "bert", "camembert": "bert", "gpt2": "gpt2",
}


def ort_optimize(src: Path, dst: Path, config: dict, cfg: OrtOptimizeConfig) -> dict:
    from onnxruntime.transformers import optimizer

    model_type = config.get("model_type", "")
    opt_type = FUSABLE.get(model_type) if cfg.fuse else None
    if opt_type is None:
        import onnx
        # No transformer fusion for this architecture: keep the graph, ORT applies its
        # generic optimizations when the session starts.
        onnx.save(onnx.load(str(src)), str(dst))
        log.info("no transformer fusion for model type %r; graph kept as exported", model_type)
        return {"fused": {}, "model_type": model_type, "note": "no fusion for this model type"}
    heads = int(config.get("num_attention_heads") or config.get("n_head") or 0)
    hidden = int(config.get("hidden_size") or config.get("dim") or config.get("n_embd") or 0)
    opt = optimizer.optimize_model(
        str(src), model_type=opt_type, num_heads=heads, hidden_size=hidden, opt_level=cfg.opt_level
    )
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    if opt_type == "bert" and not stats.get("Attention") and not stats.get("MultiHeadAttention"):
        log.warning("attention was not fused; export with attn_implementation: eager to fuse it")
    opt.save_model_to_file(str(dst))
    return {"fused": stats, "model_type": model_type}
