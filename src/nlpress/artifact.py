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
written; a dangling one, or a folder nlpress cannot write in, is an error before any work.

SIGTERM and SIGINT unwind like Ctrl-C, so the temporary folder is removed; a kill -9 can leave a
``.NAME.nlpress-tmp-PID`` folder behind, and the next run removes stale ones whose process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nlpress.artifact_files import (  # re-exported: the artifact's own files and nlpress.json
    FORMAT_VERSION,
    META,
    check_meta,
    foreign_files,
    inside,
    is_artifact,
    read_meta,
    seal,
    verify_files,
    write_json,
)
from nlpress.errors import NlpressError

__all__ = [
    "FORMAT_VERSION",
    "META",
    "atomic_artifact",
    "check_meta",
    "check_target",
    "inside",
    "is_artifact",
    "read_meta",
    "seal",
    "verify_files",
    "write_json",
]

log = logging.getLogger(__name__)

TMP_TAG = ".nlpress-tmp-"
OLD_TAG = ".nlpress-old-"  # an earlier artifact, moved aside for the moment of the swap


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
    extra, why = foreign_files(out)
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


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists (ours or another user's)."""
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
        if not pid_alive(pid):
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


@dataclass
class Artifact:
    """A written artifact folder and its metrics; ``load()`` gives its predictor."""

    path: Path
    metrics: dict

    def load(self, **kw):
        from nlpress.runtime import load

        return load(self.path, **kw)
