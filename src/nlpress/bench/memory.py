"""Peak memory of loading and running a model, measured in a fresh process per model.

Why a subprocess: a process's peak RSS only ever goes up, and freed memory is often not returned
to the OS, so measuring the baseline and the compressed model in the same process would let the
first one's peak hide the second's. One short-lived ``python -m nlpress.bench.memprobe`` per model
gives each its own clean address space; see :mod:`nlpress.bench.memprobe` for how the peak is
read. MB in this module means MiB (2**20 bytes), as ``ps`` and ``top`` count.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import nlpress
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)


def _child_env() -> dict[str, str]:
    """Our environment, with the nlpress we were imported from first on PYTHONPATH.

    The probe must import the same nlpress as the caller, even when the caller found it through
    sys.path tweaks (pytest ``pythonpath``, a notebook) that a child process would not inherit.
    """
    env = dict(os.environ)
    root = str(Path(nlpress.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _probe_command(
    path: str,
    batch_size: int,
    seq_len: int,
    texts_file: str | None,
    factory: str | None,
    preload: bool,
) -> list[str]:
    cmd = [sys.executable, "-m", "nlpress.bench.memprobe", str(path)]
    cmd += ["--batch-size", str(batch_size), "--seq-len", str(seq_len)]
    if texts_file:
        cmd += ["--texts-json", texts_file]
    if factory:
        cmd += ["--factory", factory]
    if not preload:
        cmd.append("--no-preload")
    return cmd


def peak_memory_mb(
    path: str,
    batch_size: int,
    seq_len: int,
    texts: list[str] | None = None,
    timeout: float = 600,
    *,
    factory: str | None = None,
    preload: bool = True,
) -> dict[str, Any]:
    """Load ``path`` in a fresh process, run one forward at ``batch_size`` x ``seq_len``.

    Returns the probe's JSON: ``rss_after_import_mb``, ``rss_after_load_mb``, ``peak_rss_mb`` and
    ``model_peak_mb`` (peak minus after-import: what the model and one forward pass cost), in MiB.
    ``factory`` ("module:function", called with ``path``) replaces :func:`nlpress.load`; tests
    use it with a fake predictor. ``preload=False`` skips importing torch/onnxruntime first.
    """
    if batch_size < 1 or seq_len < 1:
        raise NlpressError(
            f"memory probe needs batch_size and seq_len >= 1, got {batch_size}, {seq_len}"
        )
    with tempfile.TemporaryDirectory(prefix="nlpress-memprobe-") as tmp:
        texts_file = None
        if texts:
            texts_file = str(Path(tmp) / "texts.json")
            Path(texts_file).write_text(json.dumps(list(texts)))
        cmd = _probe_command(path, batch_size, seq_len, texts_file, factory, preload)
        log.info("memory probe: %s", " ".join(cmd))
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=_child_env()
            )
        except subprocess.TimeoutExpired as exc:
            raise NlpressError(
                f"memory probe for {path} timed out after {timeout:g}s; raise the timeout"
            ) from exc
    if proc.returncode != 0:
        raise NlpressError(f"memory probe for {path} failed: {_last_line(proc.stderr)}")
    try:
        return json.loads(_last_line(proc.stdout))
    except json.JSONDecodeError as exc:
        raise NlpressError(
            f"memory probe for {path} printed no result: {_last_line(proc.stdout)}"
        ) from exc
