"""``load()``: an artifact or a model folder as a predictor on ONNX Runtime, OpenVINO or PyTorch."""

from __future__ import annotations

import os
from pathlib import Path

from nlpress.artifact import is_artifact, read_meta
from nlpress.errors import NlpressError
from nlpress.runtime.predictor import OrtPredictor, Predictions, Predictor, TorchPredictor

__all__ = ["OrtPredictor", "Predictions", "Predictor", "TorchPredictor", "load"]


def load(
    path: str | os.PathLike,
    *,
    threads: int = 0,
    task: str | None = None,
    spin: bool = True,
    device: str | None = None,
) -> Predictor:
    """Load an nlpress artifact, or a Hugging Face model (folder, hub id or ``default``) in PyTorch fp32.

    ``spin=False`` keeps idle ONNX Runtime threads from busy-waiting (see :class:`OrtPredictor`).
    ``device``: "cpu" or "cuda" (see :mod:`nlpress.runtime.device`); None runs an artifact on
    the device recorded in it, and a model folder on the CPU.
    """
    from nlpress.models.loader import load_model
    from nlpress.runtime.device import check_device, check_device_name
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    if device is not None:
        check_device_name(device)
    p = Path(path)
    if p.is_dir() and is_artifact(p):
        pred = _load_artifact(p, threads, spin, device)
        if task is not None and task != pred.task:
            raise NlpressError(
                f"{path} is a {pred.task} artifact, not {task}; drop --task or pick another model"
            )
        return pred
    check_device(device or "cpu")  # before the slow weight load
    lm = load_model(path, task)
    if threads:
        import torch

        torch.set_num_threads(threads)  # the caller asked for it explicitly
    files = [f for f in lm.path.iterdir() if f.suffix in (".safetensors", ".bin")]
    return torch_predictor_from_loaded(lm, "pytorch-fp32", files, threads, device or "cpu")


def _artifact_device(p: Path, meta: dict, device: str | None) -> str:
    """``device``, or the one recorded in the artifact; checked to run here."""
    from nlpress.runtime.device import check_device

    chosen = device or meta.get("device", "cpu")
    try:
        check_device(chosen, meta["backend"])
    except NlpressError as e:
        if device is None:  # the user did not ask for it: say where it came from
            raise NlpressError(
                f"{p} records device {chosen} in nlpress.json, but "
                f"{str(e).removeprefix('--device cuda: ')}; "
                "load it with device='cpu' (--device cpu) to run it on the CPU"
            ) from e
        raise
    return chosen


def _warn_portability(meta: dict, pred: OrtPredictor) -> None:
    import logging

    from nlpress.runtime.isa import check_int8_portability

    profile = pred.compute_profile() or {}
    warning = check_int8_portability(meta, profile.get("format") == "int8")
    if warning:
        logging.getLogger(__name__).warning(warning)


def _load_artifact(
    p: Path, threads: int, spin: bool = True, device: str | None = None
) -> Predictor:
    from transformers import AutoTokenizer

    meta = read_meta(p)
    device = _artifact_device(p, meta, device)
    tok = AutoTokenizer.from_pretrained(p)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    common = dict(
        task=meta["task"],
        tokenizer=tok,
        input_names=meta["input_names"],
        name=meta["name"],
        id2label={int(k): v for k, v in meta.get("id2label", {}).items()},
        max_length=meta.get("max_length", 512),
    )
    if meta["backend"] == "onnxruntime":
        pred = OrtPredictor(
            p / meta["model_file"], threads=threads, spin=spin, device=device, **common
        )
        _warn_portability(meta, pred)
        return pred
    if meta["backend"] == "openvino":
        from nlpress.runtime.openvino import OpenVinoPredictor, warn_if_int8_saturates

        warn_if_int8_saturates(meta, p)
        return OpenVinoPredictor(
            p / meta["model_file"],
            threads=threads,
            precision=meta.get("precision", "f32"),
            **common,
        )
    from nlpress.models.task_module import TaskModule
    from nlpress.quantize.torch_io import load_dynamic_int8

    if threads:
        import torch

        torch.set_num_threads(threads)
    if meta.get("weights_format") == "hf":  # a plain Hugging Face model (e.g. bf16), safetensors
        from nlpress.models.loader import load_model

        model = load_model(p, meta["task"], dtype="auto").model
    elif meta.get("weights_format") == "weight-only":  # int4/int8 codes + scales, safetensors
        from nlpress.models.loader import auto_class
        from nlpress.quantize.woq_linear import load_weight_only

        model = load_weight_only(p, auto_class(meta["task"]))
    elif meta.get("weights_format") == "bitmask":  # pruned: sparse and/or head-pruned BERT
        from nlpress.models.loader import auto_class
        from nlpress.prune.sparse_io import load_sparse

        model = load_sparse(p, auto_class(meta["task"]))
    else:
        from nlpress.models.loader import auto_class

        model = load_dynamic_int8(p, auto_class(meta["task"]))
    module = TaskModule(
        model,
        meta["task"],
        meta["input_names"],
        meta.get("pooling", "mean"),
        meta.get("normalize", False),
    )
    return TorchPredictor(
        module, files=[p / meta["model_file"]], threads=threads, device=device, **common
    )
