"""The SST-2 experiment of issue 10: ``nlpress tune`` against the single-family recipes.

    python benchmarks/tune_sst2.py [--teacher /work/artifacts/sst2-teacher] [--budget 90m]
    python benchmarks/tune_sst2.py --budget 10m --trials 6 --train-steps 50   # a short look

* teacher: benchmarks/distill_sst2.py's ``teacher`` run (the default model fine-tuned on SST-2).
* ``--data``: the teacher's ~2,000 held-out rows (the split re-made from its metrics.json);
  ``--train``: the rest of sst2/train.tsv. tune splits ``--data`` again into its search and
  held-out parts; the figures below are the held-out ones, measured beside the teacher in the
  same interleaved run.
* Targets: the chosen model within 1.0 accuracy point of the teacher on the held-out split, at
  least 5x the teacher's PyTorch fp32 throughput at batch 32, at least 1.5x the fastest
  single-family built-in recipe within the same budget (int8, int8-static, prune-structured +
  recover, a 3-layer distilled student: their trials in the same study are the reference), and
  the first feasible model in under 5 minutes.

Nothing is asserted; every figure is printed next to its target, with the wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from distill_sst2 import check  # noqa: E402
from prune_sst2 import split_files  # noqa: E402


def single_family(row: dict) -> str | None:
    """Which built-in single-family recipe a trial is, if it is one."""
    name = row["recipe_name"]
    if name in ("int8", "int8-tensor", "int8-noemb", "int8-tensor-noemb"):
        return "int8"
    if name.startswith("static-"):
        return "int8-static"
    if name in ("openvino fp32", "openvino > int8", "openvino > int8-weights"):
        return "openvino"  # the built-in recipes openvino and int8-openvino
    if name.startswith("prune(") and "recover" in name and ">" in name:
        return None if "int8" in name or "static" in name or "mixed" in name else "prune+recover"
    if name == "student-3":
        return "student-3"
    return None


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--teacher", default="/work/artifacts/sst2-teacher")
    p.add_argument("--out", default="/work/artifacts/tune-sst2")
    p.add_argument("--budget", default="90m")
    p.add_argument("--trials", type=int)
    p.add_argument("--train-steps", type=int, default=300)
    p.add_argument("--student-steps", type=int, help="a student's distillation steps")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--max-drop", type=float, default=1.0)
    a = p.parse_args()

    teacher = Path(a.teacher)
    train, dev = split_files(teacher, Path(a.out).parent / "tune-sst2-data")
    tune_and_report(teacher, dev, train, a)


def tune_and_report(model, dev: Path, train: Path, a) -> None:
    """``nlpress.tune`` with the script's options (resuming a study already in ``--out``), then
    :func:`report`."""
    import nlpress

    t0 = time.perf_counter()
    res = nlpress.tune(
        model,
        dev,
        train=train,
        out=a.out,
        max_drop=a.max_drop,
        objective="throughput",
        budget=a.budget,
        trials=a.trials,
        train_steps=a.train_steps,
        student_steps=getattr(a, "student_steps", None),
        workers=getattr(a, "workers", 1),
        resume=(Path(a.out) / "study.json").exists(),
    )
    report(res, time.perf_counter() - t0, a.max_drop)


def report(res, wall: float, max_drop: float) -> None:
    """Print the front, then every target of the issue beside the figure reached."""
    s = res.summary
    print(f"\nfront ({len(res.front)} trials, search split; held-out in the report):")
    for r in res.front:
        h = r.get("heldout") or {}
        print(
            f"  trial {r['number']:4d}  {r['recipe_name']:50s} drop {r['drop']:6.2f} "
            f"held-out {h.get('drop', float('nan')):6.2f}  {h.get('throughput_speedup', 0):5.2f}x"
        )
    ch = s.get("chosen") or {}
    h = ch.get("heldout") or {}
    print()
    print(
        check(
            "held-out drop of the chosen (points)",
            h.get("drop", float("nan")),
            f"<= {max_drop}",
            h.get("drop", 99) <= max_drop,
        )
    )
    speed = h.get("throughput_speedup") or 0.0
    print(check("throughput vs teacher fp32, batch 32", speed, ">= 5x", speed >= 5))
    singles = {}
    for r in res.front + [r for r in res.trials if r["feasible"]]:
        fam = single_family(r)
        if fam and r["throughput_speedup"]:
            singles[fam] = max(singles.get(fam, 0.0), r["throughput_speedup"])
    if singles:
        fam, best_single = max(singles.items(), key=lambda kv: kv[1])
        ratio = (ch.get("throughput_speedup") or 0) / best_single
        print(check(f"vs fastest single family ({fam}, search)", ratio, ">= 1.5x", ratio >= 1.5))
    ff = s.get("first_feasible_s")
    print(
        check("first feasible model (s)", ff or float("nan"), "< 300", ff is not None and ff < 300)
    )
    print(f"wall time {wall:.0f} s; report {res.report}")
    print(json.dumps({"chosen": ch.get("recipe_name"), "why": s.get("why")}))


if __name__ == "__main__":
    main()
