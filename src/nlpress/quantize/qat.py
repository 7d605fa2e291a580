"""Quantization-aware training for dynamic int8: fine-tune with the int8 rounding in the loop.

Post-training int8 of MiniLM keeps a mean cosine of 0.992-0.994 to fp32 (the ISA changes the last
digit); the error is rounding that the weights never saw. QAT (Jacob et al. 2018, "Quantization
and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference"; for BERT, Zafrir
et al. 2019, "Q8BERT") trains with *fake* quantization: each linear layer's weight and input are
rounded to int8 and back in the forward pass, and the straight-through estimator passes gradients
through the rounding as if it were the identity. The loss is distillation from the fp32 model
(its sentence embeddings or logits; unlabelled text is enough), so the weights move to where
int8 rounding costs the least fidelity.

Why the fake quantizers are exactly ORT's dynamic int8: the trained fp32 weights are exported
and quantized by the ordinary ``export-onnx`` + ``quantize-dynamic-int8`` steps, so the artifact
runs ORT's plain int8 kernels at plain int8 speed. That only pays if training rounded the same
way: symmetric int8 per output channel for weights (ORT's per-channel ``QInt8`` weights, scale
max|w_row| / 127), and for activations ORT's ``DynamicQuantizeLinear``: uint8, one scale and zero
point per tensor per call, over a range that always includes 0. The fake quantizers live in
parametrizations and forward pre-hooks that are removed after training, leaving plain
``nn.Linear`` layers with trained weights.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor, nn

log = logging.getLogger(__name__)


class _RoundSTE(torch.autograd.Function):
    """round() forward, identity backward (the straight-through estimator)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return torch.round(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return grad


def fake_quant_weight(w: Tensor) -> Tensor:
    """Symmetric int8 per output channel (rows of a Linear weight), as ORT stores QInt8 weights."""
    scale = w.detach().abs().amax(dim=1, keepdim=True).clamp_min(1e-12) / 127.0  # (out, 1)
    return torch.clamp(_RoundSTE.apply(w / scale), -127, 127) * scale


def fake_quant_activation(x: Tensor) -> Tensor:
    """uint8 with one scale and zero point per tensor, the range widened to include 0, rounded
    as ORT's ``DynamicQuantizeLinear``: scale = (max - min) / 255, zero point = round(-min / scale)."""
    lo = torch.clamp(x.detach().amin(), max=0.0)
    hi = torch.clamp(x.detach().amax(), min=0.0)
    scale = torch.clamp((hi - lo) / 255.0, min=1e-12)
    zp = torch.clamp(torch.round(-lo / scale), 0, 255)
    q = torch.clamp(_RoundSTE.apply(x / scale) + zp, 0, 255)
    return (q - zp) * scale


class _WeightFQ(nn.Module):
    def forward(self, w: Tensor) -> Tensor:
        return fake_quant_weight(w)


def _input_fq(module: nn.Module, args: tuple) -> tuple:
    return (fake_quant_activation(args[0]), *args[1:])


def linear_names(model: nn.Module) -> list[str]:
    """The linear layers ORT's dynamic int8 quantizes: every ``nn.Linear`` except a task head
    that stays float (none here: ORT quantizes classifier heads too)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]


class FakeQuant:
    """Insert the fake quantizers into ``model``'s linears; ``remove()`` leaves plain Linears."""

    def __init__(self, model: nn.Module, names: list[str]):
        from torch.nn.utils import parametrize

        self.model, self.names, self.hooks = model, list(names), []
        for n in self.names:
            lin = model.get_submodule(n)
            parametrize.register_parametrization(lin, "weight", _WeightFQ())
            self.hooks.append(lin.register_forward_pre_hook(_input_fq))

    def remove(self) -> None:
        from torch.nn.utils import parametrize

        for h in self.hooks:
            h.remove()
        for n in self.names:
            lin = self.model.get_submodule(n)
            if parametrize.is_parametrized(lin, "weight"):
                # keep the trained float weight, not its rounded value: ORT rounds it on export
                parametrize.remove_parametrizations(lin, "weight", leave_parametrized=False)
        self.hooks = []


def _silence_dropout(model: nn.Module) -> list[tuple[nn.Module, float]]:
    """Set every dropout's rate to 0 for training; ``(module, rate)`` pairs to restore after."""
    saved = [(m, m.p) for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)]
    for m, _ in saved:
        m.p = 0.0
    return saved


def step_qat(st, cfg) -> dict:
    """Recipe step ``qat``: train the model with int8 fake quantization, then drop the quantizers."""
    import copy

    from nlpress.prune.recover import _run, _train_info

    if st.torch_model is None:
        st.torch_model = copy.deepcopy(st.current())  # the baseline (the teacher) stays fp32
    names = linear_names(st.torch_model)
    fq = FakeQuant(st.torch_model, names)
    quiet = [] if cfg.dropout else _silence_dropout(st.torch_model)
    try:
        st.torch_model, result = _run(st, cfg, [])
    finally:
        fq.remove()
        for m, p in quiet:
            m.p = p
    st.weights_format = "hf"
    info = {
        **_train_info(cfg, result),
        "fake_quantized_linears": len(names),
        "dropout": cfg.dropout,
    }
    log.info("quantization-aware training: %d steps over %d linears", result.steps, len(names))
    return info
