"""Training data: reading, the deterministic held-out split, and tokenized batches.

The held-out part is carved by a seeded permutation of the row numbers, so the same file, seed
and fraction always give the same split on any machine; ``metrics.json`` records how.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from nlpress.data.readers import TextData
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)


def read_training_data(
    path: str | os.PathLike | None,
    task: str,
    columns: dict,
    limit: int | None,
    *,
    need_labels: bool,
) -> TextData:
    """Rows to train on. Sentence-embedding data may be plain text (one sentence a line) or a
    table whose text and pair columns are all used as single sentences (no scores needed)."""
    from nlpress.data.readers import read_data

    if path is None:
        raise NlpressError(
            "training needs --data: a TSV/CSV/JSONL file, or plain text for embeddings"
        )
    if task == "causal-lm":
        raise NlpressError(
            "training a causal-lm is not supported yet; use a classifier or an embedding model"
        )
    d = read_data(path, limit=limit, **columns)
    if len(d) == 0:
        raise NlpressError(f"{path} has no rows; add training examples")
    if task == "sentence-embedding":
        texts = list(dict.fromkeys([*d.texts, *(d.pairs or [])]))  # unique, first-seen order
        return TextData(texts=texts, source=d.source)
    if need_labels and d.labels is None:
        raise NlpressError(
            f"{path} has no label column; text-classification training needs labels "
            "(pass --label-column)"
        )
    if d.labels is not None and len(set(d.labels)) < 2:
        # one class: the model learns to say it always, and held-out accuracy reads 100
        raise NlpressError(
            f"every row of {path} has the same label ({d.labels[0]}); a classifier needs "
            "examples of at least two classes: add rows of the other labels"
        )
    return d


def check_max_length(cfg, config):
    """``cfg`` with a ``max_length`` that fits the model's position embeddings (longer texts
    cannot run). The default (128) shrinks to a smaller model's limit; a chosen value that does
    not fit is an error."""
    from nlpress.train.loop import TrainConfig

    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or cfg.max_length <= limit:
        return cfg
    if cfg.max_length == TrainConfig.model_fields["max_length"].default:
        return cfg.model_copy(update={"max_length": limit})
    raise NlpressError(
        f"--max-length {cfg.max_length} is longer than the model's {limit} positions; "
        f"pass --max-length {min(limit, 512)} or less"
    )


@dataclass
class Split:
    train: list[int]
    heldout: list[int]
    info: dict


def heldout_split(n: int, fraction: float, seed: int) -> Split:
    """Rows ``perm[:k]`` are held out, the rest train; ``perm`` is seeded by ``seed``."""
    import torch

    if not 0.0 <= fraction < 1.0:
        raise NlpressError(f"--eval-split must be in [0, 1), got {fraction}")
    k = int(round(n * fraction))
    if fraction > 0 and (k < 1 or n - k < 1):
        raise NlpressError(
            f"{n} rows are too few to hold out {fraction:.0%} for evaluation; add data or pass --eval-split 0"
        )
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    info = {
        "method": "torch.randperm(n_rows, generator seeded with seed); first round(n*fraction) rows held out",
        "seed": seed,
        "fraction": fraction,
        "n_train": n - k,
        "n_heldout": k,
    }
    return Split(sorted(perm[k:]), sorted(perm[:k]), info)


def take(d: TextData, rows: list[int]) -> TextData:
    def pick(values):
        return None if values is None else [values[i] for i in rows]

    return TextData(
        texts=pick(d.texts),
        pairs=pick(d.pairs),
        labels=pick(d.labels),
        label_names=d.label_names,
        scores=pick(d.scores),
        source=d.source,
    )


def encode(tokenizer, d: TextData, rows: list[int], max_length: int, device) -> dict:
    """Tokenized tensors (padded to the longest row) of ``rows``, with ``labels`` when known."""
    import torch

    texts = [d.texts[i] for i in rows]
    pairs = [d.pairs[i] for i in rows] if d.pairs is not None else None
    enc = tokenizer(
        texts, pairs, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
    )
    batch = {k: v.to(device) for k, v in enc.items()}
    if d.labels is not None:
        batch["labels"] = torch.tensor([d.labels[i] for i in rows], device=device)
    return batch
