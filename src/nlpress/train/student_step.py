"""The ``distill-student`` recipe step: keep some of the model's layers, then distill.

The student starts as a layer subset of the model as the steps so far left it (DistilBERT's
initialisation, :func:`nlpress.train.student.layer_subset_student`) and is trained to imitate the
original model (the session's fp32 baseline) on the training data: its logits mixed with the
labels when there are any, or its sentence embeddings (Hinton et al. 2015; Sanh et al. 2019).
Why a recipe step: so that a distilled student, and compounds like student -> prune-structured
-> recover -> int8, are plain recipes that ``nlpress compress --recipe`` reproduces and that
``nlpress tune`` searches. The training reuses :mod:`nlpress.prune.recover`'s loop glue.
"""

from __future__ import annotations

import logging
from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.recipe import DistillStudentConfig
from nlpress.state import CheckContext, State

log = logging.getLogger(__name__)


def check_student(cfg: DistillStudentConfig, ctx: CheckContext, i: int) -> None:
    """Training data and the layer choice, before any weight loads."""
    from nlpress.train.student import parse_layers

    if ctx.task == "causal-lm":
        raise NlpressError(
            f"recipe step {i} (distill-student): training a causal-lm is not supported yet; "
            "use weight-only quantization or Wanda/SparseGPT for language models"
        )
    source = cfg.data or ctx.train_data or ctx.data
    if source is None:
        raise NlpressError(
            f"recipe step {i} (distill-student) trains a student and needs training data: pass "
            "--train train.tsv (tune), --data, or --set distill-student.data=train.tsv"
        )
    if (cfg.data or ctx.train_data) and not Path(source).is_file():
        raise NlpressError(f"recipe step {i} (distill-student): data file {source} not found")
    if not ctx.reshaped:
        parse_layers(cfg.layers, ctx.meta_model().config.num_hidden_layers)  # errors only
    ctx.reshaped = True


def step_student(st: State, cfg: DistillStudentConfig) -> dict:
    from nlpress.prune.recover import _run, _train_info
    from nlpress.train.student import layer_subset_student, parse_layers

    model = st.current()
    n = model.config.num_hidden_layers
    layers = parse_layers(cfg.layers, n, keep_last=st.lm.task == "sentence-embedding")
    st.torch_model = layer_subset_student(model, layers)  # a copy: the baseline keeps its own
    st.masks = {}
    st.weights_format = "hf"
    st.torch_model, result = _run(st, cfg, [])
    info = {**_train_info(cfg, result), "kept_layers": layers, "teacher_layers": n}
    log.info("student of %d layers distilled in %d steps", len(layers), result.steps)
    return info
