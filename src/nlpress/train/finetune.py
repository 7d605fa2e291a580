"""``finetune()``: turn a base model into a text classifier (how users, and our benchmarks, get
a teacher), with evaluation on a deterministic held-out part, early stopping and the best
checkpoint kept.

Plain cross-entropy fine-tuning as in BERT (Devlin et al. 2019): a fresh linear head on the
pooled output, AdamW, linear warm-up and decay. The loop is :func:`nlpress.train.loop.train`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from torch import nn

from nlpress.errors import NlpressError
from nlpress.train.loop import TrainConfig, TrainTask

log = logging.getLogger(__name__)


class ClassifierLoss(nn.Module):
    """Wraps a classifier so DDP sees one forward that returns ``(loss, logs)``."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, labels, **enc):
        logits = self.model(**enc).logits  # (B, C)
        return nn.functional.cross_entropy(logits.float(), labels), {}


def _label_maps(d) -> tuple[dict[int, str], dict[str, int]]:
    n = len(d.label_names) if d.label_names else max(d.labels) + 1
    id2label = {i: (d.label_names[i] if d.label_names else str(i)) for i in range(n)}
    return id2label, {v: k for k, v in id2label.items()}


def load_classifier(path: Path, id2label: dict[int, str]):
    """The base model with a classification head for these labels (a new head where needed)."""
    import torch
    import transformers

    from nlpress.models.loader import _check_weights, from_pretrained, load_tokenizer, read_config

    read_config(path)  # a readable config.json of sane sizes, and weights beside it
    _check_weights(path)
    tok = load_tokenizer(path)
    model = from_pretrained(
        transformers.AutoModelForSequenceClassification,
        path,
        "text-classification",
        new_head=True,  # a fresh head for these labels is the point; the body must be complete
        num_labels=len(id2label),
        id2label=id2label,
        label2id={v: k for k, v in id2label.items()},
        ignore_mismatched_sizes=True,
        dtype=torch.float32,
    )
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
        model.config.pad_token_id = tok.pad_token_id
    return model, tok


def classification_eval(model, tok, d, rows: list[int], max_length: int, batch: int = 64) -> dict:
    """Accuracy (percent) and mean cross-entropy of ``model`` on ``rows`` of ``d``."""
    import torch

    from nlpress.train.data import encode

    correct, loss, n = 0, 0.0, 0
    with torch.inference_mode():
        for s in range(0, len(rows), batch):
            b = encode(tok, d, rows[s : s + batch], max_length, model.device)
            labels = b.pop("labels")
            logits = model(**b).logits.float()
            correct += int((logits.argmax(-1) == labels).sum())
            loss += float(nn.functional.cross_entropy(logits, labels, reduction="sum"))
            n += len(labels)
    return {"accuracy": 100.0 * correct / n, "loss": loss / n}


def finetune(
    model: str | os.PathLike = "default",
    task: str = "text-classification",
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "out-finetune",
    *,
    train: TrainConfig | None = None,
    eval_split: float = 0.1,
    force: bool = False,
    resume: bool = False,
    limit: int | None = None,
    columns: dict | None = None,
    progress: bool = True,
):
    """Fine-tune ``model`` on labelled ``data`` into a classifier artifact at ``out``.

    Returns the :class:`~nlpress.artifact.Artifact` on the main process, None on the others.
    """
    from nlpress.models.loader import resolve_model_path
    from nlpress.train.data import check_max_length, heldout_split, read_training_data
    from nlpress.train.loop import train as run
    from nlpress.train.output import check_targets, checkpoint_dir, finish

    if task != "text-classification":
        raise NlpressError(f"finetune supports --task text-classification, not {task!r}")
    cfg = train or TrainConfig()
    out = Path(out).absolute()
    check_targets(out, force)
    path = resolve_model_path(model)
    d = read_training_data(data, task, columns or {}, limit, need_labels=True)
    split = heldout_split(len(d), eval_split, cfg.seed)
    id2label, _ = _label_maps(d)
    clf, tok = load_classifier(path, id2label)
    cfg = check_max_length(cfg, clf.config)
    sub_train = _subset_view(d, split.train)
    evaluate = None
    if split.heldout:

        def evaluate(m):
            return classification_eval(m.model, tok, d, split.heldout, cfg.max_length)

    def make_batch(rows, device):
        from nlpress.train.data import encode

        return encode(tok, sub_train, rows, cfg.max_length, device)

    task_spec = TrainTask(
        ClassifierLoss(clf), len(split.train), make_batch, evaluate, "accuracy", True
    )
    trained, result = run(task_spec, cfg, checkpoint_dir(out), resume=resume, progress=progress)
    if not result.is_main:
        return None
    head = {
        "model": str(model),
        "task": task,
        "data": {"source": str(data), "rows": len(d), "split": split.info},
        "heldout_metric": "accuracy",
        "train_config": cfg.model_dump(),
    }
    return finish("finetune", out, force, (trained.model, tok, task, path), head, result)


def _subset_view(d, rows: list[int]):
    from nlpress.train.data import take

    return take(d, rows)
