"""Students made from a teacher by keeping a subset of its layers, and checks for given students.

DistilBERT (Sanh et al. 2019) initialises a half-depth student from every other layer of the
teacher; TinyBERT / MiniLM students are any smaller model trained to imitate it. Keeping a layer
subset is the cheapest good start: the embeddings, the kept blocks and the head are the
teacher's own weights, so the student starts close to the teacher and distillation only has to
repair the gaps.

Architectures differ only in where their list of blocks lives and in per-layer bookkeeping, so
each is a one-line adapter in :data:`LAYER_LISTS` (STYLE.md: thin architecture adapters).
Narrowing layers (fewer heads / FFN neurons) belongs to structured pruning, not here.
"""

from __future__ import annotations

import copy
import logging

from torch import nn

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

# model_type -> attribute path of the block list, relative to ``model.base_model``
LAYER_LISTS = {
    "bert": "encoder.layer",
    "roberta": "encoder.layer",
    "xlm-roberta": "encoder.layer",
    "electra": "encoder.layer",
    "mpnet": "encoder.layer",
    "llama": "layers",
    "mistral": "layers",
    "qwen2": "layers",
}


def _get(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def block_list(model: nn.Module) -> nn.ModuleList:
    """The model's list of transformer blocks, found through its architecture adapter."""
    mtype = getattr(model.config, "model_type", "?")
    path = LAYER_LISTS.get(mtype)
    if path is None:
        raise NlpressError(
            f"cannot build a layer-subset student of a {mtype!r} model (known: "
            f"{', '.join(sorted(LAYER_LISTS))}); pass a ready student with --student"
        )
    return _get(model.base_model, path)


def parse_layers(spec: str | int | list[int], n_teacher: int, keep_last: bool = False) -> list[int]:
    """``3`` -> 3 layers spread evenly ([0, 2, 4] of 6: every other, DistilBERT style);
    ``"0,2,4"`` or ``[0, 2, 4]`` -> exactly those (0-based) teacher layers, in order (``"1,"``:
    just layer 1).

    ``keep_last`` (sentence embeddings): a count spreads the layers from the first to the
    *last* one ([0, 3, 5] and [0, 2, 3, 5] of 6). The last layer's output is the space the
    pooled embedding lives in. Untrained MiniLM students, against the teacher on 64 STS-B
    sentences: mean cosine 0.27 for [0, 2, 4] and 0.71 for [0, 3, 5]; 0.30 for [0, 1, 3, 4]
    and 0.79 for [0, 2, 3, 5]. A tune on STS-B stopped every student of the first kind as
    hopeless after a third of its training.
    """
    if isinstance(spec, str):
        spec = spec.strip()
        try:
            spec = [int(x) for x in spec.split(",") if x] if "," in spec else int(spec)
        except ValueError as e:
            raise NlpressError(
                f"--student-layers {spec!r} is not a number or a comma-separated list; "
                "use e.g. 3 or 0,2,4"
            ) from e
    if isinstance(spec, int):
        if not 1 <= spec <= n_teacher:
            raise NlpressError(
                f"--student-layers {spec}: the teacher has {n_teacher} layers; "
                f"ask for 1 to {n_teacher}"
            )
        if keep_last:  # both ends, evenly between, halves rounded up
            if spec == 1:
                return [n_teacher - 1]
            return [(2 * i * (n_teacher - 1) + spec - 1) // (2 * (spec - 1)) for i in range(spec)]
        return [i * n_teacher // spec for i in range(spec)]
    layers = list(spec)
    bad = [i for i in layers if not 0 <= i < n_teacher]
    if not layers or bad:
        raise NlpressError(
            f"--student-layers {layers}: the teacher has layers 0..{n_teacher - 1}; "
            "pick indices in that range"
        )
    if len(set(layers)) != len(layers):
        raise NlpressError(f"--student-layers {layers} repeats a layer; list each one once")
    return layers


def layer_subset_student(teacher: nn.Module, layers: list[int]) -> nn.Module:
    """A deep copy of ``teacher`` that keeps only ``layers`` (teacher weights copied, not shared)."""
    student = copy.deepcopy(teacher)
    blocks = block_list(student)
    kept = nn.ModuleList([blocks[i] for i in layers])
    for new_idx, block in enumerate(kept):  # per-layer cache bookkeeping (Llama, BERT decoders)
        for mod in block.modules():
            if hasattr(mod, "layer_idx"):
                mod.layer_idx = new_idx
    path = LAYER_LISTS[student.config.model_type].rsplit(".", 1)
    parent = _get(student.base_model, path[0]) if len(path) == 2 else student.base_model
    setattr(parent, path[-1], kept)
    cfg = student.config
    cfg.num_hidden_layers = len(layers)
    if isinstance(getattr(cfg, "layer_types", None), list):
        cfg.layer_types = [cfg.layer_types[i] for i in layers]
    log.info("student keeps teacher layers %s", layers)
    return student


def check_compatible(teacher_lm, student_lm) -> None:
    """A given student must read the same tokens and predict the same labels as the teacher."""
    if teacher_lm.task != student_lm.task:
        raise NlpressError(
            f"the teacher is a {teacher_lm.task} model but the student a {student_lm.task} model; "
            "pass a student for the same task"
        )
    if teacher_lm.tokenizer.get_vocab() != student_lm.tokenizer.get_vocab():
        raise NlpressError(
            "teacher and student use different tokenizers (vocabularies differ); distillation "
            "compares them token by token: pick a student with the teacher's tokenizer"
        )
    if teacher_lm.task == "text-classification" and teacher_lm.id2label != student_lm.id2label:
        raise NlpressError(
            f"teacher labels {teacher_lm.id2label} differ from student labels "
            f"{student_lm.id2label}; give the student the teacher's label set (config id2label)"
        )
