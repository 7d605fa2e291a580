"""The typed config of every recipe step: one strict pydantic class per step name.

``STEP_CONFIGS`` maps each step name to its class (the only dispatch table). Every class
forbids unknown keys and bounds its values, so a typo or an out-of-range value is an error that
names the step and the key before any model is loaded. Each default says why it is the default.
Recipes (ordering, YAML, built-ins, ``--set``) are in :mod:`nlpress.recipe`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)


class StepConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ExportOnnxConfig(StepConfig):
    opset: int = Field(17, ge=14, le=21)  # 17 has LayerNormalization; ORT's fusions know it well
    # TorchScript exporter through a named-input wrapper: matched PyTorch exactly and ran faster
    # under ONNX Runtime than the dynamo exporter on MiniLM (DESIGN.md).
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    # eager attention exports as plain MatMul/Softmax, which ORT's optimizer fuses into Attention;
    # SDPA exports in a shape it does not recognise.
    attn_implementation: Literal["eager", "sdpa"] = "eager"
    validate_export: bool = True  # run ORT and PyTorch on a real batch: a wrong export fails here
    atol: float = Field(1e-4, gt=0, le=1.0)  # max |ORT - PyTorch| allowed on the validation batch


class OrtOptimizeConfig(StepConfig):
    # session: ONNX Runtime's own graph optimizer, run once at build time at the portable
    #   "extended" level (LayerNorm/SkipLayerNorm/GELU/MatMul+scale fusions, int8 MatMul+dequantize
    #   fusions) and saved, so the artifact loads already fused. Measured fastest on CPU (README).
    # transformers: onnxruntime.transformers' optimizer, which also fuses each attention block
    #   into one Attention op. On this CPU it measured 5-25% slower than session mode, fp32 and
    #   int8 alike; it is there for GPUs and for comparison. It must run before quantization.
    mode: Literal["session", "transformers"] = "session"
    level: Literal["basic", "extended"] = "extended"  # "all" would bake in this CPU's layouts
    opt_level: Literal[0, 1] = 0  # transformers mode: 0 = its fusions only


class QuantizeDynamicInt8Config(StepConfig):
    # onnxruntime: int8 ONNX graph on ORT's MLAS kernels (measured fastest on CPU); torch: PyTorch
    # dynamic int8 linears, stored as int8 safetensors, for users who stay in PyTorch
    backend: Literal["onnxruntime", "torch"] = "onnxruntime"
    per_channel: bool = True  # one scale per output channel: much lower error for ~free
    # int8 weights with uint8 activations (U8S8) take MLAS's fast x86 kernels; uint8 (U8U8) measured
    # 0.61x as fast on AVX-512 VNNI
    weight_type: Literal["int8", "uint8"] = "int8"
    reduce_range: bool = False  # 7-bit weights: only for CPUs without VNNI that saturate
    # The word-embedding table is half of a MiniLM's bytes; quantizing it (per row) is what gets
    # the artifact to a quarter of fp32.
    quantize_embeddings: bool = True
    # Attention's own MatMuls (QK^T and attention x V, both inputs activations) in int8 too, as
    # optimum does (48 MatMuls of MiniLM instead of 36). Off by default: ORT's quantize_dynamic
    # leaves them in float (MatMulConstBOnly), and the gain is unmeasured on a quiet machine yet.
    quantize_attention: bool = False
    ignore: list[str] = Field(default_factory=list)  # node/module names or "re:" patterns
    # Mixed precision (nlpress.quantize.mixed): None quantizes every selected layer; a value keeps
    # the most fidelity-sensitive layers in fp32 until the measured fidelity on held-out texts
    # (mean cosine for embeddings, top-1 agreement for classifiers and LMs) reaches it.
    min_fidelity: float | None = Field(None, gt=0.0, le=1.0)
    # texts each per-layer sensitivity run sees: 2 x (layers + 1) quantized models are measured
    # on them, so few enough to take minutes on MiniLM; the ranking only has to order layers
    # whose effects differ several-fold, and the search re-measures on held-out texts anyway
    sensitivity_samples: int = Field(64, ge=4, le=10_000)
    # held-out texts (disjoint from the sensitivity ones) that the search's fidelity is measured on
    holdout_samples: int = Field(256, ge=4, le=100_000)
    # auto: rank by both "quantized alone" and "kept fp32 alone", search both, keep the smaller set
    ranking: Literal["auto", "quantize-one", "keep-one"] = "auto"


class QuantizeStaticInt8Config(StepConfig):
    # minmax: the observed range, no outlier clipping; entropy (KL, TensorRT-style) and percentile
    # clip activation outliers from histograms, trading a little range for resolution.
    method: Literal["minmax", "percentile", "entropy"] = "minmax"
    # percentile method only: the share of |activation| values kept inside the range. ORT's own
    # default; at 99.99 and below MiniLM's few large activations get clipped hard.
    percentile: float = Field(99.999, gt=90.0, le=100.0)
    # calibration texts used: enough for stable ranges on a sentence encoder, about a minute of
    # calibration for MiniLM on 2 cores. Fewer than 8 give ranges that depend on the batch.
    num_samples: int = Field(256, ge=8, le=100_000)
    per_channel: bool = True  # one weight scale per output channel: much lower error for ~free
    # uint8 activations with int8 weights (U8S8) is what ORT's docs recommend for x86 CPUs, with
    # or without VNNI: MLAS's fast x86 int8 GEMM kernels take unsigned activations.
    activation_type: Literal["uint8", "int8"] = "uint8"
    reduce_range: bool = False  # 7-bit weights: only for CPUs without VNNI that saturate
    # Kept in float for fidelity: LayerNorm (its statistics amplify rounding error), the
    # embedding lookup (large table of small values) and the attention-mask Where. Softmax and
    # GELU are never quantized by ORT's QDQ quantizer; the linear layers and attention MatMuls
    # are what carry the time.
    exclude_op_types: list[str] = Field(
        default_factory=lambda: ["LayerNormalization", "Gather", "GatherElements", "Where"]
    )
    # The FFN down-projection reads GELU outputs, whose long tail a per-tensor uint8 range cannot
    # hold: on all-MiniLM-L6-v2 quantizing it dropped mean cosine to fp32 from 0.991 to 0.944.
    float_after_gelu: bool = True
    # Attention's own MatMuls (QK^T, attention x V) with calibrated int8 inputs: ORT's static
    # QDQ default, kept; false leaves them in float (ORT's MatMulConstBOnly)
    quantize_attention: bool = True
    ignore: list[str] = Field(default_factory=list)  # node names or "re:" patterns
    # Mixed precision (nlpress.quantize.mixed): None quantizes every selected layer; a value keeps
    # the most fidelity-sensitive layers in fp32 until the measured fidelity on held-out texts
    # (mean cosine for embeddings, top-1 agreement for classifiers and LMs) reaches it.
    min_fidelity: float | None = Field(None, gt=0.0, le=1.0)
    # texts each per-layer sensitivity run sees: 2 x (layers + 1) quantized models are measured
    # on them, so few enough to take minutes on MiniLM; the ranking only has to order layers
    # whose effects differ several-fold, and the search re-measures on held-out texts anyway
    sensitivity_samples: int = Field(64, ge=4, le=10_000)
    # held-out texts (disjoint from the sensitivity ones) that the search's fidelity is measured on
    holdout_samples: int = Field(256, ge=4, le=100_000)
    # auto: rank by both "quantized alone" and "kept fp32 alone", search both, keep the smaller set
    ranking: Literal["auto", "quantize-one", "keep-one"] = "auto"


class ExportOpenVinoConfig(StepConfig):
    """The model as OpenVINO IR (model.xml + model.bin), run on OpenVINO's CPU plugin."""

    # pytorch: openvino.convert_model on the PyTorch model (needs no ONNX step); onnx: read the
    #   export-onnx output. Both matched PyTorch within 3e-7 on the tiny test models. onnx must
    #   be the plain export: ort-optimize writes ONNX Runtime's own fused ops, which OpenVINO
    #   cannot read.
    source: Literal["pytorch", "onnx"] = "pytorch"
    # f32: the model's own precision on every CPU (OpenVINO would pick bf16 by itself on AMX
    # CPUs); bf16 is faster where the CPU has AVX-512 BF16 or AMX, at a fidelity cost
    precision: Literal["f32", "bf16"] = "f32"
    # run the IR on a sample batch and compare it with PyTorch (atol below): a wrong conversion
    # fails here, not in the user's service
    validate_export: bool = True
    # max |OpenVINO - PyTorch| on the validation batch, as for export-onnx (fp32 matched within
    # 3e-7); raise it with precision bf16, whose rounding alone is about 4e-3 relative
    atol: float = Field(1e-4, gt=0, le=1.0)


class QuantizeOpenVinoInt8Config(StepConfig):
    """OpenVINO int8 by NNCF (nlpress.quantize.openvino)."""

    # static: NNCF post-training quantization (nncf.quantize), int8 weights and activations with
    #   ranges calibrated on --calib texts; weights: NNCF weight compression
    #   (nncf.compress_weights), int8 weights with fp32 compute, no calibration. On a Zen 3,
    #   static reached mean / min cosine 0.9959 / 0.987 on MiniLM, weights 0.9996 / 0.9989 (#13).
    mode: Literal["static", "weights"] = "static"
    # mixed: symmetric weights, asymmetric activations; NNCF's own choice for transformers, whose
    # activations (after GELU, softmax) are far from symmetric
    preset: Literal["mixed", "performance"] = "mixed"
    # calibration texts, one per NNCF sample: NNCF's default subset_size of 300
    num_samples: int = Field(300, ge=8, le=100_000)
    fast_bias_correction: bool = True  # NNCF's default; the full one is far slower
    # 7-bit weights (NNCF's overflow fix) where int8 pair sums saturate. auto: every layer on
    # CPUs without VNNI (nlpress.runtime.isa.u8s8_saturates), none on VNNI CPUs, which
    # accumulate in int32 exactly. Measured on an AVX2-only Zen 3, NNCF's own default
    # (first_layer) left the tiny classifier / Llama at 17.8 / 16.8 dB SQNR, all layers at
    # 26.2 / 27.8 dB. The artifact records the choice and warns when loaded on a CPU that
    # saturates after being tuned for one that does not.
    overflow_fix: Literal["auto", "first_layer", "enable", "disable"] = "auto"
    # weights mode: asymmetric int8 (a zero point per channel) is NNCF's default and the more
    # accurate of its two int8 formats
    symmetric_weights: bool = False


SELECT_CANDIDATES = ("onnxruntime-int8", "openvino-int8", "openvino-int8-weights")


class SelectBackendConfig(StepConfig):
    """Build int8 candidates on several runtimes, keep the fastest faithful one (bench.select)."""

    # onnxruntime-int8: quantize-dynamic-int8 then ort-optimize (the int8 recipe);
    # openvino-int8 / openvino-int8-weights: quantize-openvino-int8 in static / weights mode.
    # All three by default: which one is fastest at the fidelity bar depends on the CPU.
    candidates: list[Literal["onnxruntime-int8", "openvino-int8", "openvino-int8-weights"]] = Field(
        default_factory=lambda: list(SELECT_CANDIDATES), min_length=1
    )
    # The fidelity bar, measured against the fp32 PyTorch model. Embeddings: the mean /
    # minimum cosine (0.995 / 0.98: ORT's AVX2 int8 of MiniLM, 0.9922 / 0.9761, fails it).
    min_cosine_mean: float = Field(0.995, gt=0.0, le=1.0)
    # the worst sentence counts too: a mean can hide a few badly damaged embeddings
    min_cosine_min: float = Field(0.98, gt=0.0, le=1.0)
    # Classifiers and LMs: top-1 agreement. int8 that flips more than 1 prediction in 100 shows up
    # in accuracy; that is a fidelity loss a user should choose, not get by default.
    min_top1_agreement: float = Field(0.99, gt=0.0, le=1.0)
    # texts the fidelity is measured on (the evaluation texts): 1,000 gives a minimum cosine that
    # no longer moves much, in well under a minute per candidate for MiniLM
    fidelity_samples: int = Field(1000, ge=8, le=100_000)
    # the interleaved benchmark that decides: 5 rounds of batch 32 at the data's lengths (what
    # users run), fewer rounds than the report's own 7 since it only has to rank
    rounds: int = Field(5, ge=1, le=100)
    # the report's throughput batch, so the winner is the one that is fastest where it is shown
    batch_size: int = Field(32, ge=1, le=4096)
    # None: pad each batch to its longest text, as users' batches are; a number fixes the shape
    seq_len: int | None = Field(None, ge=2, le=8192)
    # when no candidate meets the bar: keep the most faithful one (and say so), or fail
    if_none_pass: Literal["most-faithful", "error"] = "most-faithful"
    # the ORT candidate's settings: the int8 recipe's by default (per channel, embeddings too)
    onnxruntime: QuantizeDynamicInt8Config = Field(default_factory=QuantizeDynamicInt8Config)
    # the OpenVINO candidates' settings (their mode is set by the candidate's name)
    openvino: QuantizeOpenVinoInt8Config = Field(default_factory=QuantizeOpenVinoInt8Config)

    @field_validator("candidates")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"candidates repeat a name: {v}")
        return v

    @field_validator("onnxruntime")
    @classmethod
    def _plain_ort(cls, v: QuantizeDynamicInt8Config) -> QuantizeDynamicInt8Config:
        if v.backend != "onnxruntime" or v.min_fidelity is not None:
            raise ValueError("the onnxruntime candidate takes backend onnxruntime, no min_fidelity")
        return v


class CastConfig(StepConfig):
    # bf16 runs on CPUs with AVX-512 BF16 or AMX (oneDNN kernels; about 2x fp32 GEMM speed on
    # this project's CPU); fp16 is for GPUs only, where it is the native fast path.
    dtype: Literal["bf16", "fp16"] = "bf16"


class QuantizeWeightOnlyConfig(StepConfig):
    """Weight-only int8/int4 of the blocks' linears (nlpress.quantize.weight_only)."""

    # rtn: round-to-nearest, no data; gptq (Frantar et al. 2022) and awq (Lin et al. 2023):
    # calibrated block by block on --calib (or the evaluation text)
    method: Literal["rtn", "gptq", "awq"] = "rtn"
    bits: Literal[4, 8] = 4  # the widths with a storage layout and a measured runtime path
    # 128: the group size of the GPTQ/AWQ papers and of most int4 checkpoints; None (null) for one
    # scale per output channel. It must divide every layer's input size (SmolLM2's 576 takes 64).
    group_size: int | None = Field(128, ge=8, le=8192)
    # min-max with a zero point: int4 codes are too few to waste one on symmetry (GPTQ's default)
    symmetric: bool = False
    num_samples: int = Field(128, ge=1, le=4096)  # GPTQ's 128 calibration windows
    seq_len: int = Field(512, ge=8, le=8192)  # tokens per causal-LM calibration window
    percdamp: float = Field(0.01, gt=0.0, le=1.0)  # GPTQ: damping, fraction of mean diag(H)
    block_size: int = Field(128, ge=1, le=4096)  # GPTQ's lazy-batch width; the result is the same
    # GPTQ: columns by decreasing H_jj, with static groups (no runtime cost), and each group's
    # range by the reference quantizer's mse grid search. On SmolLM2 int4 g64 (128 x 512
    # calibration, 16 x 2048 WikiText-2 tokens) plain GPTQ kept 15% of RTN's added perplexity
    # off, act_order 46%, both 51% (benchmarks/llm_weight_only.py)
    act_order: bool = True
    range_search: bool = True  # GPTQ: the mse grid search of each group's range (see act_order)
    awq_grid: int = Field(20, ge=1, le=100)  # AWQ: alphas 0, 1/grid, ... as in the reference code
    awq_duo_scaling: bool = False  # AWQ: AutoAWQ's s = x^a / w^(1-a) instead of the paper's x^a
    awq_clip: bool = True  # AWQ: the reference code's per-group clipping search after scaling
    targets: list[str] | None = None  # None: every nn.Linear inside the blocks
    ignore: list[str] = Field(default_factory=list)  # module names or "re:" patterns


class SmoothQuantConfig(StepConfig):
    """SmoothQuant (Xiao et al. 2022): activation outliers folded into weights, before int8."""

    alpha: float = Field(0.5, ge=0.0, le=1.0)  # the paper's default migration strength
    num_samples: int = Field(64, ge=1, le=4096)  # per-channel maxima settle after a few dozen
    seq_len: int = Field(512, ge=8, le=8192)  # tokens per causal-LM calibration window


# Pruning targets by default: the linear layers inside the transformer blocks (BERT
# "encoder.layer.N...", Llama "model.layers.N..."); embeddings, poolers and task heads are few
# weights that every output depends on.
BLOCK_LINEARS = [r"re:(.*\.)?(layer|layers)\.\d+\..*"]


class PruneMagnitudeConfig(StepConfig):
    sparsity: float = Field(0.5, ge=0.0, lt=1.0)  # share of the targeted weights set to zero
    norm: Literal["l1", "l2"] = "l1"  # |w| or w^2: same ranking, both offered for parity
    # layer: every targeted layer loses the same share (no layer is emptied); global: one
    # threshold across layers, which prunes layers with small weights harder; row: every output
    # neuron loses the same share (Wanda's comparison group).
    scope: Literal["layer", "global", "row"] = "layer"
    targets: list[str] = Field(default_factory=lambda: list(BLOCK_LINEARS))  # the blocks' linears
    ignore: list[str] = Field(default_factory=list)  # module names or "re:" patterns
    # sparse: bitmask + non-zero values (size falls with sparsity); dense: plain safetensors
    storage: Literal["sparse", "dense"] = "sparse"


class PruneNMConfig(StepConfig):
    # keep n of every m consecutive weights along the input dimension: 2:4 is the pattern
    # NVIDIA sparse tensor cores run (m is declared first so n can be checked against it)
    m: int = Field(4, ge=2)
    n: int = Field(2, ge=1)  # weights kept in every group of m (must be below m)
    norm: Literal["l1", "l2"] = "l1"  # |w| or w^2: same ranking, both offered for parity
    targets: list[str] = Field(default_factory=lambda: list(BLOCK_LINEARS))  # the blocks' linears
    ignore: list[str] = Field(default_factory=list)  # module names or "re:" patterns
    # sparse: bitmask + non-zero values (size falls with sparsity); dense: plain safetensors
    storage: Literal["sparse", "dense"] = "sparse"

    @field_validator("n")
    @classmethod
    def _n_below_m(cls, n: int, info: ValidationInfo) -> int:
        m = info.data.get("m", 4)
        if n >= m:
            raise ValueError(f"N:M needs n < m, got {n}:{m}; e.g. n: 2, m: 4")
        return n


class PruneStructuredConfig(StepConfig):
    # The default: a third of the heads and half the FFN neurons of every layer; the
    # same count per layer, because transformers configs hold one head count and one width.
    head_fraction: float = Field(1 / 3, ge=0.0, le=1.0)  # 1.0 is refused with a clear error
    ffn_fraction: float = Field(0.5, ge=0.0, lt=1.0)  # share of each layer's FFN neurons removed
    layer_fraction: float = Field(0.0, ge=0.0, lt=1.0)  # whole blocks, ranked by the score
    drop_layers: list[int] = Field(default_factory=list)  # or name the blocks to drop
    # magnitude: L2 norm of each unit's weights, no data needed; activation: mean output
    # magnitude of each unit on calibration texts times its output weights' norm (layers: 1 -
    # cosine of a block's input and output, ShortGPT's block influence).
    score: Literal["magnitude", "activation"] = "magnitude"
    num_samples: int = Field(64, ge=8, le=10_000)  # calibration texts for score: activation

    @model_validator(mode="after")
    def _layers_need_activations(self):
        if self.layer_fraction > 0 and self.score == "magnitude":
            raise ValueError(
                "layer_fraction ranks blocks by their effect on calibration data: set "
                "score: activation, or name the blocks with drop_layers"
            )
        return self


class _TrainStepFields(StepConfig):
    """Training settings shared by the recipe steps that fine-tune (prune-gradual, recover)."""

    # labelled training file; None: the --data file (evaluation then uses the same rows, so pass
    # a separate training file for honest numbers)
    data: str | None = None
    epochs: int = Field(1, ge=1)  # one pass: recovery and gradual pruning on a CPU budget
    max_steps: int | None = Field(None, ge=1)  # optimizer steps; caps the epochs
    batch_size: int = Field(32, ge=1)  # BERT fine-tuning's usual batch
    lr: float = Field(5e-5, gt=0)  # 5e-5: within BERT's recommended 2e-5..5e-5
    max_length: int = Field(128, ge=8)  # tokens per text: SST-2/STS sentences fit in 128
    # word embeddings: a third to a half of a small encoder; frozen unless they are pruned
    freeze_embeddings: bool = False
    seed: int = 0  # data order and dropout: the same seed gives the same weights
    temperature: float = Field(2.0, gt=0)  # distill: softening as in DistilBERT
    alpha: float = Field(0.5, ge=0, le=1)  # distill: soft vs hard-label weight (1: no labels)


class PruneGradualConfig(_TrainStepFields):
    """Gradual magnitude pruning during fine-tuning (Zhu & Gupta 2017; nlpress.prune.gradual)."""

    sparsity: float = Field(0.9, ge=0.0, lt=1.0)  # final sparsity s_f, reached exactly
    initial_sparsity: float = Field(0.0, ge=0.0, lt=1.0)  # s_i at the first pruning step
    # pruning runs from start to end (fractions of the training steps), then the last quarter
    # trains at the final sparsity so the network recovers (the paper's schedule shape)
    start: float = Field(0.0, ge=0.0, lt=1.0)
    end: float = Field(0.75, gt=0.0, le=1.0)  # see start; the last quarter trains at s_f
    frequency: int = Field(10, ge=1)  # dt: steps between mask updates (paper: 100-1000 at scale)
    method: Literal["finetune", "distill"] = "finetune"  # labels, or the unpruned model's outputs
    norm: Literal["l1", "l2"] = "l1"  # |w| or w^2: same ranking, both offered for parity
    # layer: every targeted layer ends at the same sparsity; global: one threshold across layers
    scope: Literal["layer", "global"] = "layer"
    targets: list[str] = Field(default_factory=lambda: list(BLOCK_LINEARS))  # the blocks' linears
    ignore: list[str] = Field(default_factory=list)  # module names or "re:" patterns
    storage: Literal["sparse", "dense"] = "sparse"  # sparse: bitmask, size falls with sparsity

    @field_validator("end")
    @classmethod
    def _end_after_start(cls, end: float, info: ValidationInfo) -> float:
        if end <= info.data.get("start", 0.0):
            raise ValueError(f"end ({end}) must be after start ({info.data.get('start')})")
        return end


class RecoverConfig(_TrainStepFields):
    """Fine-tuning after pruning: labels, or distillation from the unpruned model."""

    # distill: the unpruned model is the teacher, needs no labels and kept accuracy best in
    # the papers on pruned BERTs (e.g. Sanh et al. 2020, Lagunas et al. 2021)
    method: Literal["distill", "finetune"] = "distill"


class QatConfig(_TrainStepFields):
    """Quantization-aware training for dynamic int8 (nlpress.quantize.qat); needs a later
    quantize-dynamic-int8 step, which then quantizes the trained weights as usual."""

    # distill: the fp32 model is the teacher, so unlabelled text is enough (embeddings, LMs' kin)
    method: Literal["distill", "finetune"] = "distill"
    # QAT moves trained weights a little: BERT QAT papers fine-tune at 1e-5..2e-5 (Q8BERT), below
    # the 5e-5 of full fine-tuning, so the fp32 solution is kept while rounding error is trained out
    lr: float = Field(2e-5, gt=0)
    # optimizer steps: on MiniLM a few hundred steps of 32 sentences take minutes on 2 cores
    max_steps: int | None = Field(300, ge=1)
    # QAT distils the fp32 model's own outputs, so dropout (p=0.1 in BERT) only adds noise to the
    # target being matched and pulls the weights away from it: off unless asked for
    dropout: bool = False


class DistillStudentConfig(_TrainStepFields):
    """A student made by keeping some of the model's layers, distilled from the original
    (DistilBERT's initialisation; logits, or sentence embeddings for an encoder): nlpress.train."""

    # a count spreads the kept layers evenly (3 of 6: 0, 2, 4; for sentence embeddings from
    # the first to the last: 0, 3, 5); a list names them (0-based)
    layers: int | list[int] = 3
    method: Literal["distill"] = "distill"  # the original model is the teacher: no labels needed
    alpha: float = Field(0.5, ge=0, le=1)  # soft vs hard-label weight; 1 when the data has none


class PruneOneShotConfig(StepConfig):
    """Shared keys of the calibrated one-shot LLM pruners (nlpress.prune.oneshot)."""

    # share of each targeted layer's weights set to zero; ignored when n and m are given
    sparsity: float = Field(0.5, ge=0.0, lt=1.0)
    # N:M instead of unstructured (both or neither): e.g. n: 2, m: 4, NVIDIA's 2:4 pattern
    n: int | None = Field(None, ge=1)
    m: int | None = Field(None, ge=2)  # see n
    num_samples: int = Field(128, ge=1, le=4096)  # the papers' 128 calibration windows
    seq_len: int = Field(512, ge=8, le=8192)  # tokens per window (papers: 2048; 512 fits a CPU)
    targets: list[str] | None = None  # None: every nn.Linear inside the blocks
    ignore: list[str] = Field(default_factory=list)  # module names or "re:" patterns
    storage: Literal["sparse", "dense"] = "sparse"  # as prune-magnitude

    @model_validator(mode="after")
    def _nm_pair(self):
        if (self.n is None) != (self.m is None):
            raise ValueError("give both n and m for N:M sparsity (e.g. n: 2, m: 4), or neither")
        if self.n is not None and self.m is not None and self.n >= self.m:
            raise ValueError(f"N:M needs n < m, got {self.n}:{self.m}; e.g. n: 2, m: 4")
        return self


class PruneWandaConfig(PruneOneShotConfig):
    """Wanda (Sun et al. 2023): |W| x input-channel norm, per output row; no weight update."""


class PruneSparseGPTConfig(PruneOneShotConfig):
    """SparseGPT (Frantar & Alistarh 2023): OBS mask selection with weight reconstruction."""

    percdamp: float = Field(0.01, gt=0.0, le=1.0)  # the paper's damping, fraction of mean diag(H)
    block_size: int = Field(128, ge=4, le=4096)  # the paper's mask-selection block (columns)


STEP_CONFIGS: dict[str, type[StepConfig]] = {
    "export-onnx": ExportOnnxConfig,
    "ort-optimize": OrtOptimizeConfig,
    "quantize-dynamic-int8": QuantizeDynamicInt8Config,
    "quantize-static-int8": QuantizeStaticInt8Config,
    "cast": CastConfig,
    "quantize-weight-only": QuantizeWeightOnlyConfig,
    "smoothquant": SmoothQuantConfig,
    "prune-magnitude": PruneMagnitudeConfig,
    "prune-nm": PruneNMConfig,
    "prune-structured": PruneStructuredConfig,
    "prune-gradual": PruneGradualConfig,
    "recover": RecoverConfig,
    "qat": QatConfig,
    "prune-wanda": PruneWandaConfig,
    "prune-sparsegpt": PruneSparseGPTConfig,
    "distill-student": DistillStudentConfig,
    "export-openvino": ExportOpenVinoConfig,
    "quantize-openvino-int8": QuantizeOpenVinoInt8Config,
    "select-backend": SelectBackendConfig,
}
PRUNE_STEPS = (
    PruneMagnitudeConfig,
    PruneNMConfig,
    PruneStructuredConfig,
    PruneGradualConfig,
    PruneWandaConfig,
    PruneSparseGPTConfig,
    DistillStudentConfig,  # drops whole layers: it reshapes the model as structured pruning does
)
STEP_NAMES = {cls: name for name, cls in STEP_CONFIGS.items()}
