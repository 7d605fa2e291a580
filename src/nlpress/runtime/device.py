"""Which device a model runs on: ``cpu`` (the default) or ``cuda``, and the checks for it.

Why explicit: a speedup is measured against a baseline on the same device, so nlpress never
moves a model to a GPU on its own (ONNX Runtime would, when ``onnxruntime-gpu`` is installed,
and the baseline would stay on the CPU). ``--device cuda`` runs PyTorch artifacts and the
PyTorch baseline with PyTorch CUDA, and ONNX artifacts on ONNX Runtime's
``CUDAExecutionProvider``; the device is recorded in the artifact's ``nlpress.json`` and is the
device ``nlpress.load`` uses unless told otherwise. OpenVINO artifacts run on its CPU plugin
only (its GPU plugin is for Intel GPUs). Every check fails before any slow work, with one line.
"""

from __future__ import annotations

from collections.abc import Sequence

from nlpress.errors import NlpressError

DEVICES = ("cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"


def check_device_name(device: str) -> str:
    if device not in DEVICES:
        raise NlpressError(f"unknown device {device!r}; use one of: {', '.join(DEVICES)}")
    return device


def ort_providers(device: str, available: Sequence[str]) -> list[str]:
    """ONNX Runtime execution providers for ``device``, given ORT's ``available`` ones.

    cpu: the CPU provider only, even where a CUDA one is installed. cuda: CUDA first, the CPU
    provider after it for the ops CUDA has no kernel for (ORT places each node on the first
    provider that can run it)."""
    check_device_name(device)
    if device == "cpu":
        return [CPU_PROVIDER]
    if CUDA_PROVIDER not in available:
        raise NlpressError(
            "--device cuda: this ONNX Runtime has no CUDAExecutionProvider (providers: "
            f"{', '.join(available) or 'none'}); install onnxruntime-gpu on a machine with an "
            "NVIDIA GPU, or use --device cpu"
        )
    return [CUDA_PROVIDER, CPU_PROVIDER]


def check_torch_cuda() -> None:
    """Raise unless PyTorch can run on a CUDA GPU here."""
    import torch

    if not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
        raise NlpressError(
            f"--device cuda: PyTorch sees no CUDA GPU on this machine (torch {torch.__version__}, "
            f"{build}); run on a machine with an NVIDIA GPU and a CUDA build of torch, "
            "or use --device cpu"
        )


def check_device(device: str, backend: str = "pytorch") -> None:
    """Raise unless a model on ``backend`` can run on ``device`` on this machine."""
    check_device_name(device)
    if device == "cpu":
        return
    if backend == "openvino":
        raise NlpressError(
            "--device cuda: OpenVINO artifacts run on OpenVINO's CPU plugin only; "
            "use --device cpu, or a PyTorch or ONNX recipe for the GPU"
        )
    check_torch_cuda()  # first: no GPU at all is the likelier problem, and the baseline needs it
    if backend == "onnxruntime":
        import onnxruntime as ort

        ort_providers(device, ort.get_available_providers())


def recipe_backend(steps) -> str:
    """The backend a recipe's artifact runs on: the last runtime-producing step decides."""
    from nlpress.step_configs import (
        ExportOnnxConfig,
        ExportOpenVinoConfig,
        QuantizeDynamicInt8Config,
        SelectBackendConfig,
    )

    backend = "pytorch"
    for s in steps:
        if isinstance(s, (ExportOpenVinoConfig, SelectBackendConfig)):
            backend = "openvino" if isinstance(s, ExportOpenVinoConfig) else "auto"
        elif isinstance(s, ExportOnnxConfig) or (
            isinstance(s, QuantizeDynamicInt8Config) and s.backend == "onnxruntime"
        ):
            backend = "onnxruntime" if backend == "pytorch" else backend
    return backend


def check_recipe_device(steps, device: str) -> None:
    """Before any work: can this recipe's artifact, and the PyTorch baseline, run on ``device``?"""
    check_device_name(device)
    if device == "cpu":
        return
    backend = recipe_backend(steps)
    if backend == "auto":
        raise NlpressError(
            "--device cuda: select-backend measures CPU runtimes (ONNX Runtime, OpenVINO) "
            "against each other; use --device cpu, or a PyTorch or ONNX recipe for the GPU"
        )
    check_device(device, backend)


def isa_record() -> dict:
    """The CPU facts a build or a backend choice depends on: int8 kernel and ISA flags present."""
    from nlpress.bench.env import environment
    from nlpress.runtime.isa import int8_kernel

    isa = environment().get("isa") or {}
    return {"int8_kernel": int8_kernel(), "flags": [k for k, v in isa.items() if v]}


def check_recipe_runtimes(steps, device: str) -> None:
    """Before any work: the recipe's device, and OpenVINO/NNCF where its steps need them."""
    from nlpress.step_configs import (
        ExportOpenVinoConfig,
        QuantizeOpenVinoInt8Config,
        SelectBackendConfig,
    )

    check_recipe_device(steps, device)
    from nlpress.runtime.openvino import require_nncf, require_openvino
    from nlpress.step_configs import STEP_NAMES

    for s in steps:
        name = STEP_NAMES[type(s)]
        if isinstance(s, ExportOpenVinoConfig):
            require_openvino(f"recipe step {name}")
        elif isinstance(s, QuantizeOpenVinoInt8Config):
            require_nncf(f"recipe step {name}")
        elif isinstance(s, SelectBackendConfig) and any(
            c.startswith("openvino") for c in s.candidates
        ):
            require_nncf(f"recipe step {name} (its OpenVINO candidates)")
