"""Scoring: task metrics against labels, and fidelity of a compressed model to its reference.

Both are pure numpy/scipy functions over model outputs, so every backend is scored by the same code.
"""

from nlpress.evaluate.fidelity import cosine_rows, embedding_fidelity, logits_fidelity
from nlpress.evaluate.metrics import (
    accuracy,
    classification_metrics,
    f1,
    pearson,
    perplexity,
    spearman,
    sts_metrics,
)

__all__ = [
    "accuracy",
    "classification_metrics",
    "cosine_rows",
    "embedding_fidelity",
    "f1",
    "logits_fidelity",
    "pearson",
    "perplexity",
    "spearman",
    "sts_metrics",
]
