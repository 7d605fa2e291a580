"""The artifact folder: what it holds, how it is recognised, and how it is written atomically.

A compressed model is a folder (DESIGN.md): the model (``model.onnx`` or a Hugging Face
``model.safetensors`` layout) with its tokenizer, ``nlpress.json`` (how to run it),
``recipe.yaml``, ``metrics.json``, ``env.json``, ``report.md`` and ``report.html``.

It is built in a hidden folder beside the target and renamed into place only at the end, so a
failed or interrupted run never leaves a half-written artifact and never destroys an earlier one.
An existing artifact is replaced only with ``force``, and only when every file in it is one
that nlpress wrote: when the artifact is complete, :func:`seal` records each file's size and
sha256 in ``nlpress.json``; a folder with any other file (a user's notes, a ``nlpress.json``
someone wrote by hand) is never touched. The same list lets a load check that no file was
truncated or swapped (:func:`verify_files`), and every path an artifact names must resolve
inside it (:func:`inside`). ``--out`` may be a symlink to a folder: the folder it points to is
written; a dangling one, or a folder nlpress cannot write in, is an error before any work. SIGTERM and SIGINT unwind like Ctrl-C, so the temporary folder is removed; a kill -9
can leave a ``.NAME.nlpress-tmp-PID`` folder behind, and the next run removes stale ones whose
process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nlpress.errors import NlpressError
from nlpress.guards import short

log = logging.getLogger(__name__)

META = "nlpress.json"
FORMAT_VERSION = 1
TMP_TAG = ".nlpress-tmp-"
OLD_TAG = ".nlpress-old-"  # an earlier artifact, moved aside for the moment of the swap


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
_BACKENDS = ("onnxruntime", "pytorch")
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
    try:
        assert isinstance(raw, dict) and len(raw) <= 1 << 16
        id2label = {int(k): v for k, v in raw.items()}
        assert all(isinstance(v, str) for v in id2label.values())
    except (AssertionError, ValueError, TypeError):
        raise bad("id2label", "a mapping of class ids to label names") from None
    if meta.get("pooling", "mean") not in ("mean", "cls"):
        raise bad("pooling", "mean or cls")
    if not isinstance(meta.get("normalize", False), bool):
        raise bad("normalize", "true or false")
    name = meta.get("name", "artifact")
    return {
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


def _foreign(out: Path) -> tuple[list[str], str]:
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


def _target(out: Path) -> Path:
    """``out`` with a symlink resolved (the folder it points to is written); dangling: an error."""
    out = Path(out).absolute()
    if out.is_symlink():
        real = out.resolve()
        if not real.exists():
            raise NlpressError(
                f"--out {out} is a symlink to {real}, which does not exist; create that folder "
                "or choose another --out"
            )
        return real
    return out


def _probe_writable(folder: Path, out: Path) -> None:
    """Create and remove an empty folder in ``folder``: the real test of being able to write."""
    import tempfile

    try:
        os.rmdir(tempfile.mkdtemp(prefix=f".{out.name}.nlpress-probe-", dir=folder))
    except OSError as e:
        raise NlpressError(f"cannot write in {folder} ({e.strerror}); choose another --out") from e


def check_target(out: Path, force: bool) -> None:
    """Refuse, before any work, to write where it would lose something or cannot write."""
    out = _target(out)
    if not out.exists():
        if not out.parent.is_dir():
            raise NlpressError(
                f"cannot write {out}: folder {out.parent} does not exist; create it first"
            )
        _probe_writable(out.parent, out)
        return
    if not out.is_dir():
        raise NlpressError(f"output {out} is a file; choose a folder with --out")
    if not any(out.iterdir()):
        _probe_writable(out.parent, out)
        return
    extra, why = _foreign(out)
    if why == "not nlpress":
        what = (
            "holds a nlpress.json that nlpress did not write"
            if is_artifact(out)
            else ("is not empty")
        )
        raise NlpressError(
            f"{out} {what} and is not an nlpress artifact; choose another --out (nothing in it "
            "was touched)"
        )
    if why == "no file list":
        raise NlpressError(
            f"{out} holds an artifact without a file list (written by an older nlpress), so "
            "nlpress cannot tell its files from yours and will not replace it; delete it "
            "yourself or choose another --out"
        )
    if not force:
        raise NlpressError(
            f"{out} already holds an nlpress artifact; pass --force to replace it or choose another --out"
        )
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise NlpressError(
            f"--force would delete {extra[0]}{more} in {out}, which nlpress did not write; "
            "move it out of the artifact folder or choose another --out"
        )
    if not os.access(out, os.W_OK):
        raise NlpressError(f"cannot replace {out} (not writable); choose another --out")
    _probe_writable(out.parent, out)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _dead_leftovers(out: Path, tag: str) -> Iterator[Path]:
    """``.NAME<tag>PID`` folders beside ``out`` whose process is gone."""
    for p in out.parent.glob(f".{glob.escape(out.name)}{tag}*"):
        try:
            pid = int(p.name.rsplit("-", 1)[-1])
        except ValueError:
            continue
        if not _pid_alive(pid):
            yield p


def _clean_stale(out: Path) -> None:
    """Remove what a killed run left beside ``out``; put back an artifact it had moved aside."""
    for p in _dead_leftovers(out, OLD_TAG):
        if not out.exists():  # killed between the two renames of _replace: the old one is whole
            log.warning("restoring %s from %s, left by a killed run", out, p.name)
            os.rename(p, out)
        else:
            _remove(p)
    for p in _dead_leftovers(out, TMP_TAG):
        log.info("removing %s, left by a killed run", p.name)
        _remove(p)


def _remove(p: Path) -> None:
    """Delete a leftover folder; a leftover symlink (older nlpress moved links aside) is unlinked."""
    if p.is_symlink():
        p.unlink(missing_ok=True)
    else:
        shutil.rmtree(p, ignore_errors=True)


def _in_finalizer(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_name == "__del__":
            return True
        frame = frame.f_back
    return False


class _Interrupts:
    """SIGTERM and SIGINT raise ``KeyboardInterrupt``, except inside :meth:`held`.

    ``kill`` (SIGTERM) would otherwise end the process without unwinding, leaving the temporary
    folder behind. Inside :meth:`held` (the final swap, the cleanup) a signal is noted and
    ignored, so that the folder on disk is never half-replaced or half-deleted. ``received``
    remembers a signal even if some library swallowed its ``KeyboardInterrupt`` (one raised in a
    finalizer is only printed), so the swap can still be called off. A signal the process was
    started to ignore (``nohup``) stays ignored.
    """

    def __init__(self) -> None:
        self.holding = False
        self.received: int | None = None
        self.old: dict[int, Any] = {}

    def _handler(self, signum, frame) -> None:
        if self.holding:
            log.warning("signal %d ignored while the artifact folder is being swapped", signum)
            return
        self.received = signum
        if _in_finalizer(frame):
            # Python prints and drops an exception raised in a finalizer (seen: the `regex`
            # package's Group.__del__), and the run would go on to the end. Send the signal
            # again shortly, so it lands in ordinary code and unwinds.
            import threading

            threading.Timer(0.05, os.kill, (os.getpid(), signum)).start()
            return
        raise KeyboardInterrupt(f"signal {signum}")

    def __enter__(self) -> _Interrupts:
        wanted = {signal.SIGTERM: signal.SIG_DFL, signal.SIGINT: signal.default_int_handler}
        for sig, default in wanted.items():
            try:
                if signal.getsignal(sig) is default:
                    self.old[sig] = signal.signal(sig, self._handler)
            except ValueError:  # not the main thread: leave signals alone
                break
        return self

    def __exit__(self, *exc) -> None:
        for sig, old in self.old.items():
            signal.signal(sig, old)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        self.holding = True
        try:
            yield
        finally:
            self.holding = False


@contextlib.contextmanager
def atomic_artifact(out: Path, force: bool) -> Iterator[Path]:
    """Yield a temporary folder; on success it replaces ``out``, on any failure it is deleted."""
    out = _target(out)
    _clean_stale(out)
    check_target(out, force)  # after _clean_stale, which may have put an artifact back
    tmp = out.parent / f".{out.name}{TMP_TAG}{os.getpid()}"
    with _Interrupts() as signals:  # before mkdir: a signal now must not leave the folder behind
        try:
            shutil.rmtree(tmp, ignore_errors=True)
            try:
                tmp.mkdir()
            except OSError as e:
                raise NlpressError(
                    f"cannot write in {out.parent} ({e.strerror}); choose another --out"
                ) from e
            yield tmp
            with signals.held():
                if signals.received is not None:  # interrupted, but the exception was swallowed
                    raise KeyboardInterrupt(f"signal {signals.received}")
                check_target(out, force)  # something may have appeared meanwhile
                seal(tmp)
                _replace(tmp, out)
        except BaseException:
            with signals.held():
                shutil.rmtree(tmp, ignore_errors=True)
            raise


def _replace(tmp: Path, out: Path) -> None:
    if not out.exists():
        os.rename(tmp, out)
        return
    old = out.parent / f".{out.name}{OLD_TAG}{os.getpid()}"
    shutil.rmtree(old, ignore_errors=True)
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
