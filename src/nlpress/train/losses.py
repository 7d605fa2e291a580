"""Distillation losses as pure functions of tensors.

* :func:`kd_loss`: Hinton et al. 2015, "Distilling the Knowledge in a Neural Network": KL between
  temperature-softened teacher and student distributions, scaled by ``T**2`` so its gradient keeps
  the same magnitude whatever the temperature, mixed with the hard-label cross-entropy by ``alpha``
  (DistilBERT, Sanh et al. 2019, uses the same mix).
* :func:`hidden_mse`: TinyBERT (Jiao et al. 2020) hidden-state MSE; when the widths differ the
  student's states go through a learned linear projection ``W_h`` first (owned by the caller, so
  it is trained with the student and dropped afterwards).
* :func:`attention_mse` (TinyBERT: MSE between attention matrices) and :func:`attention_kl`
  (MiniLM, Wang et al. 2020: KL between the attention distributions of the last layer).
* :func:`embedding_loss`: cosine or MSE between pooled sentence embeddings; needs no labels.
* :func:`layer_map`: which teacher layer each student layer learns from (uniform, as TinyBERT).

Why pure functions: each is tested against a plain loop over the formula, and the training glue
(:mod:`nlpress.distill`) only decides which ones to add up.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def kd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor | None = None,
    *,
    temperature: float = 2.0,
    alpha: float = 0.5,
) -> Tensor:
    """``alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(student, labels)``, batch mean.

    ``p_T``/``q_T`` are teacher/student softmax at temperature ``T``. Without labels the loss is
    the soft term alone (alpha is taken as 1).
    """
    t = float(temperature)
    log_q = F.log_softmax(student_logits.float() / t, dim=-1)  # (B, C)
    log_p = F.log_softmax(teacher_logits.float() / t, dim=-1)  # (B, C)
    soft = (log_p.exp() * (log_p - log_q)).sum(-1).mean() * t * t
    if labels is None:
        return soft
    hard = F.cross_entropy(student_logits.float(), labels)
    return alpha * soft + (1.0 - alpha) * hard


def _token_mask(mask: Tensor | None, like: Tensor) -> Tensor:
    if mask is None:
        return torch.ones(like.shape[:2], dtype=like.dtype, device=like.device)
    return mask.to(like.dtype)


def hidden_mse(
    student_hidden: Tensor,
    teacher_hidden: Tensor,
    attention_mask: Tensor | None = None,
    proj: torch.nn.Module | None = None,
) -> Tensor:
    """Mean squared error per element over real (unpadded) tokens; ``proj`` maps student width."""
    s = student_hidden.float()  # (B, T, Hs)
    if proj is not None:
        s = proj(s)  # (B, T, Ht)
    t = teacher_hidden.float()  # (B, T, Ht)
    if s.shape != t.shape:
        raise ValueError(
            f"hidden states differ in shape {tuple(s.shape)} vs {tuple(t.shape)}; pass a projection"
        )
    m = _token_mask(attention_mask, t).unsqueeze(-1)  # (B, T, 1)
    return ((s - t) ** 2 * m).sum() / (m.sum() * t.shape[-1]).clamp(min=1.0)


def _query_mask(attention_mask: Tensor | None, att: Tensor) -> Tensor:
    m = _token_mask(attention_mask, att[:, 0])  # (B, T)
    return m[:, None, :, None].expand_as(att)  # (B, heads, T, T): rows of real query tokens


def _same_heads(student_att: Tensor, teacher_att: Tensor) -> None:
    if student_att.shape != teacher_att.shape:
        raise ValueError(
            f"attention maps differ in shape {tuple(student_att.shape)} vs {tuple(teacher_att.shape)}; "
            "attention distillation needs the same number of heads"
        )


def attention_mse(
    student_att: Tensor, teacher_att: Tensor, attention_mask: Tensor | None = None
) -> Tensor:
    """TinyBERT: MSE between attention probability matrices ``(B, heads, T, T)``, real queries."""
    _same_heads(student_att, teacher_att)
    m = _query_mask(attention_mask, teacher_att)
    diff = (student_att.float() - teacher_att.float()) ** 2 * m
    return diff.sum() / m.sum().clamp(min=1.0)


def attention_kl(
    student_att: Tensor, teacher_att: Tensor, attention_mask: Tensor | None = None
) -> Tensor:
    """MiniLM: ``KL(teacher row || student row)`` of each attention distribution, mean over rows."""
    _same_heads(student_att, teacher_att)
    eps = 1e-12
    p = teacher_att.float()  # (B, heads, T, T), rows sum to 1 over real keys
    kl_rows = (p * ((p + eps).log() - (student_att.float() + eps).log())).sum(-1)  # (B, heads, T)
    m = _query_mask(attention_mask, teacher_att)[..., 0]  # (B, heads, T)
    return (kl_rows * m).sum() / m.sum().clamp(min=1.0)


def embedding_loss(student_emb: Tensor, teacher_emb: Tensor, kind: str = "cosine") -> Tensor:
    """``1 - cos`` (mean over the batch) or MSE between pooled embeddings ``(B, D)``."""
    s, t = student_emb.float(), teacher_emb.float()
    if kind == "cosine":
        return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()
    if kind == "mse":
        return ((s - t) ** 2).mean()
    raise ValueError(f"unknown embedding loss {kind!r}; use 'cosine' or 'mse'")


def layer_map(n_student: int, n_teacher: int) -> list[int]:
    """Teacher layer (0-based) whose output student layer ``i`` learns: uniform, last to last."""
    if not 1 <= n_student <= n_teacher:
        raise ValueError(f"cannot map {n_student} student layers onto {n_teacher} teacher layers")
    return [round((i + 1) * n_teacher / n_student) - 1 for i in range(n_student)]
