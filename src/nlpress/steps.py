"""The step table: each recipe step config type -> its step (a cheap ``check``, and ``apply``).

This is the only module that knows the families. A step's ``check(cfg, ctx, i)`` looks at the
model's config (a meta-device model), the task, the data and the calibration texts
(:class:`nlpress.state.CheckContext`), never the weights, so a bad recipe fails in a second
before the slow load. ``apply(state, cfg) -> info`` does the work on the shared
:class:`nlpress.state.State` and returns what ``metrics.json`` records for the step. Families
are imported when a step runs, so ``import nlpress.steps`` stays cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from nlpress.recipe import (
    STEP_NAMES,
    CastConfig,
    DistillStudentConfig,
    ExportOnnxConfig,
    ExportOpenVinoConfig,
    OrtOptimizeConfig,
    PruneGradualConfig,
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneSparseGPTConfig,
    PruneStructuredConfig,
    PruneWandaConfig,
    QatConfig,
    QuantizeDynamicInt8Config,
    QuantizeOpenVinoInt8Config,
    QuantizeStaticInt8Config,
    QuantizeWeightOnlyConfig,
    Recipe,
    RecoverConfig,
    SelectBackendConfig,
    SmoothQuantConfig,
)
from nlpress.state import CheckContext, State


def _lazy(module: str, name: str) -> Callable:
    """``module.name``, imported on the first call (families stay unimported until used)."""

    def call(*args: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(module), name)(*args)

    call.__name__ = name
    return call


def _no_check(cfg: Any, ctx: CheckContext, i: int) -> None:
    return None


@dataclass(frozen=True)
class Step:
    apply: Callable[[State, Any], dict]
    check: Callable[[Any, CheckContext, int], None] = _no_check


_prune = Step(
    _lazy("nlpress.prune.steps", "prune_step"), _lazy("nlpress.prune.steps", "check_prune")
)
_oneshot = Step(
    _lazy("nlpress.prune.steps", "prune_step"),
    _lazy("nlpress.calib.pipeline_steps", "check_calibrated"),
)
_int8_check = _lazy("nlpress.quantize.steps", "check_int8")

STEPS: dict[type, Step] = {
    ExportOnnxConfig: Step(_lazy("nlpress.export.steps", "step_export")),
    OrtOptimizeConfig: Step(_lazy("nlpress.export.steps", "step_optimize")),
    QuantizeDynamicInt8Config: Step(_lazy("nlpress.quantize.steps", "step_quantize"), _int8_check),
    QuantizeStaticInt8Config: Step(
        _lazy("nlpress.quantize.steps", "step_quantize_static"), _int8_check
    ),
    CastConfig: Step(_lazy("nlpress.quantize.steps", "step_cast")),
    QuantizeWeightOnlyConfig: Step(
        _lazy("nlpress.calib.pipeline_steps", "step_weight_only"),
        _lazy("nlpress.calib.pipeline_steps", "check_calibrated"),
    ),
    SmoothQuantConfig: Step(
        _lazy("nlpress.calib.pipeline_steps", "step_smooth"),
        _lazy("nlpress.calib.pipeline_steps", "check_calibrated"),
    ),
    PruneMagnitudeConfig: _prune,
    PruneNMConfig: _prune,
    PruneStructuredConfig: _prune,
    PruneGradualConfig: Step(
        _lazy("nlpress.prune.recover", "step_gradual"),
        _lazy("nlpress.prune.recover", "check_gradual"),
    ),
    RecoverConfig: Step(
        _lazy("nlpress.prune.recover", "step_recover"),
        _lazy("nlpress.prune.recover", "check_training"),
    ),
    QatConfig: Step(
        _lazy("nlpress.quantize.qat", "step_qat"), _lazy("nlpress.prune.recover", "check_training")
    ),
    ExportOpenVinoConfig: Step(_lazy("nlpress.export.openvino", "step_export_openvino")),
    QuantizeOpenVinoInt8Config: Step(_lazy("nlpress.quantize.openvino", "step_quantize_openvino")),
    SelectBackendConfig: Step(_lazy("nlpress.bench.select", "step_select_backend")),
    PruneWandaConfig: _oneshot,
    PruneSparseGPTConfig: _oneshot,
    DistillStudentConfig: Step(
        _lazy("nlpress.train.student_step", "step_student"),
        _lazy("nlpress.train.student_step", "check_student"),
    ),
}


def check_recipe(rcp: Recipe, ctx: CheckContext) -> None:
    """Every step's cheap check, in order (step numbers as the user wrote them)."""
    for i, cfg in enumerate(rcp.steps, 1):
        STEPS[type(cfg)].check(cfg, ctx, i)


def apply_step(st: State, cfg: Any) -> dict:
    return STEPS[type(cfg)].apply(st, cfg)


def step_name(cfg: Any) -> str:
    return STEP_NAMES[type(cfg)]
