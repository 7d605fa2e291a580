"""Size on disk of the bitmask layout on the default model, by sparsity, and an exact round trip.

Prunes all-MiniLM-L6-v2's block linear layers by magnitude (per layer) at several sparsities,
saves each with the bitmask layout, and prints the file size against the dense fp32 safetensors
of the same weights; then reads each file back and checks every tensor is bit-identical. Fast
(seconds), no benchmark timing.

    .venv/bin/python benchmarks/sparse_size_minilm.py [--sparsity 0.5 0.75 0.9]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path


def main() -> None:
    import torch
    from safetensors.torch import save_file

    from nlpress.models.loader import load_model
    from nlpress.prune.sparse_io import read_sparse, save_sparse
    from nlpress.prune.unstructured import prune_unstructured
    from nlpress.recipe import PruneMagnitudeConfig

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sparsity", type=float, nargs="+", default=[0.5, 0.75, 0.9])
    ap.add_argument("--embeddings", action="store_true", help="prune the word embedding table too")
    a = ap.parse_args()
    targets = list(PruneMagnitudeConfig().targets)
    if a.embeddings:
        targets.append("embeddings.word_embeddings")
    print(f"targets: {targets}")
    print(
        f"{'sparsity':>8}  {'targeted':>9}  {'overall':>8}  {'bitmask MB':>10}  "
        f"{'dense MB':>8}  {'fraction':>8}  round trip"
    )
    for s in a.sparsity:
        model = load_model("default").model
        _, summary = prune_unstructured(model, PruneMagnitudeConfig(sparsity=s, targets=targets))
        state = model.state_dict()
        zeros = sum(int((t == 0).sum()) for t in state.values())
        total = sum(t.numel() for t in state.values())
        with tempfile.TemporaryDirectory() as d:
            folder = Path(d)
            save_sparse(model, folder)
            dense = folder / "dense.safetensors"
            save_file({k: v.clone().contiguous() for k, v in state.items()}, str(dense))
            sparse_mb = (folder / "model.safetensors").stat().st_size / 1e6
            dense_mb = dense.stat().st_size / 1e6
            back = read_sparse(folder / "model.safetensors")
            same = all(torch.equal(back[k], v) for k, v in state.items())
        print(
            f"{s:8.2f}  {summary['info']['sparsity']:9.4f}  {zeros / total:8.4f}  "
            f"{sparse_mb:10.1f}  {dense_mb:8.1f}  {sparse_mb / dense_mb:8.3f}  "
            f"{'bit-identical' if same else 'DIFFERS'}"
        )


if __name__ == "__main__":
    main()
