"""Recipes: ordered compression steps, each one typed and strictly validated config.

A recipe is YAML (or a built-in name) like::

    version: 1
    name: int8
    steps:
      - export-onnx: {opset: 17}
      - quantize-dynamic-int8: {per_channel: true}
      - ort-optimize: {mode: session}

Every step name maps to one pydantic config class (``STEP_CONFIGS`` in :mod:`nlpress.step_configs`,
the only dispatch table; re-exported here).
Unknown steps, unknown keys (``extra="forbid"``) and out-of-range values are errors that name
the step and the key, raised before any model is loaded, so a typo never costs a long run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    ValidationError,
)

from nlpress.errors import NlpressError
from nlpress.guards import load_yaml, one_line, short
from nlpress.step_configs import (
    BLOCK_LINEARS,
    PRUNE_STEPS,
    STEP_CONFIGS,
    STEP_NAMES,
    CastConfig,
    DistillStudentConfig,
    ExportOnnxConfig,
    ExportOpenVinoConfig,
    OrtOptimizeConfig,
    PruneGradualConfig,
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneOneShotConfig,
    PruneSparseGPTConfig,
    PruneStructuredConfig,
    PruneWandaConfig,
    QatConfig,
    QuantizeDynamicInt8Config,
    QuantizeOpenVinoInt8Config,
    QuantizeStaticInt8Config,
    QuantizeWeightOnlyConfig,
    RecoverConfig,
    SelectBackendConfig,
    SmoothQuantConfig,
    StepConfig,
)

__all__ = [
    "StepConfig",
    "ExportOnnxConfig",
    "OrtOptimizeConfig",
    "QuantizeDynamicInt8Config",
    "QuantizeStaticInt8Config",
    "CastConfig",
    "QuantizeWeightOnlyConfig",
    "SmoothQuantConfig",
    "PruneMagnitudeConfig",
    "PruneNMConfig",
    "PruneStructuredConfig",
    "PruneGradualConfig",
    "RecoverConfig",
    "QatConfig",
    "PruneOneShotConfig",
    "PruneWandaConfig",
    "PruneSparseGPTConfig",
    "DistillStudentConfig",
    "ExportOpenVinoConfig",
    "QuantizeOpenVinoInt8Config",
    "SelectBackendConfig",
    "BLOCK_LINEARS",
    "STEP_CONFIGS",
    "PRUNE_STEPS",
    "STEP_NAMES",
    "Recipe",
    "load_recipe",
    "recipe_from_dict",
]

RECIPE_VERSION = 1


class Recipe(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)
    version: int = RECIPE_VERSION
    name: str = "custom"
    steps: tuple[StepConfig, ...]

    def to_dict(self) -> dict[str, Any]:
        steps = [{STEP_NAMES[type(s)]: s.model_dump()} for s in self.steps]
        return {"version": self.version, "name": self.name, "steps": steps}

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


BUILTIN: dict[str, dict[str, Any]] = {
    "int8": {
        "steps": [{"export-onnx": {}}, {"quantize-dynamic-int8": {}}, {"ort-optimize": {}}],
    },
    "int8-static": {
        "steps": [{"export-onnx": {}}, {"quantize-static-int8": {}}, {"ort-optimize": {}}],
    },
    "onnx": {"steps": [{"export-onnx": {}}, {"ort-optimize": {}}]},
    "int8-fused-attention": {
        "steps": [
            {"export-onnx": {}},
            {"ort-optimize": {"mode": "transformers"}},
            {"quantize-dynamic-int8": {}},
        ],
    },
    # quantization-aware training (distillation from the fp32 model), then plain int8
    "int8-qat": {
        "steps": [
            {"qat": {}},
            {"export-onnx": {}},
            {"quantize-dynamic-int8": {}},
            {"ort-optimize": {}},
        ],
    },
    "int8-torch": {"steps": [{"quantize-dynamic-int8": {"backend": "torch"}}]},
    # OpenVINO IR on OpenVINO's CPU plugin (nlpress.runtime.openvino): fp32, and NNCF's int8
    "openvino": {"steps": [{"export-openvino": {}}]},
    "int8-openvino": {"steps": [{"export-openvino": {}}, {"quantize-openvino-int8": {}}]},
    # ORT and OpenVINO int8 built side by side, the fastest that keeps the fidelity bar kept
    "int8-auto": {"steps": [{"export-onnx": {}}, {"select-backend": {}}]},
    "bf16": {"steps": [{"cast": {"dtype": "bf16"}}]},
    # int8 weight-only: one scale per output channel (int8 needs no groups to stay accurate)
    "int8-weight-only": {
        "steps": [{"quantize-weight-only": {"bits": 8, "group_size": None, "symmetric": True}}]
    },
    "int8-smoothquant": {
        "steps": [
            {"smoothquant": {}},
            {"export-onnx": {}},
            {"quantize-dynamic-int8": {}},
            {"ort-optimize": {}},
        ],
    },
    "int4-rtn": {"steps": [{"quantize-weight-only": {"method": "rtn"}}]},
    "int4-gptq": {"steps": [{"quantize-weight-only": {"method": "gptq"}}]},
    "int4-awq": {"steps": [{"quantize-weight-only": {"method": "awq"}}]},
    "prune-structured": {"steps": [{"prune-structured": {}}]},
    "magnitude-50": {"steps": [{"prune-magnitude": {"sparsity": 0.5}}]},
    "magnitude-2:4": {"steps": [{"prune-nm": {"n": 2, "m": 4}}]},
    # 90% of the block linears and of the word-embedding table (half of a small encoder's bytes:
    # without it the sparse artifact stays above half the dense size), pruned gradually while
    # fine-tuning on --data, so the embeddings train too
    "magnitude-90-gradual": {
        "steps": [
            {
                "prune-gradual": {
                    "sparsity": 0.9,
                    "targets": [*BLOCK_LINEARS, r"re:(.*\.)?(word_embeddings|embed_tokens)"],
                }
            }
        ]
    },
    "wanda-50": {"steps": [{"prune-wanda": {"sparsity": 0.5}}]},
    "sparsegpt-50": {"steps": [{"prune-sparsegpt": {"sparsity": 0.5}}]},
    "wanda-2:4": {"steps": [{"prune-wanda": {"n": 2, "m": 4}}]},
    "sparsegpt-2:4": {"steps": [{"prune-sparsegpt": {"n": 2, "m": 4}}]},
}


def _step_error(i: int, name: str, err: ValidationError) -> NlpressError:
    e = err.errors()[0]
    key = ".".join(str(p) for p in e["loc"]) or "?"
    if e["type"] == "extra_forbidden":
        allowed = ", ".join(STEP_CONFIGS[name].model_fields)
        return NlpressError(
            f"recipe step {i} ({name}): unknown key {key!r}; allowed keys: {allowed}"
        )
    value = e.get("input")
    return NlpressError(
        f"recipe step {i} ({name}): bad value {short(value)} for {key!r}: {one_line(e['msg'], 200)}"
    )


def _step_shape(i: int, raw: Any) -> tuple[str, dict]:
    """(name, params) of one raw step, ``- name`` or ``- name: {key: value}``; else an error."""
    if isinstance(raw, str):
        raw = {raw: {}}
    if not isinstance(raw, dict) or len(raw) != 1:
        raise NlpressError(
            f"recipe step {i} is {short(raw, 40)}; write each step as `- step-name: {{key: value}}`"
        )
    ((name, params),) = raw.items()
    if not isinstance(name, str) or name not in STEP_CONFIGS:
        raise NlpressError(
            f"recipe step {i}: unknown step {short(name)}; known steps: {', '.join(STEP_CONFIGS)}"
        )
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise NlpressError(
            f"recipe step {i} ({name}): parameters must be a mapping, got {short(params)}"
        )
    bad = [k for k in params if not isinstance(k, str)]
    if bad:
        raise NlpressError(
            f"recipe step {i} ({name}): key {short(bad[0])} is not a name; allowed keys: "
            f"{', '.join(STEP_CONFIGS[name].model_fields)}"
        )
    return name, params


def _parse_step(i: int, raw: Any) -> StepConfig:
    name, params = _step_shape(i, raw)
    try:
        return STEP_CONFIGS[name](**params)
    except ValidationError as err:
        raise _step_error(i, name, err) from err


def _check_alone(steps: tuple[StepConfig, ...]) -> None:
    wo = [i for i, s in enumerate(steps, 1) if isinstance(s, QuantizeWeightOnlyConfig)]
    if wo and len(steps) > 1:
        raise NlpressError(
            f"recipe step {wo[0]} (quantize-weight-only) produces a PyTorch weight-only model "
            "and cannot be combined with other steps yet; use it alone"
        )


def _check_smooth(steps: tuple[StepConfig, ...]) -> None:
    for i, s in enumerate(steps, 1):
        if isinstance(s, SmoothQuantConfig) and i != 1:
            raise NlpressError(
                f"recipe step {i} (smoothquant) rescales the PyTorch model and must be the first "
                "step, before export-onnx and quantization; move it up"
            )
        if isinstance(s, (CastConfig, QuantizeWeightOnlyConfig)) and any(
            isinstance(p, SmoothQuantConfig) for p in steps
        ):
            raise NlpressError(
                f"recipe step {i}: smoothquant prepares int8 activations; use it with "
                "quantize-dynamic-int8 or quantize-static-int8"
            )


def _check_prune_order(steps: tuple[StepConfig, ...]) -> None:
    """Pruning changes the PyTorch weights, so it must come before export, quantization, cast."""
    for i, s in enumerate(steps, 1):
        if isinstance(s, PRUNE_STEPS):
            later = [STEP_NAMES[type(p)] for p in steps[: i - 1] if not isinstance(p, PRUNE_STEPS)]
            if later:
                raise NlpressError(
                    f"recipe step {i} ({STEP_NAMES[type(s)]}) must come before {later[0]}; "
                    "prune first, then export or quantize"
                )


def _check_recover(steps: tuple[StepConfig, ...]) -> None:
    """recover fine-tunes what a prune step left: after pruning, before export or quantization."""
    for i, s in enumerate(steps, 1):
        if not isinstance(s, RecoverConfig):
            continue
        before = steps[: i - 1]
        other = [
            STEP_NAMES[type(p)] for p in before if not isinstance(p, (*PRUNE_STEPS, RecoverConfig))
        ]
        if other:
            raise NlpressError(
                f"recipe step {i} (recover) must come before {other[0]}; "
                "recover right after pruning, then export or quantize"
            )
        if not any(isinstance(p, PRUNE_STEPS) for p in before):
            raise NlpressError(
                f"recipe step {i} (recover) needs a prune step before it "
                "(prune-structured, prune-magnitude, prune-nm or prune-gradual)"
            )


def _check_openvino(steps: tuple[StepConfig, ...]) -> None:
    """export-openvino once, from a plain ONNX export if source onnx; only OpenVINO steps after
    it; quantize-openvino-int8 after it; select-backend last, with export-onnx before it for
    its ONNX Runtime candidate."""
    ov_at = [i for i, s in enumerate(steps, 1) if isinstance(s, ExportOpenVinoConfig)]
    if len(ov_at) > 1:
        raise NlpressError(f"recipe step {ov_at[1]}: export-openvino appears twice; keep one")
    for i, s in enumerate(steps, 1):
        name, before = STEP_NAMES[type(s)], steps[: i - 1]
        if isinstance(s, ExportOpenVinoConfig) and s.source == "onnx":
            if not any(isinstance(p, ExportOnnxConfig) for p in before):
                raise NlpressError(
                    f"recipe step {i} ({name}) with source onnx needs export-onnx before it; "
                    "add it or use source: pytorch"
                )
            late = [
                STEP_NAMES[type(p)]
                for p in before
                if not isinstance(
                    p, (ExportOnnxConfig, *PRUNE_STEPS, RecoverConfig, SmoothQuantConfig)
                )
            ]
            if late:
                raise NlpressError(
                    f"recipe step {i} ({name}) with source onnx reads the plain ONNX export; "
                    f"move it before {late[0]} or use source: pytorch"
                )
        if ov_at and i > ov_at[0] and not isinstance(s, QuantizeOpenVinoInt8Config):
            raise NlpressError(
                f"recipe step {i} ({name}) cannot follow export-openvino; only "
                "quantize-openvino-int8 can (move it before export-openvino)"
            )
        if isinstance(s, QuantizeOpenVinoInt8Config):
            if not any(isinstance(p, ExportOpenVinoConfig) for p in before):
                raise NlpressError(f"recipe step {i} ({name}) needs export-openvino before it")
            if any(isinstance(p, QuantizeOpenVinoInt8Config) for p in before):
                raise NlpressError(f"recipe step {i} ({name}) appears twice; keep one")
        if isinstance(s, SelectBackendConfig):
            if i != len(steps):
                raise NlpressError(
                    f"recipe step {i} ({name}) builds the final model and must be the last step"
                )
            if "onnxruntime-int8" in s.candidates and not any(
                isinstance(p, ExportOnnxConfig) for p in before
            ):
                raise NlpressError(
                    f"recipe step {i} ({name}) needs export-onnx before it for its "
                    "onnxruntime-int8 candidate; add it or drop that candidate"
                )
            other = [
                STEP_NAMES[type(p)]
                for p in before
                if not isinstance(p, (ExportOnnxConfig, *PRUNE_STEPS, RecoverConfig))
            ]
            if other:
                raise NlpressError(
                    f"recipe step {i} ({name}) quantizes the model itself; remove {other[0]}"
                )


def _check_qat(steps: tuple[StepConfig, ...]) -> None:
    """qat trains the PyTorch model for ORT's dynamic int8: before export, and int8 after it."""
    for i, s in enumerate(steps, 1):
        if not isinstance(s, QatConfig):
            continue
        before = [STEP_NAMES[type(p)] for p in steps[: i - 1] if not isinstance(p, PRUNE_STEPS)]
        before = [n for n in before if n not in ("recover", "distill-student")]
        if before:
            raise NlpressError(
                f"recipe step {i} (qat) must come before {before[0]}; train with int8 "
                "rounding first (after any pruning), then export and quantize"
            )
        if not any(
            isinstance(p, QuantizeDynamicInt8Config) and p.backend == "onnxruntime"
            for p in steps[i:]
        ):
            raise NlpressError(
                f"recipe step {i} (qat) trains for ONNX Runtime's dynamic int8, so it needs "
                "export-onnx and quantize-dynamic-int8 after it (see the built-in int8-qat)"
            )


def _check_order(steps: tuple[StepConfig, ...]) -> None:
    _check_qat(steps)
    _check_openvino(steps)
    _check_recover(steps)
    _check_prune_order(steps)
    _check_smooth(steps)
    _check_alone(steps)
    casts = [i for i, s in enumerate(steps, 1) if isinstance(s, CastConfig)]
    if casts and len(steps) > 1:
        raise NlpressError(
            f"recipe step {casts[0]} (cast) produces a PyTorch {steps[casts[0] - 1].dtype} model "
            "and cannot be combined with other steps yet; use it alone"
        )
    exported = quantized = False
    for i, s in enumerate(steps, 1):
        name = STEP_NAMES[type(s)]
        if isinstance(s, ExportOnnxConfig):
            if exported:
                raise NlpressError(f"recipe step {i}: export-onnx appears twice; keep one")
            exported = True
        elif isinstance(s, OrtOptimizeConfig):
            if not exported:
                raise NlpressError(f"recipe step {i} ({name}) needs an export-onnx step before it")
            if s.mode == "transformers" and quantized:
                raise NlpressError(
                    f"recipe step {i} ({name}) with mode transformers must come before quantization; "
                    "move it up or use mode: session"
                )
        elif isinstance(s, QuantizeStaticInt8Config):
            if not exported:
                raise NlpressError(f"recipe step {i} ({name}) needs an export-onnx step before it")
            if quantized:
                raise NlpressError(
                    f"recipe step {i} ({name}): the model is already quantized; keep one quantize step"
                )
            quantized = True
        elif isinstance(s, QuantizeDynamicInt8Config):
            if any(isinstance(p, QuantizeStaticInt8Config) for p in steps[: i - 1]):
                raise NlpressError(
                    f"recipe step {i} ({name}): the model is already quantized; keep one quantize step"
                )
            quantized = True
            if s.backend == "onnxruntime" and not exported:
                raise NlpressError(
                    f"recipe step {i} ({name}) with backend onnxruntime needs export-onnx before it; "
                    "add it or set backend: torch"
                )
            if s.backend == "torch" and s.min_fidelity is not None:
                raise NlpressError(
                    f"recipe step {i} ({name}): min_fidelity needs backend onnxruntime "
                    "(it measures ONNX models layer by layer); use the int8 recipe"
                )
            if s.backend == "torch" and exported:
                raise NlpressError(
                    f"recipe step {i} ({name}) with backend torch must come before export-onnx; "
                    "use backend: onnxruntime after export"
                )


def recipe_from_dict(data: Any, name: str = "custom") -> Recipe:
    if not isinstance(data, dict):
        raise NlpressError("a recipe must be a mapping with a `steps:` list")
    unknown = [k for k in data if k not in ("version", "name", "steps")]
    if unknown:
        raise NlpressError(
            f"recipe: unknown key {short(unknown[0])}; allowed keys: version, name, steps"
        )
    version = data.get("version", RECIPE_VERSION)
    if isinstance(version, bool) or version != RECIPE_VERSION:
        raise NlpressError(
            f"recipe: version {short(version)} is not supported; this nlpress reads version {RECIPE_VERSION}"
        )
    rname = data.get("name", name)
    if not isinstance(rname, str | int | float) or isinstance(rname, bool) or len(str(rname)) > 200:
        raise NlpressError(
            f"recipe: name {short(rname)} must be a short text (up to 200 characters)"
        )
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise NlpressError("recipe: `steps` must be a non-empty list")
    steps = tuple(_parse_step(i, raw) for i, raw in enumerate(raw_steps, 1))
    _check_order(steps)
    return Recipe(version=version, name=str(rname), steps=steps)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``step.key=value`` (value parsed as YAML) set on a copy of a recipe mapping.

    ``step`` is a step name, or its 1-based position when a step appears twice.
    """
    import copy

    data = copy.deepcopy(data)
    steps = data.get("steps") or []
    if not isinstance(steps, list):
        raise NlpressError("recipe: `steps` must be a non-empty list")
    for item in overrides:
        target, sep, raw = item.partition("=")
        step, dot, key = target.partition(".")
        if not sep or not dot or not step or not key:
            raise NlpressError(
                f"--set {item!r}: write it as step.key=value, e.g. quantize-dynamic-int8.per_channel=false"
            )
        names = [_step_shape(i, st)[0] for i, st in enumerate(steps, 1)]
        if step.isdigit() and 1 <= int(step) <= len(steps):
            idx = int(step) - 1
        elif names.count(step) == 1:
            idx = names.index(step)
        elif step in names:
            raise NlpressError(
                f"--set {item!r}: step {step!r} appears more than once; use its number (1-{len(steps)})"
            )
        else:
            raise NlpressError(
                f"--set {item!r}: the recipe has no step {step!r}; its steps are {', '.join(names)}"
            )
        value = load_yaml(raw, f"--set {short(item)}: the value")
        name, params = _step_shape(idx + 1, steps[idx])
        steps[idx] = {name: {**params, key: value}}
    data["steps"] = steps
    return data


def load_recipe(
    spec: str | os.PathLike | Recipe, overrides: list[str] | tuple[str, ...] = ()
) -> Recipe:
    """A built-in name, a YAML file path, or an already-built Recipe; ``overrides`` as in --set."""
    if isinstance(spec, Recipe):
        if overrides:
            return recipe_from_dict(
                apply_overrides(spec.to_dict(), list(overrides)), name=spec.name
            )
        return spec
    spec = str(spec)
    if spec in BUILTIN:
        return recipe_from_dict(apply_overrides(BUILTIN[spec], list(overrides)), name=spec)
    path = Path(spec)
    if not path.is_file():
        raise NlpressError(
            f"recipe {spec!r} is neither a built-in ({', '.join(BUILTIN)}) nor an existing YAML file"
        )
    try:
        if path.stat().st_size > 1024**2:
            raise NlpressError(f"recipe {spec!r} is larger than 1 MB; a recipe is a short file")
        data = load_yaml(path.read_text(encoding="utf-8"), f"recipe {spec!r}")
    except UnicodeDecodeError as e:
        raise NlpressError(f"recipe {spec!r} is not UTF-8 text ({e.reason}); re-save it") from e
    if overrides and isinstance(data, dict):
        data = apply_overrides(data, list(overrides))
    return recipe_from_dict(data, name=path.stem)
