"""Pruning: masks (pure functions), unstructured and N:M magnitude pruning, structured pruning
that physically shrinks the model, and a sparse storage format whose size falls with sparsity.

Masks are a ``dict[str, torch.BoolTensor]`` from parameter name to a keep-mask (True = kept), and
:func:`nlpress.prune.masks.apply_masks` applies them to any model, so later methods (gradual
pruning during fine-tuning, Wanda, SparseGPT) reuse the same representation.
"""
