"""Tokenize once, batch by length, and put the outputs back in the caller's order.

Padding is wasted compute: a batch costs as much as its longest row. Sorting rows by token count
before cutting batches keeps rows of similar length together, so each batch is padded only to its
own longest row, which removes most of the padding when lengths vary (the "batching by length"
that serving stacks do). The price is that outputs come back in sorted order, so
:func:`restore_order` scatters them back.

The text is tokenized once, without padding, to get the lengths; each batch is then padded from
those ids (:func:`pad_batch`), which is what ``tokenizer.pad`` does, without its fast-tokenizer
warning and also for tokenizers without a pad token (causal LMs), whose padding is masked anyway.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

from nlpress.errors import NlpressError


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Row indices sorted by length, longest first (ties by index), cut into batches."""
    if batch_size < 1:
        raise NlpressError(f"batch size must be at least 1, got {batch_size}; pass --batch-size 32")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]


def tokenize_batches(
    tokenizer,
    inputs: Sequence[str | tuple[str, str]],
    batch_size: int,
    max_length: int = 512,
) -> Iterator[tuple[list[int], dict[str, np.ndarray]]]:
    """Yield (original row indices, int64 tokenizer output padded to the batch's longest row).

    ``inputs`` are texts or (text, pair) tuples (or lists), all of one kind; rows are truncated to
    ``max_length`` tokens. Batches come longest first.
    """
    if not inputs:
        return
    is_pair = [isinstance(x, tuple | list) for x in inputs]
    if any(is_pair) and not all(is_pair):
        raise ValueError("inputs mix single texts and (text, pair) tuples")
    if all(is_pair):
        texts, pairs = [x[0] for x in inputs], [x[1] for x in inputs]
    else:
        texts, pairs = list(inputs), None
    encoded = tokenizer(texts, pairs, truncation=True, max_length=max_length)
    encoded = {key: list(values) for key, values in encoded.items()}
    lengths = [len(ids) for ids in encoded["input_ids"]]
    pad_values = _pad_values(tokenizer)
    for indices in length_sorted_batches(lengths, batch_size):
        rows = {key: [values[i] for i in indices] for key, values in encoded.items()}
        yield indices, pad_batch(rows, pad_values, left=tokenizer.padding_side == "left")


def pad_batch(
    rows: dict[str, list[list[int]]], pad_values: dict[str, int], *, left: bool = False
) -> dict[str, np.ndarray]:
    """Pad each key's rows to the longest row; keys missing from ``pad_values`` pad with 0."""
    out = {}
    for key, seqs in rows.items():
        width = max(len(s) for s in seqs)
        array = np.full((len(seqs), width), pad_values.get(key, 0), dtype=np.int64)  # (B, T)
        for row, seq in enumerate(seqs):
            if left:
                array[row, width - len(seq) :] = seq
            else:
                array[row, : len(seq)] = seq
        out[key] = array
    return out


def restore_order(chunks: list[tuple[list[int], np.ndarray]], n: int) -> np.ndarray:
    """Scatter per-batch outputs ``(indices, array with one row per index)`` back to rows 0..n-1.

    Works for per-row outputs (logits ``(B, C)``, embeddings ``(B, D)``); token-level outputs
    differ in width between batches and must be reduced per row first.
    """
    if not chunks:
        if n:
            raise ValueError(f"no outputs to restore for {n} rows")
        return np.empty((0,))
    arrays = [np.asarray(values) for _, values in chunks]
    out = np.empty((n, *arrays[0].shape[1:]), dtype=np.result_type(*arrays))
    seen = np.zeros(n, dtype=bool)
    for (indices, _), values in zip(chunks, arrays, strict=True):
        if len(indices) != len(values):
            raise ValueError(f"{len(indices)} indices but {len(values)} output rows in a batch")
        out[indices] = values
        seen[indices] = True
    if not seen.all():
        raise ValueError(f"rows {np.flatnonzero(~seen)[:5].tolist()} have no output")
    if sum(len(indices) for indices, _ in chunks) != n:
        raise ValueError("some rows have more than one output")
    return out


def _pad_values(tokenizer) -> dict[str, int]:
    """What each tokenizer output is padded with; a missing pad token pads with eos (or 0)."""
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    return {
        "input_ids": pad_id,
        "attention_mask": 0,
        "token_type_ids": getattr(tokenizer, "pad_token_type_id", 0),
        "special_tokens_mask": 1,
    }
