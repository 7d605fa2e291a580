"""Quality of structured pruning on the default model by importance score (no recovery training).

Removes half the FFN neurons and a third of the heads of all-MiniLM-L6-v2 with each score
(``magnitude``: weight norms; ``activation``: output size on calibration texts) and prints STS-B
Spearman (x100) on the first N train pairs and the mean cosine to the unpruned embeddings. The
calibration texts are the sentences of the *next* pairs (rows N..N+C), so they do not overlap
the evaluation. No timing: see prune_minilm.py for speed.

    .venv/bin/python benchmarks/prune_scores_minilm.py [--rows 500] [--calib 64]
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STSB = ROOT.parent / "shared" / "data" / "stsb" / "train.tsv"


def main() -> None:
    import numpy as np
    import torch

    from nlpress.data.readers import read_data
    from nlpress.evaluate.metrics import spearman
    from nlpress.models.loader import load_model
    from nlpress.prune.structured import prune_structured
    from nlpress.recipe import PruneStructuredConfig
    from nlpress.runtime.predictor import torch_predictor_from_loaded

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500)
    ap.add_argument("--calib", type=int, default=64, help="calibration sentence pairs")
    a = ap.parse_args()
    data = read_data(STSB, limit=a.rows + a.calib)
    pairs, scores = data.inputs()[: a.rows], np.asarray(data.scores[: a.rows], dtype=float)
    calib = [t for p in data.inputs()[a.rows :] for t in p]
    lm = load_model("default")
    base = torch_predictor_from_loaded(lm, "fp32", [])

    def evaluate(pred) -> tuple[float, np.ndarray]:
        e1 = pred.encode([p[0] for p in pairs])
        e2 = pred.encode([p[1] for p in pairs])
        cos = (e1 * e2).sum(1) / np.linalg.norm(e1, axis=1) / np.linalg.norm(e2, axis=1)
        return 100 * spearman(cos, scores), np.concatenate([e1, e2])

    s0, ref = evaluate(base)
    print(f"unpruned: Spearman {s0:.2f}")
    for score in ("magnitude", "activation"):
        batches = []
        for i in range(0, len(calib), 16):
            enc = base.tokenize(calib[i : i + 16])
            batches.append({k: torch.from_numpy(v) for k, v in enc.items()})
        cfg = PruneStructuredConfig(score=score)
        small, _ = prune_structured(lm.model, cfg, batches if score == "activation" else None)
        pred = torch_predictor_from_loaded(
            type(lm)(small, lm.tokenizer, lm.task, lm.path, lm.name, lm.pooling, lm.normalize),
            score,
            [],
        )
        s, emb = evaluate(pred)
        cos = (emb * ref).sum(1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref, axis=1)
        print(
            f"{score:10s}: Spearman {s:.2f} ({s - s0:+.2f}), mean cosine to unpruned {cos.mean():.4f}"
        )


if __name__ == "__main__":
    main()
