"""The search space of ``nlpress tune``: trial parameters -> an ordinary recipe.

Every candidate is a plain :class:`~nlpress.recipe.Recipe`, so a trial is reproduced by
``nlpress compress --recipe tuned/trials/0007/recipe.yaml``. Encoders (classification, sentence
embeddings) combine, in the order the recipe rules require: an optional layer-dropped student
distilled from the model (only with training data), optional structured pruning (heads, FFN
neurons, layers) with optional recovery training, and one backend with its precision: ONNX
Runtime with int8 dynamic (per channel or per tensor, embeddings quantized or not), int8 static
(minmax, percentile, entropy), mixed precision at a fidelity target or plain fp32; OpenVINO
(where it is installed) with fp32, NNCF's static int8 or its int8 weight compression; or bf16
alone in PyTorch (where the CPU has it). Which backend is faster depends on the CPU (#13: on an
AVX2-only Zen 3, ORT's exact int8 ran MiniLM 1.6x faster than OpenVINO's static int8; on VNNI
CPUs the ranking can turn), so it is a dimension of the search rather than a fixed choice.
Causal LMs: weight-only RTN/GPTQ/AWQ at 4 or 8 bits and several group sizes, Wanda/SparseGPT
sparsity, or int8 dynamic.

Why parameters and not recipe strings: Optuna's samplers (TPE, NSGA-II) learn per parameter,
so "int8 static" and "student of 3 layers" are learnt separately and combined. Parameter names
are fixed per choice set (``quant_alone`` with bf16, ``quant`` without) because Optuna refuses
one name with two sets of choices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nlpress.errors import NlpressError
from nlpress.recipe import Recipe, recipe_from_dict

FAMILIES = (
    "int8",
    "static",
    "mixed",
    "bf16",
    "openvino",
    "prune",
    "distill",
    "weight-only",
    "sparse",
)
ENCODER_DEFAULT = ("int8", "static", "mixed", "bf16", "openvino", "prune", "distill")
LM_DEFAULT = ("int8", "weight-only", "sparse")

PRUNE_KINDS = {  # fractions of heads, FFN neurons and layers removed
    "heads-25": (0.25, 0.0, 0.0),
    "ffn-25": (0.0, 0.25, 0.0),
    "ffn-50": (0.0, 0.5, 0.0),
    "heads-25-ffn-25": (0.25, 0.25, 0.0),
    "heads-33-ffn-50": (1 / 3, 0.5, 0.0),
    "layers-25": (0.0, 0.0, 0.25),
}
FIDELITY_TARGETS = (0.98, 0.99, 0.995)  # mixed precision: fidelity kept to fp32 (cosine/top-1)
# OpenVINO precisions -> the quantize-openvino-int8 mode (None: the fp32 IR as exported)
OPENVINO_PRECISIONS = {"f32": None, "int8": "static", "int8-weights": "weights"}


@dataclass(frozen=True)
class Space:
    """What this model, task and machine can search."""

    task: str
    families: tuple[str, ...]
    n_layers: int
    has_train: bool
    bf16: bool
    train_steps: int | None = None  # max optimizer steps of a training step (None: one epoch)
    train: str | None = None  # the training file, written into training steps (reproducible)
    student_steps: int | None = None  # a student's distillation steps (None: train_steps)

    def student_sizes(self) -> list[int]:
        n = self.n_layers
        return sorted({k for k in (n // 3, n // 2, (2 * n) // 3) if 1 <= k < n})


def make_space(
    task: str,
    families: tuple[str, ...] | None,
    n_layers: int,
    has_train: bool,
    bf16: bool,
    train_steps: int | None = None,
    train: str | None = None,
    openvino: bool = False,
    student_steps: int | None = None,
) -> Space:
    """The space, or a clear error for a family this task or these inputs cannot use."""
    lm = task == "causal-lm"
    fams = tuple(families) if families else (LM_DEFAULT if lm else ENCODER_DEFAULT)
    unknown = [f for f in fams if f not in FAMILIES]
    if unknown:
        raise NlpressError(
            f"--space {unknown[0]!r} is not a family; choose from {', '.join(FAMILIES)}"
        )
    allowed = LM_DEFAULT if lm else ENCODER_DEFAULT
    bad = [f for f in fams if f not in allowed]
    if bad:
        raise NlpressError(
            f"--space {bad[0]}: not available for {task}; it can search {', '.join(allowed)}"
        )
    if families and "distill" in fams and not has_train:
        what = "unlabeled sentences" if task == "sentence-embedding" else "labelled rows"
        raise NlpressError(
            f"--space distill trains students and needs training data: pass --train FILE "
            f"({what}, not the --data rows that measure the candidates)"
        )
    if not families:  # defaults quietly leave out what cannot run here
        fams = tuple(
            f
            for f in fams
            if not (f == "distill" and not has_train)
            and not (f == "bf16" and not bf16)
            and not (f == "openvino" and not openvino)
        )
    elif "bf16" in fams and not bf16:
        raise NlpressError(
            "--space bf16: this CPU has neither AVX-512 BF16 nor AMX, so bf16 runs slower than "
            "fp32 here; leave it out"
        )
    elif "openvino" in fams and not openvino:
        from nlpress.runtime.openvino import INSTALL_HINT

        raise NlpressError(
            f"--space openvino: OpenVINO is not installed; {INSTALL_HINT} or leave it out"
        )
    if not fams:
        raise NlpressError("--space: nothing left to search; name at least one family")
    return Space(task, fams, n_layers, has_train, bf16, train_steps, train, student_steps)


def _quant_choices(space: Space, alone: bool) -> list[str]:
    out = ["onnx"]
    for f in ("int8", "static", "mixed"):
        if f in space.families:
            out.append(f)
    if alone and "bf16" in space.families:
        out.append("bf16")
    return out


def suggest(trial: Any, space: Space) -> dict:
    """Trial parameters, drawn through ``trial.suggest_*`` (Optuna records them)."""
    if space.task == "causal-lm":
        return _suggest_lm(trial, space)
    p: dict[str, Any] = {}
    sizes = space.student_sizes() if "distill" in space.families and space.has_train else []
    if sizes:
        p["student"] = trial.suggest_categorical("student", [0, *sizes])
    if "prune" in space.families:
        p["prune"] = trial.suggest_categorical("prune", ["none", *PRUNE_KINDS])
        if p["prune"] != "none" and space.has_train:
            p["recover"] = trial.suggest_categorical("recover", [False, True])
    if "openvino" in space.families:
        p["backend"] = trial.suggest_categorical("backend", ["onnxruntime", "openvino"])
        if p["backend"] == "openvino":
            p["ov_precision"] = trial.suggest_categorical("ov_precision", list(OPENVINO_PRECISIONS))
            return p
    alone = not p.get("student") and p.get("prune", "none") == "none"
    name = "quant_alone" if alone else "quant"
    p[name] = trial.suggest_categorical(name, _quant_choices(space, alone))
    q = p[name]
    if q == "int8":
        p["per_channel"] = trial.suggest_categorical("per_channel", [True, False])
        p["quantize_embeddings"] = trial.suggest_categorical("quantize_embeddings", [True, False])
    elif q == "static":
        p["static_method"] = trial.suggest_categorical(
            "static_method", ["minmax", "percentile", "entropy"]
        )
    elif q == "mixed":
        p["min_fidelity"] = trial.suggest_categorical("min_fidelity", list(FIDELITY_TARGETS))
    return p


def _suggest_lm(trial: Any, space: Space) -> dict:
    fams = [f for f in ("weight-only", "sparse", "int8") if f in space.families]
    p: dict[str, Any] = {"lm": trial.suggest_categorical("lm", fams)}
    if p["lm"] == "weight-only":
        p["woq_method"] = trial.suggest_categorical("woq_method", ["rtn", "gptq", "awq"])
        p["bits"] = trial.suggest_categorical("bits", [4, 8])
        p["group_size"] = trial.suggest_categorical("group_size", [32, 64, 128])
    elif p["lm"] == "sparse":
        p["sparse_method"] = trial.suggest_categorical("sparse_method", ["wanda", "sparsegpt"])
        p["sparsity"] = trial.suggest_categorical("sparsity", [0.3, 0.4, 0.5, "2:4"])
    return p


def seeds(space: Space) -> list[dict]:
    """Cheap, sensible candidates tried first, so a feasible model exists within minutes."""
    if space.task == "causal-lm":
        out = []
        if "weight-only" in space.families:
            out += [
                {"lm": "weight-only", "woq_method": "rtn", "bits": 8, "group_size": 128},
                {"lm": "weight-only", "woq_method": "rtn", "bits": 4, "group_size": 32},
            ]
        if "int8" in space.families:
            out.append({"lm": "int8"})
        return out
    out = []
    if "int8" in space.families:
        out.append({"quant_alone": "int8", "per_channel": True, "quantize_embeddings": True})
    if "static" in space.families:
        out.append({"quant_alone": "static", "static_method": "minmax"})
    if "int8" in space.families:
        out.append({"quant_alone": "int8", "per_channel": True, "quantize_embeddings": False})
    if "openvino" in space.families:  # OpenVINO's documented int8, as a user would run it
        out.append({"backend": "openvino", "ov_precision": "int8"})
    if "prune" in space.families and "int8" in space.families:
        pr: dict[str, Any] = {"prune": "ffn-25"}
        if space.has_train:
            pr["recover"] = True
        out.append({**pr, "quant": "int8", "per_channel": True, "quantize_embeddings": True})
    sizes = space.student_sizes() if "distill" in space.families and space.has_train else []
    if sizes and "int8" in space.families:
        st = {"student": sizes[len(sizes) // 2]}
        if "prune" in space.families:
            st["prune"] = "none"
        out.append({**st, "quant": "int8", "per_channel": True, "quantize_embeddings": True})
    # complete each seed with the space's other parameters, so samplers see full trials
    return [_complete(s, space) for s in out]


def _complete(p: dict, space: Space) -> dict:
    p = dict(p)
    if space.task != "causal-lm":
        if "distill" in space.families and space.has_train and space.student_sizes():
            p.setdefault("student", 0)
        if "prune" in space.families:
            p.setdefault("prune", "none")
        if "openvino" in space.families:
            p.setdefault("backend", "onnxruntime")
    return p


def recipe_for(p: dict, space: Space, name: str) -> Recipe:
    """The recipe of trial parameters ``p``."""
    steps: list[dict] = []
    train: dict[str, Any] = {}
    if space.train:
        train["data"] = space.train
    if space.train_steps:
        train["max_steps"] = space.train_steps
    if space.task == "causal-lm":
        lm = p["lm"]
        if lm == "weight-only":
            steps.append(
                {
                    "quantize-weight-only": {
                        "method": p["woq_method"],
                        "bits": p["bits"],
                        "group_size": p["group_size"],
                    }
                }
            )
        elif lm == "sparse":
            s = p["sparsity"]
            cfg = {"n": 2, "m": 4} if s == "2:4" else {"sparsity": s}
            steps.append({f"prune-{p['sparse_method']}": cfg})
        else:
            steps += [{"export-onnx": {}}, {"quantize-dynamic-int8": {}}, {"ort-optimize": {}}]
        return recipe_from_dict({"name": name, "steps": steps}, name)
    if p.get("student"):
        distill = dict(train)
        if space.student_steps:  # a student learns the whole task: its own training budget
            distill["max_steps"] = space.student_steps
        steps.append({"distill-student": {"layers": p["student"], **distill}})
    if p.get("prune", "none") != "none":
        h, f, layer = PRUNE_KINDS[p["prune"]]
        prune = {"head_fraction": h, "ffn_fraction": f, "layer_fraction": layer}
        if layer:  # whole blocks are ranked by their effect on calibration data, not by weights
            prune["score"] = "activation"
        steps.append({"prune-structured": prune})
        if p.get("recover"):
            steps.append({"recover": {"method": "distill", **train}})
    if p.get("backend") == "openvino":
        steps.append({"export-openvino": {}})
        mode = OPENVINO_PRECISIONS[p["ov_precision"]]
        if mode:
            steps.append({"quantize-openvino-int8": {"mode": mode}})
        return recipe_from_dict({"name": name, "steps": steps}, name)
    q = p.get("quant_alone", p.get("quant"))
    if q == "bf16":
        steps.append({"cast": {"dtype": "bf16"}})
    else:
        steps.append({"export-onnx": {}})
        if q == "int8":
            steps.append(
                {
                    "quantize-dynamic-int8": {
                        "per_channel": p["per_channel"],
                        "quantize_embeddings": p["quantize_embeddings"],
                    }
                }
            )
        elif q == "static":
            steps.append({"quantize-static-int8": {"method": p["static_method"]}})
        elif q == "mixed":
            steps.append({"quantize-dynamic-int8": {"min_fidelity": p["min_fidelity"]}})
        steps.append({"ort-optimize": {}})
    return recipe_from_dict({"name": name, "steps": steps}, name)
