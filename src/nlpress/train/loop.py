"""The one training loop, on Hugging Face ``accelerate``: one CPU process, several processes, GPUs.

The same code runs under ``python -m nlpress.cli`` (one process) and under
``accelerate launch --num_processes N`` (DDP; gloo on CPU): ``Accelerator`` wraps the module,
optimizer and scheduler, syncs gradients, runs mixed precision where the hardware has it and
accumulates gradients (``accelerator.accumulate``).

Why the data order is ours, not a prepared ``DataLoader``'s: each epoch's order is a permutation
seeded by ``seed + epoch``, cut into *global* micro-batches of ``batch_size`` rows, and process
``p`` takes rows ``p::world`` of each. So one process and N processes see the same global batches
(their losses agree, see the tests), and a resumed run re-creates the epoch's order and skips the
steps already done, with no sampler state to save.

Checkpoints (``accelerator.save_state``: weights as safetensors, optimizer, scheduler, RNG
states; plus ``trainer.json`` and the best weights so far) are written into a temporary folder and
renamed over ``last`` only when complete, so a crash while writing leaves the last good one.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

LAST, TMP, OLD = "last", ".tmp-last", ".old-last"
MARKER = "nlpress-checkpoints.json"  # in every checkpoint folder nlpress made, and only there
# settings a resumed run must share with the checkpoint: they fix the data order, the schedule
# and the model; the others (evaluation, checkpoint cadence, patience, device) may change
RESUME_SETTINGS = (
    "epochs", "batch_size", "lr", "weight_decay", "warmup_ratio", "max_steps", "grad_accum",
    "mixed_precision", "seed", "max_length", "freeze_embeddings",
)  # fmt: skip


def fields_from(cls: type[BaseModel], source: Any) -> dict[str, Any]:
    """The attributes of ``source`` that are fields of the config class ``cls``, by name."""
    return {k: getattr(source, k) for k in cls.model_fields if hasattr(source, k)}


class TrainConfig(BaseModel):
    """Training settings shared by ``finetune`` and ``distill``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)  # --lr inf: NaN weights

    epochs: int = Field(3, ge=1)  # 3: the usual GLUE fine-tuning length (BERT paper)
    batch_size: int = Field(32, ge=1)  # global rows per micro-batch, split over processes
    # 5e-5: within BERT's recommended 2e-5..5e-5; above 1, AdamW's steps overflow float32
    lr: float = Field(5e-5, gt=0, le=1.0)
    weight_decay: float = Field(0.01, ge=0)  # AdamW decay as in BERT/DistilBERT training
    warmup_ratio: float = Field(0.06, ge=0, lt=1)  # 6% linear warm-up (RoBERTa recipe)
    max_steps: int | None = Field(None, ge=1)  # stop after this many optimizer steps
    grad_accum: int = Field(1, ge=1)  # micro-batches per optimizer step
    mixed_precision: Literal["no", "fp16", "bf16"] = "no"  # fp32 unless asked: exact on any CPU
    seed: int = 0
    eval_every: int | None = Field(None, ge=1)  # optimizer steps; None: at the end of each epoch
    patience: int | None = Field(None, ge=1)  # evaluations without improvement before stopping
    checkpoint_every: int = Field(200, ge=1)  # optimizer steps between resumable checkpoints
    cpu: bool = False  # force CPU even where a GPU is present
    # tokens per text: SST-2/STS sentences fit in 128; also checked against the model's positions
    max_length: int = Field(128, ge=8, le=1 << 20)
    # the word-embedding matrix is a third to a half of a small encoder's weights and gets sparse
    # gradients; freezing it saves most optimizer time on a CPU at little cost in accuracy
    freeze_embeddings: bool = False

    @classmethod
    def from_fields(cls, source: Any, **overrides: Any) -> TrainConfig:
        """The settings that ``source`` (argparse namespace, recipe step) carries, plus overrides.

        One reader for every front end, so an option added here reaches the CLI and the recipe
        steps by name instead of through hand-copied field lists.
        """
        return cls(**{**fields_from(cls, source), **overrides})


@dataclass
class TrainTask:
    """What the loop trains: a module whose forward returns ``(loss, logs)`` for a batch."""

    module: Any  # nn.Module; forward(**batch) -> (loss tensor, {name: float})
    n_examples: int
    make_batch: Callable[[list[int], Any], dict]  # (row indices, device) -> forward kwargs
    evaluate: Callable[[Any], dict] | None = None  # unwrapped module -> metrics
    metric: str = "loss"
    greater_is_better: bool = False


@dataclass
class TrainResult:
    history: list[dict] = field(default_factory=list)  # one row per logged optimizer step
    evals: list[dict] = field(default_factory=list)
    best: dict | None = None
    steps: int = 0
    seconds: float = 0.0
    stopped_early: bool = False
    is_main: bool = True
    num_processes: int = 1


def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    import torch

    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g).tolist()


def _accelerator(cfg: TrainConfig):
    try:
        from accelerate import Accelerator
        from accelerate.state import AcceleratorState, GradientState
    except ImportError as e:
        raise NlpressError(
            "training needs the package accelerate: run `pip install 'nlpress[train]'`"
        ) from e

    AcceleratorState._reset_state()  # a second run in the same process may change the settings
    GradientState._reset_state()
    try:
        return Accelerator(
            cpu=cfg.cpu,
            mixed_precision=cfg.mixed_precision,
            gradient_accumulation_steps=cfg.grad_accum,
            step_scheduler_with_optimizer=False,  # the schedule counts optimizer steps
        )
    except (ValueError, RuntimeError) as e:
        raise NlpressError(f"--mixed-precision {cfg.mixed_precision}: {e}; use 'no'") from e


@dataclass
class _Progress:
    """Where the loop is: saved in trainer.json so a resumed run continues exactly."""

    step: int = 0
    epoch: int = 0
    step_in_epoch: int = 0
    bad_evals: int = 0
    best: dict | None = None
    history: list = field(default_factory=list)
    evals: list = field(default_factory=list)


def train(
    task: TrainTask,
    cfg: TrainConfig,
    ckpt_dir: Path | None = None,
    *,
    resume: bool = False,
    callbacks: list[Callable[[Any, int], None]] = (),
    progress: bool = True,
) -> tuple[Any, TrainResult]:
    """Train ``task.module``; returns the unwrapped module holding the best weights, and a result.

    ``callbacks`` run after every optimizer step as ``fn(unwrapped_module, step)`` (e.g. pruning
    re-applies its masks there).
    """
    import torch

    acc = _accelerator(cfg)
    world = acc.num_processes
    steps_per_epoch, total = _schedule(task.n_examples, cfg, world)
    torch.manual_seed(cfg.seed)
    module, opt, sched = acc.prepare(task.module, *_optimizer(task.module, cfg, total))
    prog = _Progress()
    settings = {**{k: getattr(cfg, k) for k in RESUME_SETTINGS}, "n_examples": task.n_examples}
    if resume:
        prog = _resume(acc, ckpt_dir, settings)
    result = TrainResult(is_main=acc.is_main_process, num_processes=world)
    best_state = _load_best(ckpt_dir) if resume and prog.best else None
    t0 = time.perf_counter()
    bar = _bar(total, prog.step, progress and acc.is_main_process)
    try:
        best_state = _loop(acc, module, opt, sched, task, cfg, ckpt_dir, callbacks, prog, result,
                           best_state, bar, steps_per_epoch, total, settings)  # fmt: skip
    finally:  # closed before an interruption's message, not after it by the garbage collector
        if bar is not None:
            bar.close()
    acc.wait_for_everyone()
    unwrapped = acc.unwrap_model(module)
    if best_state is not None:
        unwrapped.load_state_dict(best_state)
    result.history, result.evals, result.best = prog.history, prog.evals, prog.best
    result.steps, result.seconds = prog.step, round(time.perf_counter() - t0, 2)
    return unwrapped, result


def _loop(acc, module, opt, sched, task, cfg, ckpt_dir, callbacks, prog, result, best_state,
          bar, steps_per_epoch: int, total: int, settings: dict):  # fmt: skip
    """The epochs and steps of :func:`train`; returns the best state so far."""
    eval_every = cfg.eval_every or steps_per_epoch
    while prog.step < total and not result.stopped_early:
        order = epoch_order(task.n_examples, cfg.seed, prog.epoch)
        while prog.step_in_epoch < steps_per_epoch and prog.step < total:
            t_step = time.perf_counter()
            loss, logs = _one_step(acc, module, opt, sched, task, order, prog.step_in_epoch, cfg)
            prog.step += 1
            prog.step_in_epoch += 1
            if not math.isfinite(loss):
                raise NlpressError(
                    f"the training loss became {loss} at step {prog.step}; nothing was written. "
                    f"Lower --lr (now {cfg.lr:g}) or check the data"
                )
            rate = cfg.batch_size * cfg.grad_accum / max(time.perf_counter() - t_step, 1e-9)
            _record(prog, loss, logs, sched.get_last_lr()[0], rate, bar)
            for fn in callbacks:
                fn(acc.unwrap_model(module), prog.step)
            if task.evaluate is not None and (prog.step % eval_every == 0 or prog.step == total):
                best_state = _evaluate(acc, module, task, cfg, prog, best_state, result)
            if prog.step % cfg.checkpoint_every == 0 and ckpt_dir is not None:
                save_checkpoint(acc, ckpt_dir, prog, best_state, settings)
            if result.stopped_early:
                break
        if prog.step_in_epoch >= steps_per_epoch:
            prog.epoch, prog.step_in_epoch = prog.epoch + 1, 0
    return best_state


def _schedule(n_examples: int, cfg: TrainConfig, world: int) -> tuple[int, int]:
    """(optimizer steps per epoch, total optimizer steps); errors for batches that cannot work."""
    if world == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true":
        log.warning(
            "one process: `accelerate launch --cpu` uses accelerate's single-process launcher; "
            "for N CPU processes run `accelerate launch --multi_gpu --num_processes N ... --cpu`"
        )
    if cfg.batch_size % world:
        raise NlpressError(
            f"--batch-size {cfg.batch_size} does not split over {world} processes; "
            f"use a multiple of {world}"
        )
    steps_per_epoch = n_examples // (cfg.batch_size * cfg.grad_accum)
    if steps_per_epoch < 1:
        raise NlpressError(
            f"{n_examples} training rows make no full batch of {cfg.batch_size * cfg.grad_accum}; "
            "add data or lower --batch-size / --grad-accum"
        )
    total = steps_per_epoch * cfg.epochs
    return steps_per_epoch, min(total, cfg.max_steps) if cfg.max_steps else total


def _record(prog: _Progress, loss: float, logs: dict, lr: float, rate: float, bar) -> None:
    """One row of the training curve; the progress bar shows loss and samples/s."""
    row = {"step": prog.step, "epoch": prog.epoch, "loss": loss, **logs}
    row.update(lr=lr, samples_per_s=round(rate, 1))
    prog.history.append(row)
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}", samples_s=f"{rate:.0f}")


def _optimizer(module, cfg: TrainConfig, total: int):
    import torch
    from transformers import get_linear_schedule_with_warmup

    decay, no_decay = [], []
    for name, p in module.named_parameters():
        if cfg.freeze_embeddings and "word_embeddings" in name:
            p.requires_grad_(False)
        if p.requires_grad:
            (no_decay if p.ndim < 2 or "LayerNorm" in name else decay).append(p)
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
    )
    sched = get_linear_schedule_with_warmup(opt, math.ceil(cfg.warmup_ratio * total), total)
    return opt, sched


def _one_step(acc, module, opt, sched, task, order, step_in_epoch, cfg) -> tuple[float, dict]:
    """One optimizer step: ``grad_accum`` micro-batches, this process's rows of each."""
    import torch

    module.train()
    losses, logs_sum = [], {}
    for a in range(cfg.grad_accum):
        start = (step_in_epoch * cfg.grad_accum + a) * cfg.batch_size
        rows = order[start : start + cfg.batch_size][acc.process_index :: acc.num_processes]
        batch = task.make_batch(rows, acc.device)
        with acc.accumulate(module), acc.autocast():
            loss, logs = module(**batch)
            acc.backward(loss)
            if acc.sync_gradients:
                opt.step()
                sched.step()
            opt.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        for k, v in logs.items():
            logs_sum[k] = logs_sum.get(k, 0.0) + float(v) / cfg.grad_accum
    mean = acc.reduce(torch.stack(losses).mean().float(), reduction="mean")
    return float(mean), {k: round(v, 6) for k, v in logs_sum.items()}


def _evaluate(acc, module, task, cfg, prog: _Progress, best_state, result: TrainResult):
    """Held-out metrics (each process computes the same numbers), best weights, early stop."""
    unwrapped = acc.unwrap_model(module)
    unwrapped.eval()
    metrics = task.evaluate(unwrapped)
    value = metrics[task.metric]
    prog.evals.append({"step": prog.step, "epoch": prog.epoch, **metrics})
    better = prog.best is None or (
        value > prog.best[task.metric] if task.greater_is_better else value < prog.best[task.metric]
    )
    if better:
        prog.best, prog.bad_evals = {"step": prog.step, **metrics}, 0
        best_state = {k: v.detach().cpu().clone() for k, v in unwrapped.state_dict().items()}
        log.info("step %d: %s %.4f (best so far)", prog.step, task.metric, value)
    else:
        prog.bad_evals += 1
        log.info(
            "step %d: %s %.4f (best %.4f)", prog.step, task.metric, value, prog.best[task.metric]
        )
        if cfg.patience is not None and prog.bad_evals >= cfg.patience:
            log.info("early stop: %d evaluations without improvement", prog.bad_evals)
            result.stopped_early = True
    return best_state


def _bar(total: int, initial: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step")


def _write_state(acc, path: Path) -> None:
    acc.save_state(str(path))


def check_checkpoint_dir(ckpt_dir: Path) -> None:
    """A checkpoint folder that exists must be one nlpress made (it holds :data:`MARKER`): it
    is written into and, once the artifact is written, deleted."""
    ckpt_dir = Path(ckpt_dir)
    if (ckpt_dir.exists() or ckpt_dir.is_symlink()) and not (ckpt_dir / MARKER).is_file():
        raise NlpressError(
            f"{ckpt_dir} exists and was not made by nlpress, which keeps its checkpoints there "
            "and deletes them at the end; move it or choose another --out"
        )


def made_by_nlpress(ckpt_dir: Path) -> bool:
    return (Path(ckpt_dir) / MARKER).is_file() and not Path(ckpt_dir).is_symlink()


def save_checkpoint(acc, ckpt_dir: Path, prog: _Progress, best_state, settings=None) -> None:
    """Write the whole training state to ``ckpt_dir/.tmp-last``, then swap it in as ``last``."""
    from safetensors.torch import save_file

    ckpt_dir = Path(ckpt_dir)
    tmp = ckpt_dir / TMP
    if acc.is_main_process:
        check_checkpoint_dir(ckpt_dir)
        if not ckpt_dir.exists():
            ckpt_dir.mkdir(parents=True)
            (ckpt_dir / MARKER).write_text(json.dumps({"written_by": "nlpress"}) + "\n")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    acc.wait_for_everyone()
    _write_state(acc, tmp)
    acc.wait_for_everyone()
    if acc.is_main_process:
        if best_state is not None:
            save_file(
                {k: v.contiguous() for k, v in best_state.items()}, str(tmp / "best.safetensors")
            )
        state = {**prog.__dict__, "settings": settings}
        (tmp / "trainer.json").write_text(json.dumps(state, default=float))
        last, old = ckpt_dir / LAST, ckpt_dir / OLD
        if last.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.rename(last, old)
        os.rename(tmp, last)
        shutil.rmtree(old, ignore_errors=True)
    acc.wait_for_everyone()


def last_checkpoint(ckpt_dir: Path | None) -> Path | None:
    """``last``, or the one moved aside if a crash fell between the two renames."""
    if ckpt_dir is None:
        return None
    for name in (LAST, OLD):
        p = Path(ckpt_dir) / name
        if (p / "trainer.json").is_file():
            return p
    return None


def _resume(acc, ckpt_dir: Path | None, settings: dict) -> _Progress:
    path = last_checkpoint(ckpt_dir)
    if path is None:
        raise NlpressError(
            f"--resume: no checkpoint in {ckpt_dir}; run without --resume to start afresh"
        )
    check_checkpoint_dir(ckpt_dir)
    from nlpress.guards import read_json

    state = read_json(path / "trainer.json", "checkpoint file", _DAMAGED)
    saved = state.pop("settings", None)
    if isinstance(saved, dict):
        diff = [k for k in settings if k in saved and saved[k] != settings[k]]
        if diff:
            k = diff[0]
            raise NlpressError(
                f"--resume: the checkpoint in {path} was made with {k}={saved[k]!r}, this run has "
                f"{k}={settings[k]!r}; resume with the same settings, or run without --resume"
            )
    try:
        prog = _Progress(**state)
        if not all(isinstance(getattr(prog, k), int) for k in ("step", "epoch", "step_in_epoch")):
            raise TypeError("step counters are not integers")
        acc.load_state(str(path))
    except NlpressError:
        raise
    except Exception as e:  # torch, safetensors and accelerate each raise their own types
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"--resume: the checkpoint in {path} is unreadable ({first}); {_DAMAGED}"
        ) from e
    log.info("resumed from %s at step %d (epoch %d)", path, prog.step, prog.epoch)
    return prog


_DAMAGED = "it is damaged: delete the checkpoint folder and run without --resume"


def _load_best(ckpt_dir: Path) -> dict | None:
    from safetensors.torch import load_file

    f = last_checkpoint(ckpt_dir) / "best.safetensors"
    try:
        return load_file(str(f)) if f.is_file() else None
    except Exception as e:
        raise NlpressError(f"--resume: {f} is unreadable ({type(e).__name__}); {_DAMAGED}") from e
