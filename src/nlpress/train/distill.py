"""``distill()``: train a smaller student to imitate a teacher; writes a student artifact.

Students: a subset of the teacher's layers (every other layer, DistilBERT style, or a chosen
list; :mod:`nlpress.train.student`) or any given model with the teacher's tokenizer and labels.
Losses (:mod:`nlpress.train.losses`): temperature KD on logits mixed with the hard-label loss by
``alpha`` (Hinton et al. 2015; DistilBERT), hidden-state MSE through a learned projection when
widths differ (TinyBERT), attention-map distillation (TinyBERT MSE or MiniLM KL), and for
sentence-embedding models cosine or MSE between pooled embeddings, which needs no labels at all.

The student with the best held-out score is kept; the artifact's ``metrics.json`` compares
teacher and student (quality, fidelity, speed measured in one interleaved run).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from nlpress.errors import NlpressError
from nlpress.train import losses as L
from nlpress.train.loop import TrainConfig, TrainTask

log = logging.getLogger(__name__)


class DistillConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    temperature: float = Field(2.0, gt=0)  # 2: softens without flattening (DistilBERT used 2)
    alpha: float = Field(0.5, ge=0, le=1)  # soft vs hard-label weight; 1 with no labels
    hidden_weight: float = Field(0.0, ge=0)  # off by default: logits alone suffice for 6->3 layers
    attention_weight: float = Field(0.0, ge=0)  # off by default: needs eager attention (slower)
    attention_loss: Literal["kl", "mse"] = "kl"  # MiniLM KL on the last layer; mse: TinyBERT, all
    embedding_loss: Literal["cosine", "mse"] = "cosine"  # cosine: what STS evaluation compares


def _pool(hidden, mask, pooling: str):
    if pooling == "cls":
        return hidden[:, 0]
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)  # (B, H)


class DistillModule(nn.Module):
    """Student (+ projection) whose forward returns ``(loss, logs)`` given the teacher's outputs."""

    def __init__(self, student, task: str, cfg: DistillConfig, layer_pairs, pooling: str, proj):
        super().__init__()
        self.student, self.proj = student, proj
        self.task, self.cfg, self.layer_pairs, self.pooling = task, cfg, layer_pairs, pooling

    def forward(self, teacher: dict, labels=None, **enc):
        cfg = self.cfg
        out = self.student(
            **enc,
            output_hidden_states=cfg.hidden_weight > 0,
            output_attentions=cfg.attention_weight > 0,
        )
        logs, mask = {}, enc["attention_mask"]
        if self.task == "text-classification":
            loss = L.kd_loss(
                out.logits, teacher["logits"], labels, temperature=cfg.temperature, alpha=cfg.alpha
            )
        else:
            emb = _pool(out.last_hidden_state.float(), mask, self.pooling)
            loss = L.embedding_loss(emb, teacher["embedding"], cfg.embedding_loss)
        logs["task_loss"] = float(loss.detach())
        if cfg.hidden_weight > 0:
            h = sum(
                L.hidden_mse(out.hidden_states[s + 1], teacher["hidden"][t], mask, self.proj)
                for s, t in self.layer_pairs
            ) / len(self.layer_pairs)
            logs["hidden_loss"] = float(h.detach())
            loss = loss + cfg.hidden_weight * h
        if cfg.attention_weight > 0:
            a = self._attention_loss(out.attentions, teacher["attentions"], mask)
            logs["attention_loss"] = float(a.detach())
            loss = loss + cfg.attention_weight * a
        return loss, logs

    def _attention_loss(self, s_att, t_att, mask):
        if self.cfg.attention_loss == "kl":  # MiniLM: last layer only
            return L.attention_kl(s_att[-1], t_att[-1], mask)
        pairs = self.layer_pairs
        return sum(L.attention_mse(s_att[s], t_att[t], mask) for s, t in pairs) / len(pairs)


def _teacher_outputs(teacher, enc: dict, task: str, cfg: DistillConfig, pooling: str) -> dict:
    with torch.no_grad():
        out = teacher(
            **enc,
            output_hidden_states=cfg.hidden_weight > 0,
            output_attentions=cfg.attention_weight > 0,
        )
    res = {}
    if task == "text-classification":
        res["logits"] = out.logits.float()
    else:
        res["embedding"] = _pool(out.last_hidden_state.float(), enc["attention_mask"], pooling)
    if cfg.hidden_weight > 0:
        res["hidden"] = [h.float() for h in out.hidden_states[1:]]  # per teacher layer
    if cfg.attention_weight > 0:
        res["attentions"] = [a.float() for a in out.attentions]
    return res


def make_student(teacher_lm, student: str | None, student_layers):
    """(student, kept teacher layers or None, layer pairs (student i, teacher j)).

    The pairs say which teacher layer's output each student layer learns (hidden and attention
    losses): uniform, last to last (TinyBERT), whichever teacher layers the student started from.
    """
    from nlpress.models.loader import load_model
    from nlpress.train.student import (
        block_list,
        check_compatible,
        layer_subset_student,
        parse_layers,
    )

    n_t = teacher_lm.model.config.num_hidden_layers
    if student is not None:
        if student_layers is not None:
            raise NlpressError("pass either --student or --student-layers, not both")
        s_lm = load_model(student, teacher_lm.task)
        check_compatible(teacher_lm, s_lm)
        n_s = s_lm.model.config.num_hidden_layers
        if n_s > n_t:
            raise NlpressError(f"the student has {n_s} layers, more than the teacher's {n_t}")
        return s_lm.model, None, list(enumerate(L.layer_map(n_s, n_t)))
    block_list(teacher_lm.model)  # an architecture we can cut, or a clear error
    count = student_layers if student_layers is not None else max(n_t // 2, 1)
    layers = parse_layers(count, n_t, keep_last=teacher_lm.task == "sentence-embedding")
    student = layer_subset_student(teacher_lm.model, layers)
    return student, layers, list(enumerate(L.layer_map(len(layers), n_t)))


def distill(
    teacher: str | os.PathLike,
    data: str | os.PathLike | None = None,
    out: str | os.PathLike = "out-distill",
    *,
    student: str | os.PathLike | None = None,
    student_layers: str | int | list[int] | None = None,
    config: DistillConfig | None = None,
    train: TrainConfig | None = None,
    eval_split: float = 0.1,
    task: str | None = None,
    force: bool = False,
    resume: bool = False,
    limit: int | None = None,
    columns: dict | None = None,
    bench_rounds: int = 5,
    progress: bool = True,
):
    """Distill ``teacher`` into a student artifact at ``out``; None on non-main processes."""
    from nlpress.models.loader import detect_task, load_model, read_config, resolve_model_path
    from nlpress.train.data import check_max_length, heldout_split, read_training_data, take
    from nlpress.train.loop import train as run
    from nlpress.train.output import check_targets, checkpoint_dir, finish

    cfg, tcfg = config or DistillConfig(), train or TrainConfig()
    out = Path(out).absolute()
    check_targets(out, force)
    t_path = resolve_model_path(teacher)
    task = task or detect_task(t_path, read_config(t_path))
    d = read_training_data(data, task, columns or {}, limit, need_labels=False)
    attn = "eager" if cfg.attention_weight > 0 else None
    t_lm = load_model(t_path, task, attn_implementation=attn)
    tcfg = check_max_length(tcfg, t_lm.model.config)
    s_model, kept, pairs = make_student(
        t_lm, None if student is None else str(student), student_layers
    )
    if attn:
        s_model.set_attn_implementation("eager")
    split = heldout_split(len(d), eval_split, tcfg.seed)
    train_d, held = take(d, split.train), take(d, split.heldout)
    if task == "text-classification" and d.labels is not None:
        _check_labels(d, t_lm)
    spec = _train_task(t_lm, s_model, pairs, cfg, tcfg, train_d, held)
    trained, result = run(spec, tcfg, checkpoint_dir(out), resume=resume, progress=progress)
    if not result.is_main:
        return None
    head = {
        "model": str(teacher),
        "task": task,
        "student": str(student) if student else {"teacher_layers": kept},
        "layer_pairs": pairs,
        "data": {"source": str(data), "rows": len(d), "split": split.info},
        "heldout_metric": spec.metric,
        "distill_config": cfg.model_dump(),
        "train_config": tcfg.model_dump(),
    }
    compare = (t_path, held if len(held) else train_d.head(256), bench_rounds, progress)
    model = (trained.student, t_lm.tokenizer, task, t_path)
    return finish("distill", out, force, model, head, result, compare)


def _train_task(t_lm, s_model, pairs, cfg: DistillConfig, tcfg: TrainConfig, train_d, held):
    """The loop's view of distillation: student (+ projection), batches with teacher outputs."""
    from nlpress.train.data import encode

    task, t_model, tok = t_lm.task, t_lm.model, t_lm.tokenizer
    hs, ht = s_model.config.hidden_size, t_model.config.hidden_size
    proj = nn.Linear(hs, ht) if cfg.hidden_weight > 0 and hs != ht else None
    module = DistillModule(s_model, task, cfg, pairs, t_lm.pooling, proj)

    def make_batch(rows, device):
        t_model.to(device)
        enc = encode(tok, train_d, rows, tcfg.max_length, device)
        labels = enc.pop("labels", None)
        teacher = _teacher_outputs(t_model, enc, task, cfg, t_lm.pooling)
        return {"teacher": teacher, "labels": labels, **enc}

    evaluate, metric = _heldout_eval(task, held, t_model, tok, tcfg, t_lm.pooling)
    return TrainTask(
        module, len(train_d), make_batch, evaluate if len(held) else None, metric, True
    )


def _check_labels(d, t_lm) -> None:
    from nlpress.data.readers import check_label_set

    names, n = set(t_lm.id2label.values()), t_lm.model.config.num_labels
    check_label_set(d, names, n, "the data", "teacher", "check --label-column")


def _heldout_eval(task, held, t_model, tok, tcfg: TrainConfig, pooling: str):
    """(evaluate(module) -> metrics, the metric to select on): accuracy when labelled, else the
    student's agreement (classifier) or mean cosine (embeddings) with the teacher."""
    from nlpress.train.data import encode

    rows = list(range(len(held)))
    cache: dict = {}

    def outputs(model):
        res = []
        with torch.inference_mode():
            for s in range(0, len(rows), 64):
                enc = encode(tok, held, rows[s : s + 64], tcfg.max_length, model.device)
                enc.pop("labels", None)
                o = model(**enc)
                res.append(
                    o.logits.float()
                    if task == "text-classification"
                    else _pool(o.last_hidden_state.float(), enc["attention_mask"], pooling)
                )
        return torch.cat(res)

    def evaluate(module):
        if "t" not in cache:
            cache["t"] = outputs(t_model)
        s, t = outputs(module.student), cache["t"]
        if task == "sentence-embedding":
            return {"cosine": float(nn.functional.cosine_similarity(s, t).mean())}
        m = {"agreement": 100.0 * float((s.argmax(-1) == t.argmax(-1)).float().mean())}
        if held.labels is not None:
            y = torch.tensor(held.labels)
            m["accuracy"] = 100.0 * float((s.argmax(-1) == y).float().mean())
        return m

    if task == "sentence-embedding":
        return evaluate, "cosine"
    return evaluate, "accuracy" if held.labels is not None else "agreement"


def compare_to_teacher(
    student_dir: Path, teacher_path: Path, held, rounds: int, progress: bool
) -> dict:
    """Quality and fidelity on the held-out rows, and speed in one interleaved run (batch 32);
    ``rounds=0`` skips the speed measurement."""
    from nlpress.bench.harness import BenchConfig, benchmark, ratios
    from nlpress.evaluate.task_eval import fidelity, quality
    from nlpress.runtime import load

    teacher, student = load(teacher_path), load(student_dir)
    tq, sq = quality(teacher, held), quality(student, held)
    kept = {"accuracy_kept": sq["accuracy"] / tq["accuracy"]} if tq.get("accuracy") else {}
    res = {
        "teacher": {"quality": tq},
        "student": {
            "quality": sq,
            "fidelity": fidelity(teacher, student, held),
            "vs_teacher": kept,
        },
    }
    if rounds < 1:  # quality and fidelity only
        return res
    texts = list(held.texts if teacher.task == "sentence-embedding" else held.inputs())
    cfg = BenchConfig(rounds=rounds, progress=progress)
    speed = benchmark({"teacher": teacher, "student": student}, texts, cfg)
    for k in ("teacher", "student"):
        res[k].update(speed[k])
    res["student"]["vs_teacher"].update(ratios(speed, "teacher")["student"])
    return res
