"""The artifact folder: what it holds, how it is recognised, and how it is written atomically.

A compressed model is a folder (DESIGN.md): the model (``model.onnx`` or a Hugging Face
``model.safetensors`` layout) with its tokenizer, ``nlpress.json`` (how to run it),
``recipe.yaml``, ``metrics.json``, ``env.json``, ``report.md`` and ``report.html``.

It is built in a hidden folder beside the target and renamed into place only at the end, so a
failed or interrupted run never leaves a half-written artifact and never destroys an earlier one.
An existing artifact is replaced only with ``force``; a folder that holds anything else is never
touched. A kill -9 can leave a ``.NAME.nlpress-tmp-PID`` folder behind; the next run removes
stale ones whose process is gone.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

META = "nlpress.json"
FORMAT_VERSION = 1
TMP_TAG = ".nlpress-tmp-"


def is_artifact(path: Path) -> bool:
    return (Path(path) / META).is_file()


def read_meta(path: Path) -> dict:
    try:
        meta = json.loads((Path(path) / META).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NlpressError(f"{path}/{META} is unreadable ({e}); the artifact is damaged, rebuild it") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise NlpressError(f"{path} was written by an incompatible nlpress (format {meta.get('format_version')})")
    return meta


def check_target(out: Path, force: bool) -> None:
    """Refuse, before any work, to write where it would lose something."""
    if not out.exists():
        if not out.parent.exists():
            raise NlpressError(f"cannot write {out}: folder {out.parent} does not exist; create it first")
        return
    if not out.is_dir():
        raise NlpressError(f"output {out} is a file; choose a folder with --out")
    if is_artifact(out):
        if not force:
            raise NlpressError(f"{out} already holds an nlpress artifact; pass --force to replace it or choose another --out")
        return
    if any(out.iterdir()):
        raise NlpressError(f"{out} is not empty and not an nlpress artifact; choose another --out")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale(out: Path) -> None:
    for p in out.parent.glob(f".{out.name}{TMP_TAG}*"):
        try:
            pid = int(p.name.rsplit("-", 1)[-1])
        except ValueError:
            continue
        if not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let ``kill`` (SIGTERM) unwind like Ctrl-C so the temporary folder is cleaned up."""

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        old = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def atomic_artifact(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any failure it is deleted."""
    out = Path(out).absolute()
    check_target(out, force)
    _clean_stale(out)
    tmp = out.parent / f".{out.name}{TMP_TAG}{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        with _sigterm_as_interrupt():
            yield tmp
            check_target(out, force)  # something may have appeared meanwhile
            _replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}.nlpress-old-{os.getpid()}"
    os.rename(out, old)
    try:
        os.rename(tmp, out)
    except BaseException:
        os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)


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
