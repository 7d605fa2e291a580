"""Quantization primitives shared by every nlpress method (RTN, GPTQ, AWQ, SmoothQuant, static int8).

Pure torch functions, no model code: a :class:`QuantSpec` says *how* to quantize (bit width,
symmetric or affine, per-tensor / per-channel / per-group), :func:`compute_qparams` turns a range
into a scale and zero point, :func:`quantize` / :func:`dequantize` map between floats and integer
codes, and :func:`fake_quantize` does both in one call (what RTN is, and what GPTQ/AWQ measure).

The scheme is the affine map of Jacob et al. 2018 ("Quantization and Training of Neural Networks
for Efficient Integer-Arithmetic-Only Inference", arXiv:1712.05877), ``r = s * (q - z)``, with the
symmetric/asymmetric and granularity vocabulary of Nagel et al. 2021 ("A White Paper on Neural
Network Quantization", arXiv:2106.08295):

* **symmetric**: ``z = 0``, codes in the *restricted* range ``[-(2^(b-1)-1), 2^(b-1)-1]``
  (int8: [-127, 127]), ``s = max(|min|, |max|) / qmax``. The restricted range is what
  ONNX Runtime's quantizer uses for symmetric int8 weights (``ONNX_INT_TYPE_SYMMETRIC_RANGE``) and
  what torch's ``*_range_neg_127_to_127`` observers use; it keeps ``-w`` representable whenever
  ``w`` is. For 2 bits that is the ternary grid {-1, 0, 1}.
* **affine**: codes in ``[0, 2^b - 1]``, ``s = (max - min) / (2^b - 1)``,
  ``z = clamp(round(-min / s), 0, 2^b - 1)``.

Both widen the range to include 0 first, so zero (padding, ReLU outputs, pruned weights) is
exactly representable. The scale comes from the range and the number of *steps* in the grid;
the often-copied ``round(w * 2**bits / 255)`` is not a quantizer (it maps [-0.5, 0.5] onto three
codes). A granule whose scale would be 0 or subnormal (all zeros) gets scale 1 and zero point 0, as
ONNX Runtime's ``compute_scale_zp`` does, so nothing divides by zero and zeros dequantize to zeros.

Rounding follows the ONNX ``QuantizeLinear`` definition, ``q = saturate(round(x / s) + z)``:
divide (not multiply by ``1/s``), round half to even (``torch.round``), add the integer zero point,
then clamp. Ranges and scales are computed in float32 (float64 when the input is float64), so
fp16/bf16 weights do not lose precision in the scale; tests pass float64 to compare bit-exactly
with a NumPy reference.

Why plain functions and one spec: GPTQ quantizes one column at a time with group parameters
computed once, AWQ and GPTQ search clipping ranges (hence ``xmin``/``xmax`` overrides), static int8
feeds observer ranges. Each needs the same three formulas, and one tested copy is better than five.

Integer codes are stored in one byte: ``int8`` for symmetric, ``uint8`` for affine (every
supported width, 2..8 bits, fits). Zero points are ``int32`` (0 for symmetric). :func:`pack_int4`
stores two 4-bit codes per byte, low nibble first, the layout of ONNX Runtime's ``MatMulNBits``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from nlpress.errors import NlpressError

Granularity = Literal["tensor", "channel", "group"]
_GRANULARITIES = ("tensor", "channel", "group")
MIN_BITS, MAX_BITS = 2, 8


@dataclass(frozen=True)
class QuantSpec:
    """How to quantize one tensor. Defaults are int8 symmetric per-output-channel weights."""

    bits: int = 8  # 8 bits is lossless enough for almost every NLP weight; 2..8 supported
    symmetric: bool = True  # weights are near zero-mean; symmetric needs no zero-point math
    granularity: Granularity = (
        "channel"  # one scale per output row: cheap and much better than tensor
    )
    group_size: int | None = None  # required for "group"; groups run along the last (input) dim
    axis: int = (
        0  # channel axis for "channel": dim 0 is the output dim of a Linear weight (out, in)
    )

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise NlpressError(
                f"quantization bits must be an integer, got {self.bits!r}; use 2 to 8"
            )
        if not MIN_BITS <= self.bits <= MAX_BITS:
            raise NlpressError(
                f"unsupported bit width {self.bits}; use {MIN_BITS} to {MAX_BITS} bits (8 or 4 are common)"
            )
        if self.granularity not in _GRANULARITIES:
            raise NlpressError(
                f"unknown granularity {self.granularity!r}; use one of {', '.join(_GRANULARITIES)}"
            )
        if self.granularity == "group":
            if self.group_size is None:
                raise NlpressError(
                    "granularity 'group' needs a group_size; set group_size, e.g. 128 or 32"
                )
            if isinstance(self.group_size, bool) or not isinstance(self.group_size, int):
                raise NlpressError(f"group_size must be an integer, got {self.group_size!r}")
            if self.group_size <= 0:
                raise NlpressError(f"group_size must be positive, got {self.group_size}; try 128")
        elif self.group_size is not None:
            raise NlpressError(
                f"group_size={self.group_size} only applies to granularity 'group', not "
                f"{self.granularity!r}; set granularity='group' or drop group_size"
            )
        if isinstance(self.axis, bool) or not isinstance(self.axis, int):
            raise NlpressError(f"channel axis must be an integer, got {self.axis!r}")

    @property
    def qmin(self) -> int:
        return -(2 ** (self.bits - 1) - 1) if self.symmetric else 0

    @property
    def qmax(self) -> int:
        return 2 ** (self.bits - 1) - 1 if self.symmetric else 2**self.bits - 1

    @property
    def code_dtype(self) -> torch.dtype:
        return torch.int8 if self.symmetric else torch.uint8


def _work_dtype(t: Tensor) -> torch.dtype:
    """float64 stays float64; everything else (fp16, bf16, fp32, ints) is computed in float32."""
    return torch.float64 if t.dtype == torch.float64 else torch.float32


# group sizes that the int4 kernels run (PyTorch's CPU int4 kernel takes these; see
# nlpress.quantize.woq_linear): suggested first, since any other divisor runs at fp32 speed
KERNEL_GROUPS = (32, 64, 128, 256)


def _suggest_divisors(n: int, g: int) -> list[int]:
    """Up to three group sizes that divide ``n``, nearest to ``g``, kernel-friendly ones first
    (SmolLM2's 576 inputs: 32 and 64, not 96 and 144)."""
    divs = [d for d in KERNEL_GROUPS if n % d == 0]
    if not divs:
        divs = [d for i in range(1, math.isqrt(n) + 1) if n % i == 0 for d in (i, n // i)]
        divs = [d for d in set(divs) if d != 1]
    return sorted(sorted(divs, key=lambda d: abs(math.log(d / g)))[:3])


def _group_view(x: Tensor, spec: QuantSpec) -> Tensor:
    """(..., N) -> (..., N // G, G), after checking that G divides N."""
    if x.ndim == 0:
        raise NlpressError("group quantization needs a tensor with at least one dimension")
    n, g = x.shape[-1], spec.group_size
    assert g is not None  # guaranteed by QuantSpec
    if n % g:
        hint = ", ".join(str(d) for d in _suggest_divisors(n, g))
        raise NlpressError(
            f"group size {g} does not divide the layer's input size {n}; pick a divisor such as "
            f"{hint}, or set group_size to null (one scale per output channel)"
        )
    return x.reshape(*x.shape[:-1], n // g, g)


def _channel_axis(x: Tensor, spec: QuantSpec) -> int:
    if not -x.ndim <= spec.axis < max(x.ndim, 1):
        raise NlpressError(
            f"channel axis {spec.axis} is out of range for a {x.ndim}-D tensor; "
            "use axis 0 for the output channels of a Linear weight"
        )
    return spec.axis % x.ndim


def _granule_range(x: Tensor, spec: QuantSpec) -> tuple[Tensor, Tensor]:
    """min and max over each granule, in the shape the scale will have."""
    if spec.granularity == "tensor":
        return x.amin(), x.amax()  # () scalars
    if spec.granularity == "channel":
        axis = _channel_axis(x, spec)
        dims = [d for d in range(x.ndim) if d != axis]
        if not dims:  # 1-D: every element is its own channel
            return x, x
        return x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True)  # size 1 except axis
    xg = _group_view(x, spec)  # (..., N // G, G)
    return xg.amin(dim=-1, keepdim=True), xg.amax(dim=-1, keepdim=True)  # (..., N // G, 1)


def compute_qparams(
    x: Tensor,
    spec: QuantSpec,
    *,
    xmin: Tensor | None = None,
    xmax: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Scale and zero point for ``x`` under ``spec``.

    The range is min/max over each granule of ``x``; ``xmin`` / ``xmax`` override it (observer
    ranges, clipped ranges from an AWQ/GPTQ search) and must broadcast to the granule shape. Either
    may be given alone. Returns ``(scale, zero_point)``: scale float32 (float64 for float64 input),
    zero point int32, both shaped

    * ``"tensor"``: ``()``;
    * ``"channel"``: size of ``x`` along ``spec.axis``, 1 elsewhere, e.g. ``(out, 1)``;
    * ``"group"``: ``(..., N // group_size, 1)`` for ``x`` of shape ``(..., N)``.
    """
    wd = _work_dtype(x)
    lo, hi = _granule_range(x.detach(), spec)
    if xmin is not None:
        lo = torch.broadcast_to(torch.as_tensor(xmin, device=x.device), lo.shape)
    if xmax is not None:
        hi = torch.broadcast_to(torch.as_tensor(xmax, device=x.device), hi.shape)
    lo = lo.to(wd).clamp(max=0.0)  # the range always includes 0, so 0 is exactly representable
    hi = hi.to(wd).clamp(min=0.0)
    if not (torch.isfinite(lo).all() and torch.isfinite(hi).all()):
        raise NlpressError(
            "cannot quantize a tensor that contains NaN or inf; check the model's weights or "
            "calibration activations for overflow"
        )
    if spec.symmetric:
        scale = torch.maximum(-lo, hi) / spec.qmax
    else:
        scale = (hi - lo) / (spec.qmax - spec.qmin)
    degenerate = scale < torch.finfo(wd).tiny  # all-zero granule (or a subnormal range)
    scale = torch.where(degenerate, torch.ones_like(scale), scale)
    if spec.symmetric:
        zero_point = torch.zeros_like(scale, dtype=torch.int32)
    else:
        zp = torch.round(-lo / scale).clamp(spec.qmin, spec.qmax)
        zero_point = torch.where(degenerate, torch.zeros_like(zp), zp).to(torch.int32)
    return scale, zero_point


def quantize(x: Tensor, scale: Tensor, zero_point: Tensor, spec: QuantSpec) -> Tensor:
    """Integer codes ``clamp(round_half_even(x / scale) + zero_point, qmin, qmax)``, shaped like ``x``.

    ``int8`` for symmetric specs, ``uint8`` for affine ones.
    """
    wd = _work_dtype(scale)
    xw = x.detach().to(wd)
    if spec.granularity == "group":
        xw = _group_view(xw, spec)  # (..., N // G, G)
    q = torch.round(xw / scale) + zero_point.to(wd)
    q = q.clamp(spec.qmin, spec.qmax).to(spec.code_dtype)
    return q.reshape(x.shape)


def dequantize(
    q: Tensor,
    scale: Tensor,
    zero_point: Tensor,
    spec: QuantSpec,
    *,
    dtype: torch.dtype | None = None,
) -> Tensor:
    """``(q - zero_point) * scale``, shaped like ``q``, in ``dtype`` (default: the scale's dtype)."""
    wd = _work_dtype(scale)
    qw = q.to(wd)
    if spec.granularity == "group":
        qw = _group_view(qw, spec)  # (..., N // G, G)
    x = (qw - zero_point.to(wd)) * scale
    return x.reshape(q.shape).to(dtype or scale.dtype)


def fake_quantize(
    x: Tensor,
    spec: QuantSpec,
    *,
    xmin: Tensor | None = None,
    xmax: Tensor | None = None,
) -> Tensor:
    """``dequantize(quantize(x))`` with parameters from :func:`compute_qparams`, in ``x``'s dtype."""
    scale, zero_point = compute_qparams(x, spec, xmin=xmin, xmax=xmax)
    q = quantize(x, scale, zero_point, spec)
    return dequantize(q, scale, zero_point, spec, dtype=x.dtype)


def sqnr(ref: Tensor, approx: Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB, ``10 log10(sum ref^2 / sum (ref - approx)^2)``.

    Computed in float64. ``inf`` when the two are equal (including both all zero).
    """
    if ref.shape != approx.shape:
        raise ValueError(
            f"sqnr needs equal shapes, got {tuple(ref.shape)} and {tuple(approx.shape)}"
        )
    r = ref.detach().to(torch.float64)
    noise = (r - approx.detach().to(torch.float64)).square().sum().item()
    if noise == 0.0:
        return math.inf
    signal = r.square().sum().item()
    return 10.0 * math.log10(signal / noise) if signal > 0 else -math.inf


def pack_int4(q: Tensor) -> Tensor:
    """Pack 4-bit codes two per byte along the last dimension, low nibble first.

    ``q[..., 2k]`` goes to bits 0-3 and ``q[..., 2k+1]`` to bits 4-7 of ``out[..., k]`` (uint8),
    as ONNX Runtime's ``MatMulNBits`` quantizer packs its ``B`` input. Codes may be signed
    ([-8, 7], stored as two's complement nibbles; unpack with ``signed=True``) or unsigned
    ([0, 15]). An odd last dimension is padded with one zero nibble per row; :func:`unpack_int4`
    drops it again given the original shape.

    For ``MatMulNBits`` (unsigned codes, default zero point 8): a symmetric int4 weight ``(out, in)``
    with codes in [-7, 7] is ``pack_int4(q.to(torch.int16) + 8).reshape(out, in // G, G // 2)``.
    """
    if q.dtype.is_floating_point or q.dtype.is_complex or q.dtype == torch.bool:
        raise ValueError(f"pack_int4 needs integer codes, got {q.dtype}")
    if q.ndim == 0:
        raise ValueError("pack_int4 needs at least one dimension")
    if q.numel() and (int(q.min()) < -8 or int(q.max()) > 15):
        raise ValueError(
            f"int4 codes must lie in [-8, 7] or [0, 15], got [{int(q.min())}, {int(q.max())}]"
        )
    nib = (q.to(torch.int16) & 0xF).to(torch.uint8)
    if nib.shape[-1] % 2:
        nib = torch.cat([nib, nib.new_zeros(*nib.shape[:-1], 1)], dim=-1)
    return nib[..., 0::2] | (nib[..., 1::2] << 4)  # (..., ceil(n / 2))


def unpack_int4(
    packed: Tensor, shape: torch.Size | tuple[int, ...], *, signed: bool = False
) -> Tensor:
    """Inverse of :func:`pack_int4`: codes of ``shape``, uint8 in [0, 15] or int8 in [-8, 7]."""
    shape = tuple(shape)
    if packed.dtype != torch.uint8:
        raise ValueError(f"unpack_int4 needs uint8 bytes, got {packed.dtype}")
    if not shape:
        raise ValueError("unpack_int4 needs a shape with at least one dimension")
    expected = (*shape[:-1], (shape[-1] + 1) // 2)
    if tuple(packed.shape) != expected:
        raise ValueError(
            f"packed shape {tuple(packed.shape)} does not match {expected} for {shape}"
        )
    nib = torch.stack([packed & 0xF, packed >> 4], dim=-1)  # (..., ceil(n / 2), 2)
    nib = nib.reshape(*shape[:-1], 2 * expected[-1])[..., : shape[-1]]
    if not signed:
        return nib.contiguous()
    s = nib.to(torch.int8)
    return torch.where(s >= 8, s - 16, s)
