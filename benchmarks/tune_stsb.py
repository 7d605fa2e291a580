"""The sentence-embedding experiment of issue 10: ``nlpress tune`` on STS-B.

    python benchmarks/tune_stsb.py [--budget 90m] [--train-steps 300]

* model: the default all-MiniLM-L6-v2; ``--data``: the first 1,500 STS-B train pairs (tune
  splits them into its search and held-out parts); ``--train``: unlabeled sentences for the
  distilled students and recovery (MRPC, WikiText-2 and SST-2 sentences, as in
  ``distill_sst2.py embed``; no STS scores). ``--max-drop 1.0`` Spearman x100 points.
* The same targets as the SST-2 run (``tune_sst2.py``): within the drop on the held-out split,
  5x the fp32 model's PyTorch eager throughput at batch 32, 1.5x the fastest single-family
  built-in recipe, and the first feasible model in under 5 minutes.

Nothing is asserted; every figure is printed next to its target, with the wall time.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_sst2 import DATA, unlabeled_text  # noqa: E402
from tune_sst2 import tune_and_report  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", default="/work/artifacts/tune-stsb")
    p.add_argument("--budget", default="90m")
    p.add_argument("--trials", type=int)
    p.add_argument("--rows", type=int, default=1500)
    p.add_argument("--sst-sentences", type=int, default=20000)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--max-drop", type=float, default=1.0)
    a = p.parse_args()

    work = Path(a.out).parent / "tune-stsb-data"
    work.mkdir(parents=True, exist_ok=True)
    lines = (DATA / "stsb" / "train.tsv").read_text().splitlines()
    dev = work / "stsb-dev.tsv"
    dev.write_text("\n".join(lines[: a.rows + 1]) + "\n")  # the header and the first pairs
    train = work / "unlabeled.txt"
    n = unlabeled_text(train, a.sst_sentences)
    print(f"--data {dev} ({a.rows} pairs); --train {train} ({n} unlabeled sentences)")
    tune_and_report("default", dev, train, a)


if __name__ == "__main__":
    main()
