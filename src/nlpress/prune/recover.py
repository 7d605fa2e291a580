"""Training recipe steps of pruning: ``prune-gradual`` and ``recover``.

``recover`` fine-tunes a pruned model so it wins back what pruning cost: on labels
(cross-entropy), or by distillation from the *unpruned* model (its logits, or its sentence
embeddings for an encoder; Hinton et al. 2015, as used for pruned BERTs by Sanh et al. 2020,
"Movement Pruning", and Lagunas et al. 2021, "Block Pruning For Faster Transformers"). Masks of an
earlier unstructured step are re-applied after every optimizer step, so the sparsity stays exact;
a structurally pruned model is simply smaller and trains as it is.

``prune-gradual`` fine-tunes the same way while :class:`nlpress.prune.gradual.GradualPruner`
raises the sparsity on Zhu & Gupta's cubic schedule.

Why this design: no second training loop and no copied losses. Both steps build a
:class:`nlpress.train.loop.TrainTask` from the train package's own pieces (``ClassifierLoss``,
``DistillModule`` and its teacher outputs) and run :func:`nlpress.train.loop.train` with the
pruning callbacks. Training data is checked before any model is loaded.
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError
from nlpress.recipe import STEP_NAMES, PruneGradualConfig, QatConfig, RecoverConfig
from nlpress.state import CheckContext, State

log = logging.getLogger(__name__)

TrainStep = PruneGradualConfig | RecoverConfig | QatConfig


def check_training(s: TrainStep, ctx: CheckContext, i: int) -> None:
    """Refuse, before any slow work, a training step that has nothing (or nothing usable) to
    train on."""
    name = STEP_NAMES[type(s)]
    task, data = ctx.task, ctx.data
    if task == "causal-lm":
        raise NlpressError(
            f"recipe step {i} ({name}) trains the model; training a causal-lm is not "
            "supported yet: use prune-magnitude, or a classifier or embedding model"
        )
    if s.method == "finetune" and task != "text-classification":
        raise NlpressError(
            f"recipe step {i} ({name}) with method finetune needs labels "
            f"(text-classification), not {task}; set {name}.method=distill"
        )
    source = s.data if s.data is not None else (ctx.train_data or data)
    if source is None:
        raise NlpressError(
            f"recipe step {i} ({name}) fine-tunes the model and needs training data: pass "
            f"--data train.tsv (or --set {name}.data=train.tsv)"
        )
    if s.data is not None and not Path(s.data).is_file():
        raise NlpressError(f"recipe step {i} ({name}): data file {s.data} not found")


def check_gradual(s: PruneGradualConfig, ctx: CheckContext, i: int) -> None:
    from nlpress.prune.steps import check_prune

    check_training(s, ctx, i)
    check_prune(s, ctx, i)


def _train_config(cfg: TrainStep):
    from nlpress.train.loop import TrainConfig

    return TrainConfig.from_fields(
        cfg,
        checkpoint_every=10**9,  # no checkpoint folder: the artifact is written atomically
        cpu=True,  # the pipeline's models, baseline and result, live on the CPU
    )


def _task(st: State, cfg: TrainStep, model, tcfg):
    """The loop's view: (TrainTask, unwrap(module) -> the trained model)."""
    from nlpress.train.data import encode, read_training_data, take
    from nlpress.train.loop import TrainTask

    # tune's --train (State.train_data) when there is one: the --data rows are for measuring
    source = cfg.data if cfg.data is not None else (st.train_data or st.data)
    finetune = cfg.method == "finetune"
    d = read_training_data(source, st.lm.task, {}, None, need_labels=finetune)
    tok = st.lm.tokenizer
    if finetune:
        from nlpress.train.finetune import ClassifierLoss

        def make_batch(rows, device):
            return encode(tok, d, rows, tcfg.max_length, device)

        return TrainTask(ClassifierLoss(model), len(d), make_batch), lambda m: m.model
    from nlpress.train.distill import DistillConfig, _train_task

    n = model.config.num_hidden_layers
    pairs = list(zip(range(n), range(n), strict=True))  # unused: logits/embeddings losses only
    alpha = cfg.alpha if d.labels is not None else 1.0
    dcfg = DistillConfig(temperature=cfg.temperature, alpha=alpha)
    spec = _train_task(st.lm, model, pairs, dcfg, tcfg, d, take(d, []))
    return spec, lambda m: m.student


def _run(st: State, cfg: TrainStep, callbacks: list, extra=None) -> tuple[Any, Any]:
    """Train ``st.torch_model``; ``extra(n_examples, train_config)`` may add a callback that
    needs the run's length (the gradual pruner's schedule)."""
    from nlpress.train.loop import train

    tcfg = _train_config(cfg)
    spec, unwrap = _task(st, cfg, st.torch_model, tcfg)
    if extra is not None:
        callbacks = [*callbacks, extra(spec.n_examples, tcfg)]
    if st.train_watch is not None:
        from nlpress.train.loop import _schedule

        callbacks = [*callbacks, st.train_watch(_schedule(spec.n_examples, tcfg, 1)[1])]
    # the loop hands callbacks its training module (loss wrapper); the masks name the model's
    inner = [lambda m, step, fn=fn: fn(unwrap(m), step) for fn in callbacks]
    module, result = train(spec, tcfg, None, callbacks=inner, progress=st.progress)
    model = unwrap(module).eval()
    for p in model.parameters():
        p.requires_grad_(True)  # freeze_embeddings is a training setting, not the model's
    return model, result


def _train_info(cfg: TrainStep, result) -> dict:
    last = result.history[-1] if result.history else {}
    return {
        "method": cfg.method,
        "train_steps": result.steps,
        "train_seconds": result.seconds,
        "final_loss": last.get("loss"),
        "lr": cfg.lr,
        "batch_size": cfg.batch_size,
    }


def step_recover(st: State, cfg: RecoverConfig) -> dict:
    """Fine-tune the pruned model (labels or distillation); masks held for unstructured pruning."""
    from nlpress.prune.masks import keep_masks_callback, mask_sparsity

    callbacks = [keep_masks_callback(st.masks)] if st.masks else []
    st.torch_model, result = _run(st, cfg, callbacks)
    info = _train_info(cfg, result)
    if st.masks:
        total = sum(m.numel() for m in st.masks.values())
        kept = sum(int(m.sum()) for m in st.masks.values())
        info["sparsity"] = (total - kept) / max(total, 1)
        info["masked_layers"] = len(mask_sparsity(st.masks))
    if st.pruning:
        st.pruning["steps"] = [*st.pruning.get("steps", []), {"kind": "recover", **info}]
    log.info("recovered with %s in %d steps", cfg.method, result.steps)
    return info


def step_gradual(st: State, cfg: PruneGradualConfig) -> dict:
    """Prune gradually to ``cfg.sparsity`` while fine-tuning; exact final sparsity."""
    from nlpress.prune.gradual import GradualPruner, make_schedule
    from nlpress.prune.masks import mask_sparsity
    from nlpress.prune.steps import NO_SPARSE_KERNEL
    from nlpress.prune.unstructured import target_linears
    from nlpress.train.loop import _schedule

    if st.torch_model is None:
        st.torch_model = copy.deepcopy(st.lm.model)  # the baseline keeps the original
    target_linears(st.torch_model, cfg.targets, cfg.ignore)  # a clear error before training
    made: list[GradualPruner] = []

    def pruner(n_examples: int, tcfg) -> GradualPruner:
        _, total = _schedule(n_examples, tcfg, 1)  # optimizer steps of this one-process run
        made.append(GradualPruner(cfg, make_schedule(cfg, total)))
        made[0].start(st.torch_model)
        return made[0]

    st.torch_model, result = _run(st, cfg, _keep(st), pruner)
    masks = made[0].finish(st.torch_model)
    st.masks = {**st.masks, **masks}
    per_layer = mask_sparsity(masks)
    total_w = sum(m.numel() for m in masks.values())
    removed = sum(m.numel() - int(m.sum()) for m in masks.values())
    info = {
        **_train_info(cfg, result),
        "layers": len(masks),
        "sparsity": removed / max(total_w, 1),
        "pruned_weights": removed,
        "schedule": made[0].schedule.to_dict(),
        "mask_updates": len(made[0].history),
    }
    st.weights_format = "bitmask" if cfg.storage == "sparse" else "hf"
    st.pruning = {
        "kind": "unstructured",
        "per_layer": {k.removesuffix(".weight"): v for k, v in per_layer.items()},
        "weights_format": st.weights_format,
        "warnings": [*st.pruning.get("warnings", []), NO_SPARSE_KERNEL.format(kind="Unstructured")],
        "steps": [*st.pruning.get("steps", []), {"kind": "gradual", **info}],
    }
    return info


def _keep(st: State) -> list:
    """Masks of an earlier unstructured step stay applied while gradual pruning trains."""
    from nlpress.prune.masks import keep_masks_callback

    return [keep_masks_callback(st.masks)] if st.masks else []
