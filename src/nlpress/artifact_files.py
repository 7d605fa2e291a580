"""What an artifact holds and may read: ``nlpress.json``, checked field by field, and the list
of the files nlpress wrote, with their sizes and sha256.

:func:`seal` records the list when an artifact is complete (:mod:`nlpress.artifact` calls it
just before the final rename). It is what lets ``--force`` replace only what nlpress wrote
(:func:`foreign_files`), and lets a load find a truncated, deleted or swapped file
(:func:`verify_files`: sizes always, sha256 on ``eval``/``bench`` and ``load(verify=True)``).
Every path an artifact names must resolve inside it (:func:`inside`), symlinks followed, so a
hostile ``model_file: ../../etc/passwd`` or an absolute path into another artifact is refused.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from nlpress.errors import NlpressError
from nlpress.guards import short

META = "nlpress.json"
FORMAT_VERSION = 1


def is_artifact(path: Path) -> bool:
    """True when ``path`` holds an ``nlpress.json``: it is meant to be read as an artifact."""
    return (Path(path) / META).is_file()


def read_meta(path: Path) -> dict:
    from nlpress.guards import read_json

    meta = read_json(Path(path) / META, "artifact file", "the artifact is damaged, rebuild it")
    if meta.get("format_version") != FORMAT_VERSION:
        raise NlpressError(
            f"{path} was written by an incompatible nlpress "
            f"(format {short(meta.get('format_version'))}); rebuild it with this version"
        )
    return meta


_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_BACKENDS = ("onnxruntime", "openvino", "pytorch")
_WEIGHTS = (None, "hf", "weight-only", "bitmask", "dynamic-int8")


def check_meta(path: Path, meta: dict) -> dict:
    """The fields of nlpress.json that a load uses, each checked; returns them normalised."""
    from nlpress.models.loader import TASKS

    def bad(key: str, want: str):
        return NlpressError(
            f"{path}/{META}: {key} is {short(meta.get(key))}, not {want}; the artifact is "
            "damaged, rebuild it"
        )

    if meta.get("task") not in TASKS:
        raise bad("task", f"one of {', '.join(TASKS)}")
    if meta.get("backend") not in _BACKENDS:
        raise bad("backend", f"one of {', '.join(_BACKENDS)}")
    if meta.get("weights_format") not in _WEIGHTS:
        raise bad("weights_format", f"one of {', '.join(w for w in _WEIGHTS if w)}")
    names = meta.get("input_names")
    if not isinstance(names, list) or "input_ids" not in names or not set(names) <= set(_INPUTS):
        raise bad("input_names", f"a list of {', '.join(_INPUTS)} with input_ids")
    max_len = meta.get("max_length", 512)
    if isinstance(max_len, bool) or not isinstance(max_len, int) or not 2 <= max_len <= 1 << 20:
        raise bad("max_length", "an integer from 2 to 1048576")
    raw = meta.get("id2label") or {}
    labels = "a mapping of class ids to label names"
    if not isinstance(raw, dict) or len(raw) > 1 << 16:
        raise bad("id2label", labels)
    try:
        id2label = {int(k): v for k, v in raw.items()}
    except (ValueError, TypeError):
        raise bad("id2label", labels) from None
    if not all(isinstance(v, str) for v in id2label.values()):
        raise bad("id2label", labels)
    if meta.get("pooling", "mean") not in ("mean", "cls"):
        raise bad("pooling", "mean or cls")
    if not isinstance(meta.get("normalize", False), bool):
        raise bad("normalize", "true or false")
    if meta.get("device", "cpu") not in ("cpu", "cuda"):
        raise bad("device", "cpu or cuda")
    precision = meta.get("precision", "f32")
    if not isinstance(precision, str) or len(precision) > 16:
        raise bad("precision", "an OpenVINO inference precision such as f32 or bf16")
    name = meta.get("name", "artifact")
    return {
        "device": meta.get("device", "cpu"),
        "precision": precision,
        "task": meta["task"],
        "backend": meta["backend"],
        "weights_format": meta.get("weights_format"),
        "model_file": inside(path, meta.get("model_file"), "its model file"),
        "input_names": list(names),
        "name": name if isinstance(name, str) else short(name),
        "max_length": max_len,
        "id2label": id2label,
        "pooling": meta.get("pooling", "mean"),
        "normalize": meta.get("normalize", False),
    }


# -- the file list -------------------------------------------------------------------------------
def _sha256(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _walk(folder: Path) -> tuple[list[str], list[str]]:
    """(files and symlinks, real folders) under ``folder``, relative POSIX paths; links not followed."""
    files, dirs = [], []
    for root, subdirs, names in os.walk(folder):
        rel = Path(root).relative_to(folder)
        for d in list(subdirs):
            if (Path(root) / d).is_symlink():  # os.walk lists a link to a folder as a folder
                subdirs.remove(d)
                names.append(d)
            else:
                dirs.append((rel / d).as_posix())
        files += [(rel / n).as_posix() for n in names]
    return sorted(files), sorted(dirs)


def _files(folder: Path) -> list[str]:
    """Every file under ``folder`` but nlpress.json, as sorted relative POSIX paths."""
    return [f for f in _walk(folder)[0] if f != META]


def seal(folder: Path) -> None:
    """Record each file's size and sha256 in ``folder/nlpress.json`` (the artifact is complete)."""
    folder = Path(folder)
    if not (folder / META).is_file():
        return
    meta = json.loads((folder / META).read_text())
    if not isinstance(meta, dict):
        return
    meta["files"] = {
        name: {"size": (folder / name).stat().st_size, "sha256": _sha256(folder / name)}
        for name in _files(folder)
    }
    write_json(folder / META, meta)


def inside(folder: Path, name: object, what: str = "a file", source: str = META) -> Path:
    """``folder/name``, which must resolve (symlinks followed) inside ``folder``.

    ``source`` is the file that named it, for the message."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise NlpressError(
            f"{folder}/{source} names {what} {short(name)}, not a file name; the folder is "
            "damaged: rebuild it"
        )
    root = Path(folder).resolve()
    target = (root / name).resolve()
    if Path(name).is_absolute() or not target.is_relative_to(root):
        raise NlpressError(
            f"{folder}/{source} names {what} {short(name)} outside its folder; a model may only "
            "read its own files: rebuild it"
        )
    return target


def verify_files(folder: Path, meta: dict, *, hashes: bool = False) -> None:
    """Sizes (and with ``hashes`` the sha256) of the files nlpress.json lists; an error if off.

    An artifact written before nlpress recorded its files has no list; it is read as it is.
    """
    files = meta.get("files")
    if files is None:
        return
    if not isinstance(files, dict):
        raise NlpressError(f"{folder}/{META}: 'files' is not a mapping; the artifact is damaged")
    for name, rec in files.items():
        path = inside(folder, name)
        if not isinstance(rec, dict) or not isinstance(rec.get("size"), int):
            raise NlpressError(
                f"{folder}/{META}: bad entry for {short(name)}; rebuild the artifact"
            )
        if not path.is_file():
            raise NlpressError(
                f"{folder} lacks {name}, which the artifact was written with; restore it or "
                "rebuild the artifact"
            )
        size = path.stat().st_size
        if size != rec["size"]:
            raise NlpressError(
                f"{folder}/{name} is {size} bytes but was written as {rec['size']}: it was "
                "truncated or replaced; restore it or rebuild the artifact"
            )
        if hashes and _sha256(path) != rec.get("sha256"):
            raise NlpressError(
                f"{folder}/{name} does not match the sha256 recorded when the artifact was "
                "written: it was changed; restore it or rebuild the artifact"
            )


def foreign_files(out: Path) -> tuple[list[str], str]:
    """(the files in ``out`` that nlpress did not write, why); everything when no list."""
    try:
        meta = json.loads((out / META).read_text())
    except (OSError, ValueError, RecursionError):
        meta = None
    listed = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
        return [p.relative_to(out).as_posix() for p in sorted(out.iterdir())], "not nlpress"
    if not isinstance(listed, dict):
        return [p.relative_to(out).as_posix() for p in sorted(out.iterdir())], "no file list"
    dirs = {p.as_posix() for n in listed for p in Path(n).parents}
    files, folders = _walk(out)
    extra = [f for f in files if f != META and f not in listed]
    # folders of the user's that hold none of those files (empty ones) are named too
    extra += [d for d in folders if d not in dirs and not any(f.startswith(d + "/") for f in extra)]
    return extra, "not in its file list"


def write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(x):
    import numpy as np

    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, Path):
        return str(x)
    raise TypeError(f"not JSON serialisable: {type(x)}")
