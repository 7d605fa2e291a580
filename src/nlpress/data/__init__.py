"""Data in: readers for TSV/CSV/JSONL/TXT and Hugging Face datasets, and batching by length.

Everything a command evaluates or calibrates on passes through :func:`read_data` (or
:func:`read_text` for causal-LM perplexity), so column detection and error messages are the same
everywhere; :func:`tokenize_batches` and :func:`restore_order` are the one way rows become batches.
"""

from nlpress.data.batching import length_sorted_batches, restore_order, tokenize_batches
from nlpress.data.readers import TextData, builtin_sentences, read_data, read_text

__all__ = [
    "TextData",
    "builtin_sentences",
    "length_sorted_batches",
    "read_data",
    "read_text",
    "restore_order",
    "tokenize_batches",
]
