"""Gradual magnitude pruning (Zhu & Gupta 2017, "To prune, or not to prune").

Sparsity rises from ``s_i`` to ``s_f`` on the cubic schedule

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3,   t = t0, t0 + dt, ..., t0 + n * dt

while the model fine-tunes: every ``dt`` optimizer steps the masks are recomputed from the current
weights' magnitudes at ``s_t``, and after *every* optimizer step they are re-applied, so a pruned
weight stays exactly zero although AdamW's momentum would move it. The schedule prunes fast
while there are many redundant weights and slowly near the end, and the steps after ``t0 + n*dt``
train at the final sparsity, which is where the network recovers.

Why this design: the schedule is a pure function (tested against the formula); the masks come
from :func:`nlpress.prune.unstructured.magnitude_masks`, so each update removes *exactly*
``round(s_t * numel)`` weights per layer (or globally); already-pruned weights are zero, the lowest
magnitudes, so masks only grow. The pruner is an ``on_step_end(model, step)`` callback for the
one training loop (:func:`nlpress.train.loop.train`): no second loop.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

from torch import nn

from nlpress.prune.masks import Masks, apply_masks
from nlpress.recipe import PruneGradualConfig, PruneMagnitudeConfig

log = logging.getLogger(__name__)


def cubic_sparsity(t: int, s_i: float, s_f: float, t0: int, n: int, dt: int) -> float:
    """Zhu & Gupta's target sparsity at step ``t``: ``s_i`` before ``t0``, ``s_f`` from
    ``t0 + n*dt`` on, the cubic in between."""
    if t < t0:
        return s_i
    if t >= t0 + n * dt:
        return s_f
    return s_f + (s_i - s_f) * (1.0 - (t - t0) / (n * dt)) ** 3


@dataclass(frozen=True)
class Schedule:
    """When to prune, in optimizer steps: at ``t0, t0 + dt, ..., t0 + n*dt``."""

    s_i: float
    s_f: float
    t0: int
    n: int
    dt: int

    def at(self, t: int) -> float:
        return cubic_sparsity(t, self.s_i, self.s_f, self.t0, self.n, self.dt)

    def is_update(self, t: int) -> bool:
        k, r = divmod(t - self.t0, self.dt)
        return r == 0 and 0 <= k <= self.n

    def to_dict(self) -> dict:
        return {"s_i": self.s_i, "s_f": self.s_f, "t0": self.t0, "n": self.n, "dt": self.dt}


def make_schedule(cfg: PruneGradualConfig, total_steps: int) -> Schedule:
    """Schedule for ``total_steps`` optimizer steps: prune from ``start`` to ``end`` (fractions).

    ``dt`` shrinks when the pruning span is shorter than ``frequency``, so a short run still
    reaches ``s_f`` by its ``end``.
    """
    t0 = int(math.floor(cfg.start * total_steps))
    span = max(int(math.floor(cfg.end * total_steps)) - t0, 1)
    dt = min(cfg.frequency, span)
    return Schedule(cfg.initial_sparsity, cfg.sparsity, t0, max(span // dt, 1), dt)


@dataclass
class GradualPruner:
    """``on_step_end(model, step)``: new masks at scheduled steps, masks re-applied every step."""

    cfg: PruneGradualConfig
    schedule: Schedule
    masks: Masks = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)  # (step, target sparsity) per update

    def prune_to(self, model: nn.Module, sparsity: float, step: int) -> None:
        from nlpress.prune.unstructured import magnitude_masks

        c = self.cfg
        mcfg = PruneMagnitudeConfig(
            sparsity=sparsity, norm=c.norm, scope=c.scope, targets=c.targets, ignore=c.ignore
        )
        self.masks = magnitude_masks(model, mcfg)
        self.history.append({"step": step, "sparsity": round(sparsity, 6)})
        log.debug("step %d: sparsity %.4f", step, sparsity)

    def start(self, model: nn.Module) -> None:
        """Before the first step: prune to ``s_i`` when the schedule starts at step 0."""
        if self.schedule.t0 == 0:
            self.prune_to(model, self.schedule.s_i, 0)
            apply_masks(model, self.masks)

    def __call__(self, model: nn.Module, step: int) -> None:
        if self.schedule.is_update(step):
            self.prune_to(model, self.schedule.at(step), step)
        if self.masks:
            apply_masks(model, self.masks)

    def finish(self, model: nn.Module) -> Masks:
        """Exactly ``s_f`` at the end, whatever step the loop stopped at."""
        if not self.history or self.history[-1]["sparsity"] != round(self.schedule.s_f, 6):
            self.prune_to(model, self.schedule.s_f, -1)
        apply_masks(model, self.masks)
        return self.masks
