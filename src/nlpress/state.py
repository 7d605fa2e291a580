"""What the recipe steps hand to each other: the state of one candidate being built.

A small module at the bottom of the package (it imports nothing of nlpress), so that every step
module can name it without importing the pipeline or the session that drive the steps.
:class:`CheckContext` is what a step's cheap ``check`` sees: the model's folder and config, the
task, the data and calibration texts, never the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class State:
    """What the steps hand to each other inside the temporary folder."""

    lm: Any
    tmp: Path
    sample: dict
    onnx: Path | None = None
    openvino: Path | None = None  # model.xml of an OpenVINO IR (export-openvino, select-backend)
    openvino_meta: dict = field(default_factory=dict)  # how to run it: precision, int8 format
    device: str = "cpu"  # where the artifact runs (--device), recorded in nlpress.json
    torch_model: Any = None
    weights_format: str = "dynamic-int8"  # how torch_model is saved: "dynamic-int8" or "hf"
    tokenize: Any = None  # texts -> int64 numpy batch, the baseline's tokenizer
    calib_texts: list = field(default_factory=list)
    calib_source: str = ""  # the --calib file, or "evaluation data" when none was given
    fidelity_texts: list = field(default_factory=list)  # what min_fidelity is measured on
    progress: bool = True
    steps: list[dict] = field(default_factory=list)
    quantized: dict = field(default_factory=dict)  # weight-only layers, saved by finalize_model
    pruning: dict = field(default_factory=dict)  # per-layer sparsity etc., for the report
    masks: dict = field(default_factory=dict)  # parameter name -> keep-mask, from pruning steps
    data: Any = None  # the --data file: what prune-gradual and recover train on by default
    train_data: Any = None  # the training file of distill-student (tune's --train); else data
    # train_watch(total_steps) -> fn(model, step), run after every training step of the recipe's
    # training steps (tune's early stop of a hopeless trial while it trains); None: not watched
    train_watch: Any = None

    def release_model(self) -> None:
        """Drop the steps' model once it is saved, and hand its memory back to the OS."""
        import gc

        from nlpress.calib.sequential import _release_freed_memory

        self.torch_model, self.quantized = None, {}
        gc.collect()
        _release_freed_memory()

    def current(self):
        """The model as the steps so far left it (the baseline's own model is never changed)."""
        return self.torch_model if self.torch_model is not None else self.lm.model


@dataclass
class CheckContext:
    """What a step's ``check`` may look at: everything but the weights.

    ``meta_model()`` builds the architecture on the meta device from its config (no memory, no
    weights) and ``tokenizer()`` loads the tokenizer; both once, and only when a check asks.
    ``reshaped`` is set by a check whose step changes the model's shape (structured pruning, a
    layer-dropped student): later shape checks are then left to the steps themselves.
    """

    path: Path
    task: str
    data: Any = None
    train_data: Any = None
    calib_texts: list = field(default_factory=list)
    fidelity_texts: list = field(default_factory=list)
    trust_remote_code: bool = False
    reshaped: bool = False
    _meta: Any = None
    _tok: Any = None

    def meta_model(self):
        if self._meta is None:
            import torch
            from transformers import AutoConfig

            from nlpress.models.loader import auto_class

            with torch.device("meta"):
                config = AutoConfig.from_pretrained(
                    self.path, trust_remote_code=self.trust_remote_code
                )
                self._meta = auto_class(self.task).from_config(config)
        return self._meta

    def tokenizer(self):
        if self._tok is None:
            from transformers import AutoTokenizer

            self._tok = AutoTokenizer.from_pretrained(
                self.path, trust_remote_code=self.trust_remote_code
            )
        return self._tok

    def calib_tokens(self) -> int | None:
        """Tokens in the joined calibration text of a causal LM (None for other tasks)."""
        if self.task != "causal-lm":
            return None
        text = "\n\n".join(str(t) for t in self.calib_texts)
        return len(self.tokenizer()(text)["input_ids"])
