"""Child process that loads one model, runs one forward pass and prints its memory as JSON.

Run by :func:`nlpress.bench.memory.peak_memory_mb`, one process per model, so one model's
allocations never show up in another's peak. Prints exactly one JSON line on stdout:
``{"rss_after_import_mb", "rss_after_load_mb", "peak_rss_mb", "model_peak_mb", ...}`` in MiB.

Why VmHWM and not only ``ru_maxrss``: on Linux, ``execve`` folds the *parent's* high-water RSS
into the child's ``ru_maxrss`` (the old mm's hiwater is saved into the signal struct), so a probe
started from a process holding a 1 GB model reports at least 1 GB whatever it does itself.
``/proc/self/status`` VmHWM belongs to the new address space only, and writing ``5`` to
``/proc/self/clear_refs`` resets it after the imports, so the peak is the model's own. Where
/proc is missing (macOS) we fall back to ``ru_maxrss``.

The backend libraries (torch, onnxruntime, transformers) are imported before the first reading
when installed, because :mod:`nlpress.runtime` imports them lazily; otherwise their import cost
would be counted as model memory.
"""

from __future__ import annotations

import argparse
import importlib
import itertools
import json
import logging
import resource
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MIB = 1024 * 1024
BACKEND_MODULES = ("numpy", "torch", "onnxruntime", "transformers")
DEFAULT_TEXT = "Measuring memory needs a sentence long enough to be a realistic model input."


def _status_kib(field: str) -> int | None:
    """A ``kB`` field of /proc/self/status (e.g. VmHWM), or None where there is no /proc."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak() -> bool:
    """Reset this process's VmHWM to its current RSS (Linux >= 4.0); False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mib() -> tuple[float, str]:
    """Peak RSS of this process in MiB and where it came from ("VmHWM" or "ru_maxrss")."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm / 1024, "VmHWM"
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return maxrss * scale / MIB, "ru_maxrss"


def _resolve_factory(spec: str | None) -> Callable[[str], Any]:
    if spec is None:
        from nlpress.runtime import load

        return load
    module, _, attr = spec.partition(":")
    if not module or not attr:
        raise SystemExit(f"--factory must look like module:function, got {spec!r}")
    return getattr(importlib.import_module(module), attr)


def probe(
    path: str,
    batch_size: int,
    seq_len: int,
    texts: list[str] | None = None,
    factory: str | None = None,
    preload: bool = True,
) -> dict[str, Any]:
    """Import, load ``path``, run one forward at ``batch_size`` x ``seq_len``; memory in MiB."""
    import psutil

    if preload:
        for name in BACKEND_MODULES:
            try:
                importlib.import_module(name)
            except ImportError:
                pass
    load = _resolve_factory(factory)
    process = psutil.Process()
    after_import = process.memory_info().rss / MIB
    reset = _reset_peak()
    predictor = load(path)
    after_load = process.memory_info().rss / MIB
    inputs = list(itertools.islice(itertools.cycle(texts or [DEFAULT_TEXT]), batch_size))
    batch = predictor.tokenize(inputs, pad_to=seq_len, max_length=seq_len)
    predictor.forward(batch)
    peak, source = peak_rss_mib()
    if not reset:  # the peak may include the import phase; never report a negative model cost
        peak = max(peak, after_load)
    return {
        "rss_after_import_mb": round(after_import, 1),
        "rss_after_load_mb": round(after_load, 1),
        "peak_rss_mb": round(peak, 1),
        "model_peak_mb": round(peak - after_import, 1),
        "peak_source": source,
        "peak_reset_after_import": reset,
        "batch_shape": [int(d) for d in batch["input_ids"].shape],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nlpress.bench.memprobe")
    parser.add_argument("path")
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--seq-len", type=int, required=True)
    parser.add_argument("--texts-json", help="file with a JSON list of input texts")
    parser.add_argument("--factory", help="module:function used instead of nlpress.load")
    parser.add_argument("--no-preload", action="store_true", help="skip importing backends first")
    args = parser.parse_args(argv)
    texts = json.loads(Path(args.texts_json).read_text()) if args.texts_json else None
    result = probe(
        args.path,
        args.batch_size,
        args.seq_len,
        texts=texts,
        factory=args.factory,
        preload=not args.no_preload,
    )
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
