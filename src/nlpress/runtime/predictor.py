"""Predictors: one interface over ONNX Runtime and PyTorch for every task.

``forward`` runs one tokenized batch and returns the task output (logits or embeddings);
``predict`` / ``encode`` / ``perplexity`` are the user-facing calls built on it, with batching by
length so short texts are not padded to the longest in the whole input. The benchmark harness
and the evaluator use the same ``tokenize``/``forward`` pair, so what is measured is what users run.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nlpress.errors import NlpressError
from nlpress.evaluate.fidelity import ROW_CHUNK

log = logging.getLogger(__name__)

TextInput = str | tuple[str, str]


@dataclass
class Predictions:
    labels: list[str]
    probabilities: np.ndarray  # (n, num_labels)


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


class Predictor:
    """Shared tokenization, batching and task methods; subclasses implement ``forward``."""

    backend = "?"
    device = "cpu"

    def __init__(
        self,
        *,
        task: str,
        tokenizer,
        input_names: list[str],
        name: str,
        files: list[Path],
        id2label: dict[int, str] | None = None,
        max_length: int = 512,
        threads: int = 0,
    ):
        self.task, self.tokenizer, self.input_names, self.name = task, tokenizer, input_names, name
        self.files, self.id2label, self.max_length, self.threads = (
            files,
            id2label or {},
            max_length,
            threads,
        )

    def compute_profile(self) -> dict | None:
        """Multiply-adds per token and GEMM format, for the fraction of peak; None: unknown."""
        return None

    # -- the two calls the harness and evaluator use -------------------------------------------
    def tokenize(
        self,
        inputs: Sequence[TextInput],
        *,
        pad_to: int | None = None,
        max_length: int | None = None,
    ) -> dict[str, np.ndarray]:
        texts, pairs = _split(inputs)
        limit = min(pad_to or max_length or self.max_length, self.max_length)
        enc = self.tokenizer(
            texts,
            pairs,
            padding="max_length" if pad_to else "longest",
            truncation=True,
            max_length=limit,
            return_tensors="np",
        )
        return {n: np.asarray(enc[n], dtype=np.int64) for n in self.input_names if n in enc}

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.is_file())

    # -- user-facing ----------------------------------------------------------------------------
    def run(
        self, inputs: Sequence[TextInput], batch_size: int = 32, progress: bool = False
    ) -> np.ndarray:
        """Forward every input, batched by length; outputs in input order.

        A single string is one text (not a sequence of characters): its output has one row."""
        if isinstance(inputs, str):
            inputs = [inputs]
        if not len(inputs):
            raise NlpressError("no texts given; pass at least one text")
        _split(inputs)  # one kind of input per call, checked before any work
        from nlpress.data.batching import restore_order, tokenize_batches

        chunks = []
        batches = tokenize_batches(self.tokenizer, list(inputs), batch_size, self.max_length)
        if progress:
            from tqdm.auto import tqdm

            batches = tqdm(
                batches, total=-(-len(inputs) // batch_size), desc=f"{self.name}", leave=False
            )
        for idx, batch in batches:
            chunks.append(
                (idx, self.forward({n: batch[n] for n in self.input_names if n in batch}))
            )
        return restore_order(chunks, len(inputs))

    def predict(self, texts: Sequence[TextInput], batch_size: int = 32) -> Predictions:
        self._need("text-classification", "predict")
        probs = _softmax(self.run(texts, batch_size).astype(np.float64))
        labels = [self.id2label.get(int(i), str(int(i))) for i in probs.argmax(-1)]
        return Predictions(labels, probs)

    def encode(self, texts: Sequence[TextInput], batch_size: int = 32) -> np.ndarray:
        self._need("sentence-embedding", "encode")
        return self.run(texts, batch_size)

    def perplexity(
        self,
        text: str,
        max_length: int | None = None,
        stride: int | None = None,
        progress: bool = False,
    ) -> float:
        return self.perplexity_details(text, max_length, stride, progress)["perplexity"]

    def perplexity_details(
        self,
        text: str,
        max_length: int | None = None,
        stride: int | None = None,
        progress: bool = False,
    ) -> dict:
        self._need("causal-lm", "perplexity")
        from nlpress.evaluate.metrics import perplexity

        ids = np.asarray(self.tokenizer(text, return_tensors="np")["input_ids"], dtype=np.int64)[0]
        if ids.size < 2:
            raise NlpressError("perplexity needs a text of at least two tokens")
        window = min(max_length or self.max_length, self.max_length)
        return perplexity(
            # non-overlapping windows (GPTQ/AWQ's WikiText-2 protocol) unless a stride is given:
            # half-overlapping ones cost twice the compute for a slightly lower number
            None,
            ids,
            window,
            stride or window,
            progress=progress,
            log_probs_fn=self.target_log_probs,
        )

    def generate(self, prompt: str, max_new_tokens: int = 32) -> str:
        """Greedy continuation of ``prompt`` (causal-lm; KV cache on PyTorch)."""
        from nlpress.runtime.generate import generate

        return generate(self, prompt, max_new_tokens)

    def next_token_logits(self, ids: np.ndarray) -> np.ndarray:
        batch = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
        return self.forward({n: batch[n] for n in self.input_names})

    def target_log_probs(self, window: np.ndarray, skip: int = 0) -> np.ndarray:
        """float64 log-probability of each token ``window[skip + 1:]`` given those before it."""
        from nlpress.evaluate.metrics import target_log_probs

        logits = self.next_token_logits(window[None, :])  # (1, T, V)
        return target_log_probs(logits[0, skip:-1], window[skip + 1 :])

    def logit_blocks(self, window: np.ndarray):
        """The logits of ``window`` (T,) as consecutive float32 (rows, V) blocks of HEAD_ROWS rows."""
        logits = self.next_token_logits(window[None, :])[0]  # (T, V)
        for i in range(0, logits.shape[0], HEAD_ROWS):
            yield logits[i : i + HEAD_ROWS]

    def bench_forward(self, batch: dict[str, np.ndarray]) -> None:
        """What one timed benchmark call runs: :meth:`forward`, its output dropped."""
        self.forward(batch)

    def _need(self, task: str, method: str) -> None:
        if self.task != task:
            raise NlpressError(f"{method}() is for {task} models; this one is {self.task}")


def _split(inputs: Sequence[TextInput]) -> tuple[list[str], list[str] | None]:
    pairs = [isinstance(t, (tuple, list)) for t in inputs]
    if any(pairs) and not all(pairs):
        raise NlpressError("mix of single texts and (text, pair) tuples; pass one kind per call")
    if any(pairs):
        if any(len(t) != 2 for t in inputs):
            raise NlpressError("a text pair must be a (text, pair) tuple of two strings")
        return [str(a) for a, _ in inputs], [str(b) for _, b in inputs]
    return [str(t) for t in inputs], None


class OrtPredictor(Predictor):
    backend = "onnxruntime"

    def __init__(
        self,
        onnx_path: Path,
        *,
        threads: int = 0,
        providers: list[str] | None = None,
        spin: bool = True,
        exact_int8: bool = True,
        device: str = "cpu",
        **kw,
    ):
        """``spin=False`` stops idle ONNX Runtime threads from busy-waiting; use it whenever
        another model (e.g. a PyTorch baseline) shares the cores, or they slow each other down.
        ``exact_int8=False`` lets int8 GEMMs saturate on CPUs without VNNI (see
        :mod:`nlpress.runtime.isa`): for measuring what exactness costs, never for results."""
        import onnxruntime as ort

        from nlpress.runtime.isa import configure_int8_session

        so = ort.SessionOptions()
        if not spin:
            so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        threads = threads or _physical_cores()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        configure_int8_session(so, exact=exact_int8)
        self.device = device
        self.onnx_path = Path(onnx_path)
        providers = providers or _providers(device)
        try:
            self.session = ort.InferenceSession(str(onnx_path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own pybind types (InvalidProtobuf, Fail)
            first = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
            raise NlpressError(
                f"ONNX Runtime cannot load {onnx_path} ({first}); the file is damaged: "
                "rebuild the artifact"
            ) from e
        kw.setdefault("files", [Path(onnx_path), *Path(onnx_path).parent.glob("*.onnx.data")])
        super().__init__(threads=threads, **kw)
        graph_inputs = [i.name for i in self.session.get_inputs()]
        missing = [n for n in graph_inputs if n not in self.input_names]
        if missing or "input_ids" not in graph_inputs:
            raise NlpressError(
                f"{onnx_path} takes inputs {graph_inputs}, but its nlpress.json gives "
                f"{self.input_names}; the artifact is damaged: rebuild it"
            )
        self.input_names = [n for n in self.input_names if n in graph_inputs]

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        try:
            return self.session.run(None, {n: batch[n] for n in self.input_names})[0]
        except Exception as e:  # an allocation failure, or a graph that does not fit its inputs
            if "alloc" in str(e).lower() or "memory" in str(e).lower():
                shape = "x".join(str(d) for d in batch["input_ids"].shape)
                raise NlpressError(
                    f"ONNX Runtime ran out of memory on a batch of {shape} tokens; lower "
                    "--batch-size or --seq-len"
                ) from e
            raise

    def compute_profile(self) -> dict | None:
        """Multiply-adds per token and GEMM format (:mod:`nlpress.bench.peak`)."""
        from nlpress.bench.peak import onnx_profile
        from nlpress.guards import read_json

        cfg = self.onnx_path.parent / "config.json"
        try:
            config = (
                read_json(cfg, "model config", "repair it", kind=None) if cfg.is_file() else None
            )
            return onnx_profile(self.onnx_path, config if isinstance(config, dict) else None)
        except (OSError, ValueError, TypeError, NlpressError) as e:  # a hint only: never fatal
            log.debug("no operation count for %s: %s", self.onnx_path, e)
            return None


# rows of a causal LM's hidden states sent through its output head at a time: the same block as
# the float64 scoring of those logits (see nlpress.evaluate.fidelity.ROW_CHUNK)
HEAD_ROWS = ROW_CHUNK


class TorchPredictor(Predictor):
    backend = "pytorch"

    def __init__(self, module, *, threads: int = 0, device: str = "cpu", **kw):
        import torch

        self.module = module.eval()
        self._chunked: bool | None = None  # causal LMs: output head applied in row blocks
        super().__init__(threads=threads or torch.get_num_threads(), **kw)
        self.to(device)

    def to(self, device: str) -> TorchPredictor:
        """Move the model to ``device`` ("cpu" or "cuda"; checked by nlpress.runtime.device)."""
        if device != self.device:
            self.module.to(device)
            self.device = device
        return self

    def forward(self, batch: dict[str, np.ndarray]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.module(
                **{n: torch.from_numpy(batch[n]).to(self.device) for n in self.input_names}
            )
        return out.float().cpu().numpy()  # .cpu() also waits for the GPU: timings stay honest

    # -- causal LMs: the output head a few rows at a time -----------------------------------------
    def _hidden(self, ids, mask):
        """The causal LM's last hidden states, (B, T, H), without its output head."""
        import torch

        with torch.inference_mode():
            return self.module.causal_hidden(ids, mask)

    def _head_blocks(self, hidden, start: int = 0, stop: int | None = None):
        """``(i, head(hidden[i : i + HEAD_ROWS]))`` for the rows ``start..stop`` of ``hidden``
        (rows, H), one block alive at a time. The inference-mode context is opened per block
        and never held across a yield: two of these generators are interleaved (fidelity reads
        both models' blocks in turn), and contexts left in another order than entered would
        leave inference mode switched on for the whole process."""
        import torch

        head = self.module.output_head()
        stop = hidden.shape[0] if stop is None else stop
        for i in range(start, stop, HEAD_ROWS):
            with torch.inference_mode():
                block = head(hidden[i : min(i + HEAD_ROWS, stop)])  # (rows, V)
            yield i, block

    def _window(self, window: np.ndarray):
        import torch

        ids = torch.from_numpy(np.ascontiguousarray(window[None, :])).to(self.device)  # (1, T)
        return ids, self._hidden(ids, torch.ones_like(ids))[0]  # (1, T), (T, H)

    def target_log_probs(self, window: np.ndarray, skip: int = 0) -> np.ndarray:
        if not self._head_in_chunks():
            return super().target_log_probs(window, skip)
        import torch

        ids, hidden = self._window(window)
        out = []
        for i, block in self._head_blocks(hidden, skip, ids.shape[1] - 1):
            with torch.inference_mode():
                logits = block.double()  # (rows, V)
                target = logits.gather(1, ids[0, i + 1 : i + 1 + logits.shape[0], None])[:, 0]
                out.append(target - torch.logsumexp(logits, dim=-1))
        return torch.cat(out).cpu().numpy() if out else np.zeros(0)

    def logit_blocks(self, window: np.ndarray):
        if not self._head_in_chunks():
            yield from super().logit_blocks(window)
            return
        _, hidden = self._window(window)
        for _, block in self._head_blocks(hidden):
            yield block.float().cpu().numpy()

    def bench_forward(self, batch: dict[str, np.ndarray]) -> None:
        """A causal LM scores every position, as :meth:`forward` does, with the output head
        applied HEAD_ROWS rows at a time and each block dropped: the same multiply-adds in a bounded
        memory (batch 32 of 256 tokens would otherwise hold 1.6 GB of logits)."""
        if not self._head_in_chunks():
            return super().bench_forward(batch)
        import torch

        t = {n: torch.from_numpy(batch[n]).to(self.device) for n in self.input_names}
        hidden = self._hidden(t["input_ids"], t["attention_mask"])
        for _, block in self._head_blocks(hidden.reshape(-1, hidden.shape[-1])):  # (B*T, H)
            block.float().cpu()  # .cpu(): a GPU finishes the block

    def _head_in_chunks(self) -> bool:
        """Whether this causal LM's logits are its output head over its last hidden states, as
        checked once on a short input against :meth:`forward` (a model that scales or caps its
        logits after the head, or has no separable head, keeps the whole-logits path)."""
        if self._chunked is None:
            self._chunked = self.task == "causal-lm" and self._check_head()
        return self._chunked

    def _check_head(self) -> bool:
        import torch

        if not hasattr(self.module, "causal_hidden"):
            return False
        ids = np.arange(1, 9, dtype=np.int64)[None, :] % 97 + 3  # (1, 8) ordinary token ids
        try:
            full = self.next_token_logits(ids)[0]  # (8, V)
            with torch.inference_mode():
                t = torch.from_numpy(ids).to(self.device)
                hidden = self.module.causal_hidden(t, torch.ones_like(t))[0]
                head = self.module.output_head()
                parts = head(hidden).float().cpu().numpy() if head is not None else None
        except Exception as e:  # a model without a base model or output head
            log.debug("causal LM head check failed (%s); whole logits are used", e)
            return False
        scale = max(float(np.abs(full).max()), 1.0)
        ok = parts is not None and parts.shape == full.shape
        ok = ok and float(np.abs(parts - full).max()) <= 1e-4 * scale
        if not ok:
            log.info(
                "this causal LM's logits are not its head's output; scoring holds whole logits"
            )
        return ok

    def compute_profile(self) -> dict | None:
        """Multiply-adds per token and GEMM format (:mod:`nlpress.bench.peak`)."""
        from nlpress.bench.peak import torch_profile

        model = getattr(self.module, "model", self.module)
        config = getattr(model, "config", None)
        return torch_profile(model, config.to_dict() if config is not None else None)


def _physical_cores() -> int:
    try:
        import psutil

        return psutil.cpu_count(logical=False) or os.cpu_count() or 1
    except ImportError:
        return os.cpu_count() or 1


def _providers(device: str = "cpu") -> list[str]:
    import onnxruntime as ort

    from nlpress.runtime.device import ort_providers

    return ort_providers(device, ort.get_available_providers())


def torch_predictor_from_loaded(
    lm: Any,
    name: str,
    files: list[Path],
    threads: int = 0,
    device: str = "cpu",
    model: Any = None,
) -> TorchPredictor:
    """A predictor over ``lm``'s model, or over ``model`` (one made from it: a student, a pruned
    copy) with ``lm``'s tokenizer, task and pooling."""
    from nlpress.models.task_module import TaskModule, model_input_names

    model = lm.model if model is None else model
    names = model_input_names(model, lm.tokenizer)
    module = TaskModule(model, lm.task, names, lm.pooling, lm.normalize)
    return TorchPredictor(
        module,
        task=lm.task,
        tokenizer=lm.tokenizer,
        input_names=names,
        name=name,
        files=files,
        id2label=lm.id2label,
        max_length=_max_len(model.config, lm.tokenizer),
        threads=threads,
        device=device,
    )


def _max_len(config, tokenizer) -> int:
    m = getattr(config, "max_position_embeddings", None) or 512
    t = getattr(tokenizer, "model_max_length", None) or m
    return int(min(m, t, 2048))
