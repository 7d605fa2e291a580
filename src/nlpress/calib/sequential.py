"""Sequential (block-by-block) calibration: the one engine behind GPTQ, AWQ, SmoothQuant, Wanda, SparseGPT.

GPTQ (Frantar et al. 2022, arXiv:2210.17323, section 4 "Step 3") and SparseGPT/Wanda after it
calibrate a transformer one block at a time: each block sees inputs produced by the blocks
*already compressed* before it, so errors do not compound unseen, and only one block's
activations and statistics are alive at once. The engine does that walk once for every method:

1. run the calibration batches through the model until the first block, and keep the block's
   inputs (hidden states) and keyword arguments (attention mask, rotary embeddings, ...): a
   pre-hook on block 0 stores them and stops the forward, so embeddings and position handling stay
   the model's own code for every architecture;
2. for each block: hook its ``nn.Linear`` modules (those selected by ``targets``/``ignore``) and
   run the batches through it, accumulating per-layer :class:`LayerStats` (what ``collect`` asks
   for); linears that read the very same tensor (q/k/v, gate/up) share one stats object, so the
   costly Hessian is accumulated once per input;
3. call ``transform(ctx)`` with a :class:`BlockContext`: the method changes the block's weights
   in place (quantize, fold scales, prune) and returns a dict of info;
4. run the batches through the *modified* block; its outputs are the next block's inputs.

API::

    def transform(ctx: BlockContext) -> dict:
        for name, lin in ctx.linears.items():
            lin.weight.data = my_method(lin.weight.data, ctx.stats[name].hessian)
        return {}

    info = run_sequential(model, batches, transform, collect={"hessian"}, ignore=[...])

``batches`` are dicts of int64 tensors the model's forward takes (``input_ids``,
``attention_mask``). Linear names in ``ctx.linears``/``ctx.stats`` are full module names
(``model.layers.3.mlp.down_proj``), the names ``targets``/``ignore`` patterns match.

Memory: the weights, the calibration hidden states once (each batch's block output replaces its
input: 128 x 512 tokens x 576 floats = 150 MB on SmolLM2), one block's statistics (a Hessian is
``in x in``) and one batch's activations. Nothing else of the model's activations is kept, and
freed heap is handed back to the OS after each block (glibc fragments it otherwise).
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from nlpress.calib.adapters import ArchAdapter, block_linears, block_scale_groups
from nlpress.errors import NlpressError

log = logging.getLogger(__name__)

STATS = frozenset({"hessian", "abs_mean", "abs_max", "sq_sum", "samples"})
MAX_SAMPLE_ROWS = 4096  # raw input rows kept per linear for AWQ's search: enough, and bounded


@dataclass
class LayerStats:
    """Statistics of one linear layer's inputs ``x`` (rows = tokens), accumulated over batches.

    ``hessian`` is GPTQ's ``H = 2/n sum x x^T`` (in, in); ``abs_mean`` the mean |x| per input
    channel (AWQ); ``abs_max`` the max |x| per channel (SmoothQuant); ``sq_sum`` sum x^2 per
    channel (Wanda's ``||X_j||_2`` is its square root); ``samples`` up to ``MAX_SAMPLE_ROWS`` rows.
    """

    n: int = 0
    hessian: Tensor | None = None
    abs_mean: Tensor | None = None
    abs_max: Tensor | None = None
    sq_sum: Tensor | None = None
    samples: Tensor | None = None
    collect: frozenset = frozenset()

    def add(self, x: Tensor) -> None:
        x = x.detach().reshape(-1, x.shape[-1]).float()  # (rows, in)
        m, n_new = x.shape[0], self.n + x.shape[0]
        if "hessian" in self.collect:
            xx = x.t() @ x  # (in, in)
            if self.hessian is None:
                self.hessian = xx * (2.0 / n_new)
            else:
                self.hessian.mul_(self.n / n_new).add_(xx, alpha=2.0 / n_new)
        if "abs_mean" in self.collect:
            s = x.abs().sum(0)
            self.abs_mean = (
                s / n_new
                if self.abs_mean is None
                else (self.abs_mean * (self.n / n_new) + s / n_new)
            )
        if "abs_max" in self.collect:
            a = x.abs().amax(0)
            self.abs_max = a if self.abs_max is None else torch.maximum(self.abs_max, a)
        if "sq_sum" in self.collect:
            q = x.square().sum(0)
            self.sq_sum = q if self.sq_sum is None else self.sq_sum + q
        if "samples" in self.collect:
            have = 0 if self.samples is None else self.samples.shape[0]
            if have < MAX_SAMPLE_ROWS:
                rows = x[:: max(1, m // 512)][: MAX_SAMPLE_ROWS - have].clone()
                self.samples = rows if self.samples is None else torch.cat([self.samples, rows])
        self.n = n_new


@dataclass
class BlockContext:
    """What a transform sees for one block."""

    index: int
    prefix: str  # the block's module name, e.g. "model.layers.3"
    block: nn.Module
    linears: dict[str, nn.Linear]  # selected linears of this block, by full name
    stats: dict[str, LayerStats]  # by the same full names (shared objects for shared inputs)
    adapter: ArchAdapter
    scale_groups: list = field(default_factory=list)  # see adapters.block_scale_groups


class _Stop(Exception):
    pass


def _capture_first_block(
    model: nn.Module, blocks: nn.ModuleList, batches: Sequence[dict[str, Tensor]]
) -> list[tuple[Tensor, dict[str, Any]]]:
    """(hidden states, keyword arguments) that block 0 receives, per batch."""
    captured: list[tuple[Tensor, dict[str, Any]]] = []

    def hook(_mod, args, kwargs):
        hidden = args[0] if args else kwargs.pop("hidden_states")
        captured.append((hidden, {k: v for k, v in kwargs.items() if k != "hidden_states"}))
        raise _Stop

    extra = {}
    if "use_cache" in inspect.signature(model.forward).parameters:
        extra["use_cache"] = False
    handle = blocks[0].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        for batch in batches:
            try:
                model(**batch, **extra)
            except _Stop:
                pass
    finally:
        handle.remove()
    if len(captured) != len(batches):
        raise NlpressError("calibration could not reach the model's first block")
    return captured


def _advance(block: nn.Module, inputs: list[tuple[Tensor, dict]]) -> None:
    """Replace each batch's hidden states by the block's output, one batch at a time, so the
    inputs and outputs of all batches are never alive together (150 MB each on SmolLM2)."""
    for j, (hidden, kwargs) in enumerate(inputs):
        out = block(hidden, **kwargs)
        inputs[j] = (out[0] if isinstance(out, tuple) else out, kwargs)
        del hidden, out


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``), so a block's temporaries do
    not pile up as fragmented, still-resident memory across 30 blocks; a no-op elsewhere."""
    global _TRIM
    if _TRIM is None:
        import ctypes
        import ctypes.util

        try:
            _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _TRIM = False
    if _TRIM:
        _TRIM(0)


_TRIM = None


def _hook_stats(
    linears: dict[str, nn.Linear], collect: frozenset
) -> tuple[dict[str, LayerStats], list]:
    """Forward hooks that accumulate input statistics; one object per distinct input tensor."""
    stats: dict[str, LayerStats] = {}
    owner: dict[tuple, str] = {}  # (input id, step) -> first linear that saw this input
    alias: dict[str, str] = {}
    step = [0]

    def make(name: str):
        def hook(_mod, args, _out):
            x = args[0]
            key = (id(x), x.data_ptr(), tuple(x.shape), step[0])
            if name not in alias:
                first = owner.setdefault(key, name)
                alias[name] = first
                if first == name:
                    stats[name] = LayerStats(collect=collect)
            if alias[name] == name:
                stats[name].add(x)

        return hook

    handles = [lin.register_forward_hook(make(n)) for n, lin in linears.items()]

    def next_step():
        step[0] += 1

    return stats, [handles, alias, next_step]


def run_sequential(
    model: nn.Module,
    batches: Sequence[dict[str, Tensor]],
    transform: Callable[[BlockContext], dict],
    *,
    collect: Iterable[str] = ("hessian",),
    targets: Sequence[str] | None = None,
    ignore: Sequence[str] = (),
    progress: bool = True,
) -> list[dict]:
    """Walk ``model`` block by block (module docstring); returns each block's transform info."""
    from nlpress.select import select

    collect = frozenset(collect)
    if collect - STATS:
        raise ValueError(f"unknown statistics {sorted(collect - STATS)}; known: {sorted(STATS)}")
    if not batches:
        raise NlpressError("calibration needs at least one batch of text")
    adapter, path, blocks, all_linears = block_linears(model)
    chosen = set(select(all_linears, targets, ignore))
    if not chosen:
        raise NlpressError(
            "no linear layers to calibrate: the model's blocks have none, or targets/ignore "
            "exclude them all; check the model and the patterns"
        )
    infos = []
    with torch.no_grad():  # not inference_mode: transformed weights stay normal tensors
        inputs = _capture_first_block(model, blocks, batches)
        iterator: Any = range(len(blocks))
        if progress:
            from tqdm.auto import tqdm

            iterator = tqdm(iterator, desc="calibrate", unit="block")
        for i in iterator:
            block, prefix = blocks[i], f"{path}.{i}"
            linears = {n: m for n, m in all_linears.items() if n.startswith(prefix + ".")}
            linears = {n: m for n, m in linears.items() if n in chosen}
            stats: dict[str, LayerStats] = {}
            if linears and collect:
                stats, (handles, alias, next_step) = _hook_stats(linears, collect)
                for hidden, kwargs in inputs:
                    out = block(hidden, **kwargs)
                    del out
                    next_step()
                for h in handles:
                    h.remove()
                stats = {n: stats[alias[n]] for n in linears if n in alias}
            ctx = BlockContext(i, prefix, block, linears, stats, adapter)
            ctx.scale_groups = block_scale_groups(adapter, block)
            infos.append(transform(ctx) if linears else {})
            del stats, ctx
            _advance(block, inputs)
            _release_freed_memory()
    return infos
