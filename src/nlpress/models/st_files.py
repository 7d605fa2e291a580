"""The files that let the tools users already run open an artifact with no glue code.

An artifact in the plain Hugging Face layout (``save_pretrained`` weights: bf16 casts, pruned
models, distilled students) already loads in ``transformers``. For sentence-embedding models,
``sentence_transformers.SentenceTransformer(dir)`` also needs to know the pooling: it reads
``modules.json`` (the module chain), ``sentence_bert_config.json`` (maximum length) and
``1_Pooling/config.json`` (and ``2_Normalize/`` when embeddings are L2-normalised). They are
copied from the source model when it has them, or written from what nlpress itself pools with
(``nlpress.json``), so both loaders compute the same embedding.

Not written for nlpress's own weight formats (int8 PyTorch, bitmask-sparse, packed int4) or for a
head-pruned BERT, which plain transformers cannot build (it derives the head size from
``hidden_size / num_attention_heads``): those load with ``nlpress.load`` only, and saying
otherwise in the folder would be a lie a user finds late.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

ST_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json")
ST_DIR = "1_Pooling"
HEAD_PRUNED_KEY = "nlpress_attention_heads"  # nlpress.prune.structured's marker in config.json


def plain_hf_weights(folder: Path, meta: dict) -> bool:
    """True when ``from_pretrained`` of transformers reads the folder's weights as they are."""
    if meta.get("backend") != "pytorch" or meta.get("weights_format") != "hf":
        return False
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    return HEAD_PRUNED_KEY not in config


def write_sentence_transformers_files(folder: Path, source: Path | None, meta: dict) -> bool:
    """Copy or write the sentence-transformers files; returns whether the folder now has them."""
    folder = Path(folder)
    if meta.get("task") != "sentence-embedding" or not plain_hf_weights(folder, meta):
        return False
    if (folder / "modules.json").is_file():
        return True  # already carried over (nlpress distill copies them from the teacher)
    if (
        source is not None
        and (Path(source) / "modules.json").is_file()
        and _same_pooling(Path(source), meta)
    ):
        _copy(Path(source), folder)
    else:
        _write(folder, meta)
    return True


def _same_pooling(source: Path, meta: dict) -> bool:
    from nlpress.models.loader import sentence_transformers_pooling

    return sentence_transformers_pooling(source) == (meta.get("pooling"), meta.get("normalize"))


def _copy(source: Path, folder: Path) -> None:
    for name in ST_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, folder / name)
    for sub in source.iterdir():  # 1_Pooling/, 2_Normalize/: small config folders
        if sub.is_dir() and sub.name[:1].isdigit() and "_" in sub.name:
            shutil.copytree(sub, folder / sub.name, dirs_exist_ok=True)


def _write(folder: Path, meta: dict) -> None:
    config = json.loads((folder / "config.json").read_text())
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": ST_DIR, "type": "sentence_transformers.models.Pooling"},
    ]
    if meta.get("normalize"):
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    cls = meta.get("pooling") == "cls"
    pooling = {
        "word_embedding_dimension": config["hidden_size"],
        "pooling_mode_cls_token": cls,
        "pooling_mode_mean_tokens": not cls,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    }
    (folder / ST_DIR).mkdir(exist_ok=True)
    (folder / ST_DIR / "config.json").write_text(json.dumps(pooling, indent=2) + "\n")
    (folder / "modules.json").write_text(json.dumps(modules, indent=2) + "\n")
    st_config = {"max_seq_length": int(meta.get("max_length") or 512), "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2) + "\n")
    log.debug("wrote sentence-transformers files (%s pooling) in %s", meta.get("pooling"), folder)
