"""Prefix reuse: trials whose recipes start with the same trained steps share that model.

A distilled student (or a pruned-and-recovered model) costs minutes to hours; the quantization
after it costs seconds. So the state after a recipe prefix that trains (``distill-student``,
``recover``, ``prune-gradual``) is saved under the hash of that prefix (the model, the training
data and the steps, as YAML) and later trials that start with the same prefix restore it and run
only the rest: a student is trained once, then pruned or quantized many ways. Entries are
written to a temporary folder and renamed, so several workers can share the folder; a missing or
unreadable entry is simply rebuilt. An entry is the model in nlpress's bitmask safetensors layout
(which also holds head-pruned BERTs), the masks as safetensors and the rest as JSON: never a
pickle, since a study folder may come from another machine.
"""

from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Any

from nlpress.recipe import PRUNE_STEPS, STEP_NAMES, PruneGradualConfig, RecoverConfig
from nlpress.state import State
from nlpress.step_configs import DistillStudentConfig

log = logging.getLogger(__name__)

TRAINING = (DistillStudentConfig, RecoverConfig, PruneGradualConfig)


def cacheable(prefix: list) -> bool:
    """PyTorch-side steps only (before any export), and at least one that trains."""
    return (
        bool(prefix)
        and all(isinstance(s, (*PRUNE_STEPS, RecoverConfig)) for s in prefix)
        and isinstance(prefix[-1], TRAINING)
    )


class PrefixCache:
    def __init__(self, folder: Path, model: Path, train_data: Any) -> None:
        self.folder = Path(folder)
        self.base = f"{Path(model).absolute()}|{train_data}"
        self.hits = 0

    def key(self, prefix: list) -> str:
        text = (
            self.base
            + "|"
            + "|".join(f"{STEP_NAMES[type(s)]}:{s.model_dump_json()}" for s in prefix)
        )
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def _dir(self, prefix: list) -> Path:
        return self.folder / self.key(prefix)

    def restore(self, st: State, steps: list) -> int:
        """Load the longest cached prefix into ``st``; how many steps it covers (0: none).

        Entries are safetensors and JSON, never a pickle: a study folder may be shared between
        machines, and nothing read from it may run code."""
        for k in range(len(steps), 0, -1):
            d = self._dir(steps[:k])
            if not cacheable(steps[:k]) or not (d / "state.json").is_file():
                continue
            try:
                saved = _read_entry(d, st.lm.task)
            except Exception as e:  # a damaged entry is rebuilt, never trusted
                log.warning("prefix cache entry %s unreadable (%s); rebuilding", d.name, e)
                continue
            st.torch_model = saved["model"]
            st.weights_format = saved["weights_format"]
            st.pruning, st.masks = saved["pruning"], saved["masks"]
            st.steps = [{**s, "info": {**s["info"], "cached": True}} for s in saved["steps"]]
            self.hits += 1
            log.info("reusing the trained prefix %s (%d steps)", d.name, k)
            return k
        return 0

    def _stop_file(self, prefix: list, limit: float) -> Path:
        from nlpress.tuning.trial import PROXY_VERSION  # marks of an older proxy do not apply

        return self.folder / f"{self.key(prefix)}.stopped-p{PROXY_VERSION}-{limit:g}.txt"

    def mark_stopped(self, prefix: list, limit: float, why: str) -> None:
        """Record that training ``prefix`` was stopped as hopeless under ``limit``: training is
        seeded, so every later trial that starts with it would be stopped at the same step."""
        if not cacheable(prefix):
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        f = self._stop_file(prefix, limit)
        tmp = f.with_name(f".{f.name}.tmp-{os.getpid()}")
        tmp.write_text(why)
        os.replace(tmp, f)

    def stopped(self, steps: list, limit: float) -> str | None:
        """Why a prefix of ``steps`` was stopped under the same ``limit`` before; None if not."""
        for k in range(1, len(steps) + 1):
            f = self._stop_file(steps[:k], limit)
            if cacheable(steps[:k]) and f.is_file():
                return f.read_text()
        return None

    def store(self, st: State, prefix: list) -> None:
        import shutil

        if not cacheable(prefix):
            return
        d = self._dir(prefix)
        if (d / "state.json").is_file():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = d.with_name(f".{d.name}.tmp-{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            _write_entry(tmp, st)
            os.rename(tmp, d)  # atomic; another worker may have written the same entry first
        except OSError:
            if not (d / "state.json").is_file():
                raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _write_entry(folder: Path, st: State) -> None:
    from safetensors.torch import save_file

    from nlpress.artifact_files import write_json
    from nlpress.prune.sparse_io import save_sparse

    save_sparse(st.torch_model, folder)  # any pruned or layer-dropped model, bit-identical
    if st.masks:
        save_file(
            {k: v.contiguous() for k, v in st.masks.items()}, str(folder / "masks.safetensors")
        )
    state = {"weights_format": st.weights_format, "pruning": st.pruning, "steps": st.steps}
    write_json(folder / "state.json", state)


def _read_entry(folder: Path, task: str) -> dict:
    from safetensors.torch import load_file

    from nlpress.guards import read_json
    from nlpress.models.loader import auto_class
    from nlpress.prune.sparse_io import load_sparse

    state = read_json(folder / "state.json", "prefix cache entry", "it is rebuilt")
    masks_file = folder / "masks.safetensors"
    masks = load_file(str(masks_file)) if masks_file.is_file() else {}
    model = load_sparse(folder, auto_class(task))
    for p in model.parameters():
        p.requires_grad_(True)
    return {"model": model, "masks": masks, **state}
