"""The parts shared by nlpress' own safetensors layouts (dynamic int8, weight-only, bitmask).

Each layout is a ``model.safetensors`` whose metadata carries a ``format`` tag and a JSON list
of the tensors it stores in its own way; everything else is the model's plain float state. The
model is rebuilt from its config and those float parts are loaded first, with one check that
the file and the config agree, before each layout swaps in its own layers.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from nlpress.errors import NlpressError


def read_tagged(path: Path, fmt: str, what: str, key: str) -> tuple[dict, dict[str, torch.Tensor]]:
    """``(json.loads(metadata[key]), tensors)`` of a file tagged ``fmt``; a clear error if not."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") != fmt or key not in meta:
        raise NlpressError(f"{path} is not an nlpress {what} weights file; re-create the artifact")
    return json.loads(meta[key]), load_file(str(path))


def empty_model(auto_cls, config, **kw) -> nn.Module:
    """The model built from ``config`` with its weights left uninitialised.

    Every weight is loaded from the file next, or belongs to a layer the layout replaces, so
    random initialisation would only cost time and make memory resident that the replaced layers
    free again (a SmolLM2-135M int4 artifact loaded at 1,007 MB RSS this way against 475 MB for
    the fp32 model). transformers' own ``no_init_weights`` skips it; buffers computed in
    ``__init__`` (rotary frequencies) are still made. A weight the file lacks is an error in
    :func:`load_float_part`, so no uninitialised value is ever used.
    """
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return auto_cls.from_config(config, **kw)


def _under(name: str, prefixes) -> bool:
    return any(name.startswith(p + ".") for p in prefixes)


def float_state(model: nn.Module, skip=()) -> dict[str, torch.Tensor]:
    """The persistent state of ``model`` outside the modules named in ``skip``, tied weights once."""
    out: dict[str, torch.Tensor] = {}
    seen: set[int] = set()
    for key, t in model.state_dict().items():
        if _under(key, skip) or t.data_ptr() in seen:  # tied (embeddings = lm_head): stored once
            continue
        seen.add(t.data_ptr())
        out[key] = t.detach().contiguous()
    return out


def load_float_part(model: nn.Module, tensors: dict, replaced, path: Path) -> None:
    """Load the tensors outside ``replaced`` modules into ``model``; error where they disagree.

    Buffers the file need not hold (rebuilt from the config) and a tied output head are not
    counted as missing.
    """
    rest = {k: v for k, v in tensors.items() if not _under(k, replaced)}
    missing, unexpected = model.load_state_dict(rest, strict=False)
    buffers = {n for n, _ in model.named_buffers()}
    tied = getattr(model.config, "tie_word_embeddings", False)
    missing = [
        k
        for k in missing
        if not _under(k, replaced) and k not in buffers and not (tied and k == "lm_head.weight")
    ]
    if tied:
        model.tie_weights()
    if missing or unexpected:
        raise NlpressError(
            f"{path} does not match its config (missing {missing[:3]}, unexpected "
            f"{unexpected[:3]}); re-create the artifact"
        )
