"""``compress()``: a :class:`nlpress.session.Session` with one recipe.

The session checks everything cheap first (output folder, recipe, model folder, data, every
step's ``check``), loads the model and the fp32 baseline once, runs the steps
(:data:`nlpress.steps.STEPS`), measures the result beside the baseline in one interleaved run
and writes the artifact atomically (:func:`nlpress.artifact.atomic_artifact`).
"""

from __future__ import annotations

import os
from typing import Any

from nlpress.artifact import Artifact
from nlpress.recipe import Recipe
from nlpress.session import EVAL_LIMIT
from nlpress.state import State as _State  # noqa: F401  (the name step code used to import)

__all__ = ["Artifact", "EVAL_LIMIT", "compress"]


def compress(
    model: str | os.PathLike = "default",
    task: str | None = None,
    data: str | os.PathLike | None = None,
    recipe: str | os.PathLike | Recipe = "int8",
    out: str | os.PathLike = "out",
    *,
    overrides: list[str] | tuple[str, ...] = (),
    calib: str | os.PathLike | None = None,
    min_fidelity: float | None = None,
    force: bool = False,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    limit: int | None = EVAL_LIMIT,
    bench: Any = None,
    memory: bool = True,
    progress: bool = True,
    trust_remote_code: bool = False,
    device: str = "cpu",
) -> Artifact:
    """Compress ``model`` with ``recipe`` into the artifact folder ``out`` and measure it.

    ``calib`` is a data file whose texts calibrate a ``quantize-static-int8`` step; without it
    the evaluation texts are used, and the step's info in metrics.json says so.
    ``min_fidelity`` turns on mixed precision in the recipe's int8 step (see
    :mod:`nlpress.quantize.mixed`).
    ``device`` "cuda" runs the baseline and the result on the GPU (:mod:`nlpress.runtime.device`).
    """
    from nlpress.session import compress_one

    columns = {
        "text_column": text_column,
        "text_pair_column": text_pair_column,
        "label_column": label_column,
    }
    session_kw = dict(
        model=model,
        task=task,
        data=data,
        calib=calib,
        columns=columns,
        limit=limit,
        bench=bench,
        memory=memory,
        progress=progress,
        trust_remote_code=trust_remote_code,
        device=device,
    )
    return compress_one(out, force, session_kw, recipe, overrides, min_fidelity)
