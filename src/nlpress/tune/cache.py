"""Prefix reuse: trials whose recipes start with the same trained steps share that model.

A distilled student (or a pruned-and-recovered model) costs minutes to hours; the quantization
after it costs seconds. So the state after a recipe prefix that trains (``distill-student``,
``recover``, ``prune-gradual``) is saved under the hash of that prefix (the model, the training
data and the steps, as YAML) and later trials that start with the same prefix restore it and run
only the rest: a student is trained once, then pruned or quantized many ways. Entries are
written to a temporary file and renamed, so several workers can share the folder; a missing or
unreadable entry is simply rebuilt.
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

    def _file(self, prefix: list) -> Path:
        return self.folder / f"{self.key(prefix)}.pt"

    def restore(self, st: State, steps: list) -> int:
        """Load the longest cached prefix into ``st``; how many steps it covers (0: none)."""
        import torch

        for k in range(len(steps), 0, -1):
            f = self._file(steps[:k])
            if not cacheable(steps[:k]) or not f.is_file():
                continue
            try:
                saved = torch.load(f, weights_only=False)  # our own file, written below
            except Exception as e:  # a damaged entry is rebuilt, never trusted
                log.warning("prefix cache entry %s unreadable (%s); rebuilding", f.name, e)
                continue
            st.torch_model = saved["model"]
            st.weights_format = saved["weights_format"]
            st.pruning, st.masks = saved["pruning"], saved["masks"]
            st.steps = [{**s, "info": {**s["info"], "cached": True}} for s in saved["steps"]]
            self.hits += 1
            log.info("reusing the trained prefix %s (%d steps)", f.name, k)
            return k
        return 0

    def store(self, st: State, prefix: list) -> None:
        import torch

        if not cacheable(prefix):
            return
        f = self._file(prefix)
        if f.is_file():
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = f.with_suffix(f".tmp-{os.getpid()}")
        saved = {
            "model": st.torch_model,
            "weights_format": st.weights_format,
            "pruning": st.pruning,
            "masks": st.masks,
            "steps": st.steps,
        }
        torch.save(saved, tmp)
        os.replace(tmp, f)
