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
    verify: bool = False,
    device: str | None = None,
) -> Predictor:
    """Load an nlpress artifact, or a Hugging Face model (folder, hub id or ``default``) in PyTorch fp32.

    ``spin=False`` keeps idle ONNX Runtime threads from busy-waiting (see :class:`OrtPredictor`).
    An artifact's files are checked against the sizes recorded in its nlpress.json on every load;
    ``verify=True`` also checks their sha256 (``nlpress eval`` and ``bench`` do).
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
        pred = _load_artifact(p, threads, spin, verify, device)
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

    warning = check_int8_portability(
        meta, lambda: (pred.compute_profile() or {}).get("format") == "int8"
    )
    if warning:
        logging.getLogger(__name__).warning(warning)


def _load_artifact(
    p: Path, threads: int, spin: bool = True, verify: bool = False, device: str | None = None
) -> Predictor:
    from nlpress.artifact import check_meta, verify_files
    from nlpress.models.loader import load_tokenizer

    raw = read_meta(p)
    meta = check_meta(p, raw)
    verify_files(p, raw, hashes=verify)
    device = _artifact_device(p, meta, device)
    tok = load_tokenizer(p)
    if tok.pad_token is None and tok.eos_token is not None:
        tok.pad_token = tok.eos_token
    common = dict(
        task=meta["task"],
        tokenizer=tok,
        input_names=meta["input_names"],
        name=meta["name"],
        id2label=meta["id2label"],
        max_length=meta["max_length"],
    )
    model_file = meta["model_file"]
    if meta["backend"] == "openvino":  # a missing runtime says how to install it, first
        from nlpress.runtime.openvino import require_openvino

        require_openvino("this OpenVINO artifact")
    if not model_file.is_file():
        raise NlpressError(f"{p} lacks its model file {model_file.name}; rebuild the artifact")
    if meta["backend"] == "onnxruntime":
        pred = OrtPredictor(model_file, threads=threads, spin=spin, device=device, **common)
        _warn_portability(raw, pred)
        return pred
    if meta["backend"] == "openvino":
        from nlpress.runtime.openvino import OpenVinoPredictor, warn_if_int8_saturates

        warn_if_int8_saturates(raw, p)
        return OpenVinoPredictor(model_file, threads=threads, precision=meta["precision"], **common)
    if threads:
        import torch

        torch.set_num_threads(threads)
    model = _torch_model(p, meta)
    from nlpress.models.task_module import TaskModule

    module = TaskModule(
        model, meta["task"], meta["input_names"], meta["pooling"], meta["normalize"]
    )
    return TorchPredictor(module, files=[model_file], threads=threads, device=device, **common)


def _torch_model(p: Path, meta: dict):
    """The PyTorch model of an artifact, in its weights format; a damaged file is a user error."""
    from nlpress.models.loader import auto_class, load_model, read_config

    fmt, auto = meta["weights_format"], auto_class(meta["task"])
    if fmt == "hf":  # a plain Hugging Face model (e.g. bf16), safetensors
        return load_model(p, meta["task"], dtype="auto").model
    read_config(p)  # the model is built from config.json: its sizes are checked first
    try:
        if fmt == "weight-only":  # int4/int8 codes + scales, safetensors
            from nlpress.quantize.woq_linear import load_weight_only

            return load_weight_only(p, auto)
        if fmt == "bitmask":  # pruned: sparse and/or head-pruned BERT
            from nlpress.prune.sparse_io import load_sparse

            return load_sparse(p, auto)
        from nlpress.quantize.torch_io import load_dynamic_int8

        return load_dynamic_int8(p, auto)
    except NlpressError:
        raise
    except Exception as e:  # safetensors, torch and transformers each raise their own types
        first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise NlpressError(
            f"could not load the model in {p} ({first}); the artifact is damaged: rebuild it"
        ) from e
