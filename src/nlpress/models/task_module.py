"""One ``nn.Module`` per task with named inputs and a single output tensor.

Both the PyTorch predictor and the ONNX exporter run this wrapper, so the two backends compute
exactly the same function and can be compared number for number:

* text-classification: logits ``(B, C)``;
* sentence-embedding: the pooled (and, for sentence-transformers models that say so,
  L2-normalised) embedding ``(B, D)``; pooling lives inside the graph so ONNX Runtime does it too;
* causal-lm: next-token logits ``(B, T, V)``.

Why a wrapper with named arguments: transformers 5 changed ``forward``'s signature, and the
TorchScript-based ONNX exporter passes inputs positionally, so without names they land on the
wrong arguments (DESIGN.md records an export whose outputs differed by about 1.0).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

OUTPUT_NAMES = {
    "text-classification": "logits",
    "sentence-embedding": "embedding",
    "causal-lm": "logits",
}


def model_input_names(model: nn.Module, tokenizer) -> list[str]:
    """The tokenizer outputs that the model's forward accepts, in a stable order."""
    params = inspect.signature(model.forward).parameters
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in params]
    produced = set(getattr(tokenizer, "model_input_names", names)) | {"input_ids", "attention_mask"}
    return [n for n in names if n in produced]


class TaskModule(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        task: str,
        input_names: list[str],
        pooling: str = "mean",
        normalize: bool = False,
    ):
        super().__init__()
        self.model, self.task, self.input_names = model, task, list(input_names)
        self.pooling, self.normalize = pooling, normalize

    def causal_hidden(self, input_ids, attention_mask):
        """The last hidden states ``(B, T, H)`` of a causal LM, before its output head: with
        :meth:`output_head` applied a few rows at a time, the ``(B, T, V)`` logits (402 MB for
        one 2,048-token window of a 49,152-word vocabulary) never exist at once."""
        base = self.model.base_model
        out = base(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
        return out.last_hidden_state

    def output_head(self) -> nn.Module:
        return self.model.get_output_embeddings()

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and "token_type_ids" in self.input_names:
            kwargs["token_type_ids"] = token_type_ids
        if self.task == "causal-lm":
            return self.model(**kwargs, use_cache=False).logits
        out = self.model(**kwargs)
        if self.task == "text-classification":
            return out.logits
        hidden = out.last_hidden_state.float()  # (B, T, H); pool in fp32 whatever the weights
        if self.pooling == "cls":
            emb = hidden[:, 0]
        else:
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
            emb = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (B, H)
        if self.normalize:
            emb = torch.nn.functional.normalize(emb, p=2.0, dim=-1)
        return emb
